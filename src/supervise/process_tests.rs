use super::*;

fn launch(dir: &std::path::Path, script: &str) -> Launch {
    Launch {
        activity: None,
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![("SECRET_TOKEN".into(), "hunter2hunter2".into())],
        cwd: dir.to_path_buf(),
        stdin: Some(b"the prompt\n".to_vec()),
        log: dir.join("worker.log"),
        timeout: None,
        grace: Duration::from_millis(200),
        leak_timeout: Duration::from_millis(300),
        redactor: Arc::new(Redactor::new(
            vec![("SECRET_TOKEN".to_owned(), "hunter2hunter2".to_owned())],
            &[],
        )),
        clear_env: false,
        ignore_term: false,
    }
}

fn no_stop() -> watch::Receiver<Stop> {
    let (tx, rx) = watch::channel(Stop::No);
    std::mem::forget(tx);
    rx
}

#[tokio::test]
async fn logs_both_streams_redacted_and_closes_stdin() {
    let temp = tempfile::tempdir().expect("tempdir");
    let script = "cat; echo err >&2; echo token=$SECRET_TOKEN; exit 3";
    let finished = run(launch(temp.path(), script), no_stop(), None)
        .await
        .expect("runs");
    assert_eq!(finished.exit, Exit::Code(3));
    let log = std::fs::read_to_string(temp.path().join("worker.log")).expect("log");
    assert!(log.contains("the prompt"), "{log}");
    assert!(log.contains("err"), "{log}");
    assert!(log.contains("token=[redacted SECRET_TOKEN]"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
}

/// A worker sees dispatch's own environment (PATH, HOME, API keys),
/// with the task's variables laid over it.
#[tokio::test]
async fn the_launch_env_is_laid_over_the_runners_own() {
    let temp = tempfile::tempdir().expect("tempdir");
    let home = std::env::var("HOME").unwrap_or_default();
    let path = std::env::var("PATH").unwrap_or_default();
    assert!(!path.is_empty(), "the test process has a PATH");
    let mut l = launch(
        temp.path(),
        "echo \"path=$PATH\"; echo \"home=$HOME\"; echo \"task=$FROM_TASK\"",
    );
    l.env = vec![
        ("FROM_TASK".into(), "yes".into()),
        ("HOME".into(), format!("{home}/elsewhere")),
    ];
    run(l, no_stop(), None).await.expect("runs");
    let log = std::fs::read_to_string(temp.path().join("worker.log")).expect("log");
    assert!(log.contains(&format!("path={path}\n")), "{log}");
    assert!(log.contains(&format!("home={home}/elsewhere\n")), "{log}");
    assert!(log.contains("task=yes\n"), "{log}");
}

#[tokio::test]
async fn unparsed_streams_share_one_pipe_and_keep_their_order() {
    let temp = tempfile::tempdir().expect("tempdir");
    let script = "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done";
    run(launch(temp.path(), script), no_stop(), None)
        .await
        .expect("runs");
    let log = std::fs::read_to_string(temp.path().join("worker.log")).expect("log");
    let expected: String = (1..=5).map(|i| format!("out{i}\nerr{i}\n")).collect();
    assert_eq!(log, expected);
}

#[tokio::test]
async fn parsed_stdout_is_sent_apart_from_stderr() {
    let temp = tempfile::tempdir().expect("tempdir");
    let (lines_tx, mut lines_rx) = mpsc::unbounded_channel();
    let script = "echo '{\"type\":\"x\"}'; echo oops >&2";
    run(launch(temp.path(), script), no_stop(), Some(lines_tx))
        .await
        .expect("runs");
    let mut lines = Vec::new();
    while let Ok(line) = lines_rx.try_recv() {
        lines.push(line);
    }
    assert_eq!(lines, [r#"{"type":"x"}"#]);
    let log = std::fs::read_to_string(temp.path().join("worker.log")).expect("log");
    assert!(log.contains("oops"), "{log}");
}

#[tokio::test]
async fn a_prompt_larger_than_the_pipe_reaches_the_worker_whole() {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut l = launch(temp.path(), "wc -c");
    l.stdin = Some(vec![b'p'; 1 << 20]);
    run(l, no_stop(), None).await.expect("runs");
    let log = std::fs::read_to_string(temp.path().join("worker.log")).expect("log");
    assert_eq!(log.trim(), (1 << 20).to_string());
}

#[tokio::test]
async fn a_worker_that_never_reads_its_prompt_ends_normally() {
    let temp = tempfile::tempdir().expect("tempdir");
    let finished = run(launch(temp.path(), "exit 0"), no_stop(), None)
        .await
        .expect("runs");
    assert_eq!(finished.exit, Exit::Code(0));
    assert!(!finished.leaked);
}

#[tokio::test]
async fn a_timeout_kills_the_whole_group_even_if_sigterm_is_ignored() {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut l = launch(
        temp.path(),
        "trap '' TERM; sleep 30 & echo $! > child.pid; wait",
    );
    l.timeout = Some(Duration::from_millis(300));
    let finished = run(l, no_stop(), None).await.expect("runs");
    assert!(finished.timed_out);
    assert_eq!(finished.exit, Exit::Signal(libc::SIGKILL));
    assert!(finished.duration < Duration::from_secs(5));
    let child: u32 = std::fs::read_to_string(temp.path().join("child.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("number");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !crate::state::lock::process_alive(child) || is_zombie(child),
        "grandchild {child} outlived its task"
    );
}

#[tokio::test]
async fn a_grandchild_holding_the_pipes_does_not_hang_the_run() {
    let temp = tempfile::tempdir().expect("tempdir");
    let finished = run(
        launch(temp.path(), "sleep 30 & echo started"),
        no_stop(),
        None,
    )
    .await
    .expect("runs");
    assert_eq!(finished.exit, Exit::Code(0));
    assert!(finished.leaked);
    assert!(finished.duration < Duration::from_secs(5));
}

#[tokio::test]
async fn a_stop_request_terminates_gracefully() {
    let temp = tempfile::tempdir().expect("tempdir");
    let (tx, rx) = watch::channel(Stop::No);
    let handle = tokio::spawn(run(launch(temp.path(), "sleep 30"), rx, None));
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.send(Stop::Graceful).expect("send");
    let finished = handle.await.expect("joins").expect("runs");
    assert!(finished.stopped);
    assert_eq!(finished.exit, Exit::Signal(libc::SIGTERM));
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_error() {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut l = launch(temp.path(), "");
    l.argv = vec!["definitely-not-a-program-here".into()];
    let err = run(l, no_stop(), None).await.expect_err("no such program");
    assert!(err
        .to_string()
        .contains("cannot start `definitely-not-a-program-here`"));
}

#[tokio::test]
async fn long_output_is_rotated_not_kept() {
    let temp = tempfile::tempdir().expect("tempdir");
    let script = "head -c 20000000 /dev/zero | tr '\\0' 'x'";
    let finished = run(launch(temp.path(), script), no_stop(), None)
        .await
        .expect("runs");
    assert_eq!(finished.exit, Exit::Code(0));
    let size = std::fs::metadata(temp.path().join("worker.log"))
        .expect("log")
        .len();
    assert!(size <= LOG_ROTATE_BYTES, "{size}");
    assert!(temp.path().join("worker.log.1").exists());
}

/// Whether `pid` is dead but not yet reaped (or gone): `/proc` on
/// Linux, `ps` elsewhere (macOS).
fn is_zombie(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s[s.rfind(')')? + 1..].trim_start().to_owned()));
    #[cfg(not(target_os = "linux"))]
    let state = std::process::Command::new("ps")
        .args(["-o", "stat=", "-p", &pid.to_string()])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty());
    state.is_none_or(|s| s.starts_with('Z'))
}
