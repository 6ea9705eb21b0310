//! The engine's one runtime thread serves every worker's timeout and
//! Ctrl-C, so nothing slow may run on it. These tests make the slow work
//! slower on purpose (debug builds read `DISPATCH_TEST_WRITE_DELAY_MS` and
//! `DISPATCH_TEST_PROC_SCAN_DELAY_MS`) and check that what the runner
//! records happened before the delay could have passed: had the work run
//! on the runtime's thread, the recorded durations would include it.
//! They also check that a cancel sent during a retry's back-off is read
//! before the task is launched again.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Project;
use serde_json::Value;

/// Every state write takes this long in the stalled-disk tests: far longer
/// than the timeouts and grace they check.
const WRITE_DELAY_MS: u64 = 2000;

/// `dispatch run --json` with stdout piped, to follow its events live.
fn spawn_run(project: &Project, extra: &[&str], env: &[(&str, &str)]) -> Child {
    let mut args = vec!["run", "sweep.yaml", "--json", "--grace", "300ms"];
    args.extend_from_slice(extra);
    let mut command = project.command(&args);
    for (key, value) in env {
        command.env(key, value);
    }
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dispatch starts")
}

/// Read the run's events until one matches `stop` (or the stream ends);
/// returns the events read and the reader for the rest.
fn events_until(lines: &mut impl BufRead, mut stop: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut events = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line) {
            Ok(0) | Err(_) => return events,
            Ok(_) => {}
        }
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let found = stop(&event);
        events.push(event);
        if found {
            return events;
        }
    }
}

fn all_events(child: &mut Child) -> Vec<Value> {
    let stdout = child.stdout.take().expect("piped stdout");
    events_until(&mut BufReader::new(stdout), |_| false)
}

fn ended<'a>(events: &'a [Value], task: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == "task-ended" && e["task"] == task)
        .collect()
}

/// The recorded run time of `task`, which must have ended once, with
/// `status`.
fn run_time(events: &[Value], task: &str, status: &str) -> u64 {
    let end = ended(events, task);
    assert_eq!(end.len(), 1, "{events:?}");
    assert_eq!(end[0]["status"], status);
    end[0]["duration_ms"].as_u64().expect("a duration")
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the delay is read by debug builds only"
)]
fn a_timeout_is_acted_on_while_state_writes_stall() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  stuck:\n    command: [AGENT, hang]\n    timeout: 300ms\n    plan: [One]\n",
    );
    let delay = WRITE_DELAY_MS.to_string();
    let mut child = spawn_run(&project, &[], &[("DISPATCH_TEST_WRITE_DELAY_MS", &delay)]);
    let events = all_events(&mut child);
    let status = child.wait().expect("dispatch ends");
    assert_eq!(status.code(), Some(1), "{events:?}");
    // Its start is written (after a delay) once it is spawned; the worker
    // was stopped at its timeout, well before that write could end.
    let took = run_time(&events, "stuck", "timed-out");
    assert!(
        took < WRITE_DELAY_MS,
        "the timeout waited for a state write: the worker ran {took} ms"
    );
    // The delayed writes still all land, in the end.
    let record = project.task_json("stuck");
    assert_eq!(record["status"], "timed-out", "{record}");
    let log = std::fs::read_dir(project.path().join(".dispatch/runs"))
        .expect("runs")
        .flatten()
        .next()
        .expect("a run")
        .path()
        .join("events.jsonl");
    let logged = std::fs::read_to_string(log).expect("events.jsonl");
    assert!(logged
        .lines()
        .last()
        .is_some_and(|l| l.contains("run-ended")));
}

/// A worker's output is written to `worker.log` on a thread of its own:
/// a chatty worker on a stalled disk delays neither its own timeout nor
/// anyone else's, and its log is still whole at the end.
#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the delay is read by debug builds only"
)]
fn a_timeout_is_acted_on_while_worker_log_writes_stall() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  chatty:\n    command: [AGENT, 'print:one', 'print:two', 'print:three', hang]\n    timeout: 300ms\n    plan: [One]\n",
    );
    let delay = WRITE_DELAY_MS.to_string();
    let mut child = spawn_run(&project, &[], &[("DISPATCH_TEST_WRITE_DELAY_MS", &delay)]);
    let events = all_events(&mut child);
    let status = child.wait().expect("dispatch ends");
    assert_eq!(status.code(), Some(1), "{events:?}");
    let took = run_time(&events, "chatty", "timed-out");
    assert!(
        took < WRITE_DELAY_MS,
        "the timeout waited for worker.log writes: the worker ran {took} ms"
    );
    let log = std::fs::read_to_string(project.path().join(".dispatch/tasks/chatty/worker.log"))
        .expect("worker.log");
    for line in ["one", "two", "three", "ran past its timeout"] {
        assert!(log.contains(line), "{line:?} missing from {log:?}");
    }
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the delay is read by debug builds only"
)]
fn ctrl_c_is_acted_on_while_state_writes_stall() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  long:\n    command: [AGENT, 'write:started=yes', hang]\n    plan: [One]\n",
    );
    let delay = WRITE_DELAY_MS.to_string();
    let mut child = spawn_run(&project, &[], &[("DISPATCH_TEST_WRITE_DELAY_MS", &delay)]);
    // The worker is up: its start is being written now (for 2 s).
    wait_for("the worker to start", || {
        project.path().join("started").exists()
    });
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) with the positive pid of our own child process.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let events = all_events(&mut child);
    let status = child.wait().expect("dispatch ends");
    assert_eq!(status.code(), Some(130), "{events:?}");
    let took = run_time(&events, "long", "cancelled");
    assert!(
        took < WRITE_DELAY_MS,
        "Ctrl-C waited for a state write: the worker ran {took} ms"
    );
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the delay is read by debug builds only"
)]
fn a_worker_ending_is_noticed_while_another_workers_proc_scan_stalls() {
    let project = Project::new();
    project.manifest(
        "version: 1\nconcurrency: 2\ntasks:\n  stuck:\n    command: [AGENT, hang]\n    timeout: 200ms\n    plan: [One]\n  quick:\n    command: [AGENT, 'sleep:800ms', check-all, done]\n    plan: [One]\n",
    );
    // The scan at `stuck`'s timeout takes 3 s; `quick` ends meanwhile.
    let mut child = spawn_run(
        &project,
        &[],
        &[("DISPATCH_TEST_PROC_SCAN_DELAY_MS", "3000")],
    );
    let events = all_events(&mut child);
    child.wait().expect("dispatch ends");
    let quick = ended(&events, "quick");
    assert_eq!(quick.len(), 1, "{events:?}");
    assert_eq!(quick[0]["status"], "complete");
    let took = quick[0]["duration_ms"].as_u64().expect("a duration");
    assert!(
        took < 3000,
        "the other worker's /proc scan held this one's end up: it ran {took} ms"
    );
    assert_eq!(ended(&events, "stuck")[0]["status"], "timed-out");
}

#[test]
fn a_cancel_during_a_retry_backoff_is_read_before_the_relaunch() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  flaky:\n    command: [AGENT, 'exit:1']\n    retries: 2\n    plan: [One]\n",
    );
    let mut child = spawn_run(&project, &["--retry-delay", "20s"], &[]);
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout);
    let first = events_until(&mut lines, |e| {
        e["event"] == "task-ended" && e["retrying"] == true
    });
    assert!(
        first.iter().any(|e| e["retrying"] == true),
        "the first attempt failed and is retried: {first:?}"
    );
    let output = project
        .command(&["cancel", "--task", "flaky"])
        .output()
        .expect("cancel runs");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let rest = events_until(&mut lines, |_| false);
    child.wait().expect("dispatch ends");
    let events: Vec<Value> = first.into_iter().chain(rest).collect();
    let starts = events
        .iter()
        .filter(|e| e["event"] == "task-started")
        .count();
    assert_eq!(starts, 1, "relaunched after the cancel: {events:?}");
    let end = ended(&events, "flaky");
    assert_eq!(
        end.last().map(|e| &e["status"]),
        Some(&Value::from("cancelled"))
    );
    let record = project.task_json("flaky");
    assert_eq!(record["status"], "cancelled", "{record}");
    assert_eq!(record["attempts"].as_array().map(Vec::len), Some(1));
}

/// An agent CLI's launch files (its private config folder; a prompt file
/// for a backend that reads one) are written on a blocking thread: while
/// one task's are slow to write, another worker's timeout is acted on at
/// once, and the slow task still launches once they are written.
#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the delay is read by debug builds only"
)]
fn a_timeout_is_acted_on_while_a_launch_writes_its_files() {
    let project = Project::new();
    // A stand-in `claude` (the built-in backend needs it on PATH), so the
    // task gets a private config folder; it exits at once.
    let bin = project.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    let claude = bin.join("claude");
    std::fs::write(
        &claude,
        "#!/bin/sh\ntouch \"$DISPATCH_IPC_DIR/../claude-ran\"\n",
    )
    .expect("write");
    std::fs::set_permissions(&claude, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    project.manifest(
        "version: 1\nconcurrency: 2\ntasks:\n  stuck:\n    command: [AGENT, hang]\n    timeout: 300ms\n    plan: [One]\n  cli:\n    model: sonnet\n    prompt: Go\n    plan: [Go]\n",
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let delay = WRITE_DELAY_MS.to_string();
    let mut child = spawn_run(
        &project,
        &[],
        &[("PATH", &path), ("DISPATCH_TEST_STAGE_DELAY_MS", &delay)],
    );
    let events = all_events(&mut child);
    child.wait().expect("dispatch ends");
    let took = run_time(&events, "stuck", "timed-out");
    assert!(
        took < WRITE_DELAY_MS,
        "the timeout waited for another task's launch files: the worker ran {took} ms"
    );
    // The slow task launched once its files were written, with them.
    assert_eq!(ended(&events, "cli").len(), 1, "{events:?}");
    assert!(
        project
            .path()
            .join(".dispatch/tasks/cli/claude-ran")
            .exists(),
        "the slow task's worker ran"
    );
    assert!(project.path().join(".dispatch/tasks/cli/cli").is_dir());
}

/// A worker with a short timeout, and beside it two more launched one
/// after the other (whichever thread makes the first folders, a launch
/// comes while the first worker runs): with the disk stalled by `delay`
/// (`WRITE_DELAY_MS`), what those launches do must not hold up its
/// timeout, which `what` names.
fn timeout_kept_beside_launches(delay: &str, what: &str) {
    let ms = WRITE_DELAY_MS.to_string();
    let (took, _) = first_timeout_beside_a_launch(&[(delay, &ms)]);
    assert!(
        took < WRITE_DELAY_MS,
        "the timeout waited for {what}: the worker ran {took} ms"
    );
}

fn first_timeout_beside_a_launch(env: &[(&str, &str)]) -> (u64, Vec<Value>) {
    let project = Project::new();
    project.manifest(
        "version: 1\nconcurrency: 2\ntasks:\n  stuck:\n    command: [AGENT, hang]\n    timeout: 300ms\n    plan: [One]\n  quick:\n    command: [AGENT, check-all, done]\n    plan: [One]\n  second:\n    command: [AGENT, 'print:hello', check-all, done]\n    plan: [One]\n",
    );
    let mut child = spawn_run(&project, &[], env);
    let events = all_events(&mut child);
    child.wait().expect("dispatch ends");
    let took = run_time(&events, "stuck", "timed-out");
    let second = ended(&events, "second");
    assert_eq!(second.len(), 1, "the second task still ran: {events:?}");
    assert_eq!(second[0]["status"], "complete", "{events:?}");
    let log = project.task_file("second", "worker.log");
    assert!(log.contains("hello"), "its output is logged: {log:?}");
    (took, events)
}

/// A task's folder not yet written when its turn comes is written (or
/// waited for) on a blocking thread, not on the runner's.
#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the delay is read by debug builds only"
)]
fn a_timeout_is_acted_on_while_a_launch_waits_for_its_folder() {
    timeout_kept_beside_launches("DISPATCH_TEST_FOLDER_DELAY_MS", "another task's folder");
}

/// Launches that wait for their folders (written side by side, off the
/// runner's thread) still start in the schedule's order.
#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the delay is read by debug builds only"
)]
fn launches_waiting_for_their_folders_keep_the_schedules_order() {
    let project = Project::new();
    let priorities = ["low", "normal", "high", "critical", "normal", "high"];
    let mut manifest = String::from("version: 1\nconcurrency: 6\ntasks:\n");
    for (i, priority) in priorities.iter().enumerate() {
        manifest.push_str(&format!(
            "  t{i}:\n    priority: {priority}\n    command: [AGENT, check-all, done]\n    plan: [One]\n"
        ));
    }
    project.manifest(&manifest);
    let mut child = spawn_run(&project, &[], &[("DISPATCH_TEST_FOLDER_DELAY_MS", "300")]);
    let events = all_events(&mut child);
    assert_eq!(
        child.wait().expect("dispatch ends").code(),
        Some(0),
        "{events:?}"
    );
    let started: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "task-started")
        .filter_map(|e| e["task"].as_str())
        .collect();
    assert_eq!(started, ["t3", "t2", "t5", "t1", "t4", "t0"], "{events:?}");
}

/// A task skipped before its folder is written (its need failed) has its
/// record written with the folder, off the runner's thread: while the
/// disk stalls, another worker's timeout is still acted on at once.
#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the delay is read by debug builds only"
)]
fn a_timeout_is_acted_on_while_a_skipped_tasks_folder_is_written() {
    let project = Project::new();
    // Folders take 2 s each. `failing`'s and `stuck`'s are written side
    // by side (by the folder thread, which takes `failing` first as
    // `dependent` needs it, and for `stuck`'s launch), and both start 2 s
    // in. `failing` ends at once, and `dependent` is skipped while its
    // folder is still being written, until 4 s; `stuck` times out at 3 s.
    project.manifest(
        "version: 1\nconcurrency: 2\ntasks:\n  stuck:\n    priority: critical\n    command: [AGENT, hang]\n    timeout: 1s\n    plan: [One]\n  failing:\n    priority: high\n    command: [AGENT, 'exit:1']\n    plan: [One]\n  dependent:\n    needs: failing\n    command: [AGENT, check-all]\n    plan: [One]\n",
    );
    let delay = WRITE_DELAY_MS.to_string();
    let mut child = spawn_run(&project, &[], &[("DISPATCH_TEST_FOLDER_DELAY_MS", &delay)]);
    let events = all_events(&mut child);
    child.wait().expect("dispatch ends");
    let took = run_time(&events, "stuck", "timed-out");
    assert!(
        took < 1700,
        "the timeout waited for a skipped task's folder: the worker ran {took} ms"
    );
    // The skip is on record, not the pending record its folder began with.
    let record = project.task_json("dependent");
    assert_eq!(record["status"], "skipped", "{record}");
}

/// A worker's `worker.log` is opened on the log thread with its first
/// bytes, not by its launch on the runner's thread.
#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "the delay is read by debug builds only"
)]
fn a_timeout_is_acted_on_while_a_launch_opens_its_log() {
    timeout_kept_beside_launches(
        "DISPATCH_TEST_WRITE_DELAY_MS",
        "another worker's log to open",
    );
}

/// A backend that reads its prompt from a file finds, at each attempt,
/// that attempt's prompt there: written (off the runtime's thread) before
/// the worker starts, the retry's saying which attempt it is.
#[test]
fn each_attempt_reads_its_own_prompt_file() {
    let project = Project::new();
    project.manifest(
        "version: 1
backends:
  filer:
    command: [sh, -c, 'cat \"$1\" >> prompts.txt; exit 1', filer, '{{ prompt_file }}']
    prompt: file
tasks:
  reader:
    backend: filer
    prompt: Read me from a file.
    plan: [One]
    retries: 1
",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let prompts = std::fs::read_to_string(project.path().join("prompts.txt")).expect("read");
    assert_eq!(
        prompts.matches("Read me from a file.").count(),
        2,
        "{prompts}"
    );
    let (first, retry) = prompts
        .split_once("## This is attempt 2")
        .expect("the retry's prompt");
    assert!(first.contains("Read me from a file."), "{prompts}");
    assert!(!first.contains("This is attempt"), "{prompts}");
    assert!(retry.contains("did not finish"), "{prompts}");
}
