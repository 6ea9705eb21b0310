//! `dispatch run` end to end, with the scripted test agent
//! (`tests/agent/test_agent.rs`) as every worker, through the `command`
//! backend: statuses, plans, logs, state files, exit codes, timeouts that
//! kill whole process groups, Ctrl-C, the lock, and `dispatch status`.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{alive, Project};

fn status_of(project: &Project, id: &str) -> String {
    project.task_json(id)["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const TWO_ITEMS: &str = "plan: [First step, Second step]";

#[test]
fn a_worker_that_checks_every_item_completes() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ntasks:\n  audit:\n    command: [AGENT, check, sleep:50ms, check, output:all good, done]\n    {TWO_ITEMS}\n"
    ));
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(status_of(&project, "audit"), "complete");
    let plan = project.task_file("audit", "plan.md");
    assert!(
        plan.contains("- [x] First step — done by test agent"),
        "{plan}"
    );
    assert_eq!(project.task_file("audit", "output.md"), "all good\n");
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run-started"));
    assert_eq!(kinds.last(), Some(&"run-ended"));
    assert!(kinds.contains(&"task-started") && kinds.contains(&"task-ended"));
    let checked = events
        .iter()
        .filter(|e| e["event"] == "item" && e["state"] == "done")
        .count();
    assert_eq!(checked, 2, "one event per checked item");
    // The run's own record.
    let run_id = events[0]["run_id"].as_str().expect("run id");
    let run_dir = project.path().join(".dispatch/runs").join(run_id);
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).expect("run.json"))
            .expect("json");
    assert_eq!(run["status"], "complete");
    assert_eq!(run["exit_code"], 0);
    assert!(run_dir.join("manifest.yaml").is_file());
    let logged = std::fs::read_to_string(run_dir.join("events.jsonl")).expect("events.jsonl");
    assert_eq!(logged.lines().count(), events.len());
}

#[test]
fn workers_get_the_dispatch_environment_and_run_in_the_project_root() {
    let project = Project::new();
    project.manifest("version: 1\ntasks:\n  env-task:\n    command: [AGENT, env, check-all]\n    plan: [Print the environment]\n");
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let log = project.task_file("env-task", "worker.log");
    let root = std::fs::canonicalize(project.path()).expect("canonical");
    let task_dir = root.join(".dispatch/tasks/env-task");
    let run_id = events[0]["run_id"].as_str().expect("run id");
    for expected in [
        format!("DISPATCH_RUN_ID={run_id}"),
        "DISPATCH_TASK_ID=env-task".to_owned(),
        format!("DISPATCH_TASK_DIR={}", task_dir.display()),
        format!("DISPATCH_PLAN={}", task_dir.join("plan.md").display()),
        format!("DISPATCH_OUTPUT={}", task_dir.join("output.md").display()),
        format!("DISPATCH_IPC_DIR={}", task_dir.join("ipc").display()),
        format!("CWD={}", root.display()),
    ] {
        assert!(log.contains(&expected), "missing {expected} in\n{log}");
    }
    assert!(
        log.contains("DISPATCH_BIN=") && log.contains("dispatch"),
        "{log}"
    );
}

#[test]
fn statuses_come_from_the_plan_and_the_process() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1
tasks:
  failed-item:
    command: [AGENT, check, 'fail-item:database unreachable']
    {TWO_ITEMS}
  blocked:
    command: [AGENT, 'block-item:which region?']
    {TWO_ITEMS}
  incomplete:
    command: [AGENT, check]
    {TWO_ITEMS}
  crashed:
    command: [AGENT, check, 'exit:3']
    {TWO_ITEMS}
  emptied:
    command: [AGENT, empty-plan]
    {TWO_ITEMS}
  done-marker:
    command: [AGENT, check, done]
    {TWO_ITEMS}
"
    ));
    let (output, _) = project.run(&["--concurrency", "6"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let expect = [
        ("failed-item", "failed", "database unreachable"),
        ("blocked", "blocked", "which region?"),
        (
            "incomplete",
            "incomplete",
            "exited cleanly with 1/2 items done",
        ),
        (
            "crashed",
            "failed",
            "exited with code 3 with 1/2 items done",
        ),
        ("emptied", "failed", "without any checklist items"),
        (
            "done-marker",
            "complete",
            "declared done (ipc/.done) with 1/2 items ticked; 1 never ticked",
        ),
    ];
    for (id, status, reason) in expect {
        let record = project.task_json(id);
        assert_eq!(record["status"], status, "{id}: {record}");
        let actual = record["reason"].as_str().unwrap_or_default();
        assert!(actual.contains(reason), "{id}: {actual}");
    }
}

#[test]
fn a_blocked_task_alone_exits_with_4() {
    let project = Project::new();
    project.manifest(&format!("version: 1\ntasks:\n  ask:\n    command: [AGENT, 'block-item:staging or prod?']\n    {TWO_ITEMS}\n"));
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
}

#[test]
fn a_timeout_kills_the_worker_and_its_grandchildren() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ntasks:\n  stuck:\n    command: [AGENT, check, ignore-term, spawn-hang, hang]\n    timeout: 1s\n    {TWO_ITEMS}\n"
    ));
    let started = Instant::now();
    let (output, _) = project.run(&[]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(status_of(&project, "stuck"), "timed-out");
    let grandchild: i32 = project
        .task_file("stuck", "grandchild.pid")
        .trim()
        .parse()
        .expect("pid written");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !alive(grandchild),
        "grandchild {grandchild} outlived its task"
    );
}

/// Linux only: dispatch finds the worker's descendants that left its group
/// through `/proc`, which macOS does not have.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "Linux only: descendants that left the group are found through /proc"
)]
fn a_timeout_also_kills_a_grandchild_that_left_the_workers_session() {
    // Gemini CLI runs its shell tool with setsid: stopping the worker's
    // process group alone leaves that shell and its jobs running.
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ntasks:\n  stuck:\n    command: [AGENT, check, spawn-hang-detached, hang]\n    timeout: 1s\n    {TWO_ITEMS}\n"
    ));
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(status_of(&project, "stuck"), "timed-out");
    let grandchild: i32 = project
        .task_file("stuck", "grandchild.pid")
        .trim()
        .parse()
        .expect("pid written");
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive(grandchild) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survived = alive(grandchild);
    if survived {
        // SAFETY: the pid this test's worker started and wrote down.
        unsafe {
            libc::kill(grandchild, libc::SIGKILL);
        }
    }
    assert!(
        !survived,
        "grandchild {grandchild} in its own session outlived its task"
    );
}

#[test]
fn a_grandchild_holding_the_output_open_does_not_hang_the_run() {
    let project = Project::new();
    project.manifest(&format!("version: 1\ntasks:\n  leaky:\n    command: [AGENT, spawn-hang, check-all]\n    {TWO_ITEMS}\n"));
    let started = Instant::now();
    let (output, _) = project.run(&[]);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let record = project.task_json("leaky");
    assert!(
        record["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("held its output open"),
        "{record}"
    );
    let log = project.task_file("leaky", "worker.log");
    assert!(log.contains("kept its output open"), "{log}");
}

#[test]
fn concurrency_is_never_exceeded_and_priority_goes_first() {
    let project = Project::new();
    let mut manifest = String::from("version: 1\nconcurrency: 2\ntasks:\n");
    for (id, priority) in [
        ("t1", "low"),
        ("t2", "normal"),
        ("t3", "critical"),
        ("t4", "high"),
        ("t5", "normal"),
    ] {
        manifest.push_str(&format!(
            "  {id}:\n    priority: {priority}\n    command: [AGENT, sleep:150ms, check-all]\n    {TWO_ITEMS}\n"
        ));
    }
    project.manifest(&manifest);
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let mut running = 0;
    let mut peak = 0;
    let mut order = Vec::new();
    for event in &events {
        match event["event"].as_str() {
            Some("task-started") => {
                running += 1;
                peak = peak.max(running);
                order.push(event["task"].as_str().expect("task").to_owned());
            }
            Some("task-ended") => running -= 1,
            _ => {}
        }
    }
    assert_eq!(peak, 2, "at most two at once");
    assert_eq!(order[..2].to_vec(), ["t3", "t4"], "critical and high first");
    assert_eq!(order.last().map(String::as_str), Some("t1"), "low last");
}

#[test]
fn a_failed_need_skips_what_depends_on_it() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1
tasks:
  research:
    command: [AGENT, 'exit:1']
    {TWO_ITEMS}
  implement:
    needs: research
    command: [AGENT, check-all]
    {TWO_ITEMS}
  tests:
    needs: implement
    command: [AGENT, check-all]
    {TWO_ITEMS}
"
    ));
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(status_of(&project, "implement"), "skipped");
    assert_eq!(
        project.task_json("implement")["reason"],
        "needs research, which ended failed"
    );
    assert_eq!(status_of(&project, "tests"), "skipped");
    assert!(
        project.task_file("implement", "worker.log").is_empty(),
        "never launched"
    );
}

#[test]
fn a_retry_relaunches_with_a_prompt_that_points_at_the_plan_so_far() {
    let project = Project::new();
    // Fails on the first attempt after checking one item; the second
    // attempt finishes the plan.
    project.manifest(
        "version: 1
tasks:
  flaky:
    retries: 2
    command:
      - sh
      - -c
      - >-
        if [ -f \"$DISPATCH_TASK_DIR/tried\" ]; then exec AGENT read-stdin check-all; fi;
        touch \"$DISPATCH_TASK_DIR/tried\"; exec AGENT check exit:1
    plan: [First step, Second step]
",
    );
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let record = project.task_json("flaky");
    assert_eq!(record["status"], "complete");
    assert_eq!(record["attempts"].as_array().map(Vec::len), Some(2));
    assert_eq!(record["attempts"][0]["status"], "failed");
    let retried = events
        .iter()
        .any(|e| e["event"] == "task-ended" && e["retrying"] == true);
    assert!(retried);
    let prompt = project.task_file("flaky", "stdin.txt");
    assert!(prompt.contains("This is attempt 2"), "{prompt}");
    assert!(prompt.contains(".dispatch/tasks/flaky/plan.md"), "{prompt}");
}

#[test]
fn the_prompt_arrives_on_stdin_which_is_then_closed() {
    let project = Project::new();
    project.manifest("version: 1\ntasks:\n  reader:\n    prompt: Read me carefully.\n    command: [AGENT, read-stdin, check-all]\n    plan: [Read]\n");
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdin = project.task_file("reader", "stdin.txt");
    assert!(stdin.contains("Read me carefully."), "{stdin}");
    assert!(
        stdin.contains(".dispatch/tasks/reader/plan.md"),
        "the worker prompt tells where the plan is"
    );
}

#[test]
fn floods_and_invalid_utf8_are_logged_without_trouble() {
    let project = Project::new();
    project.manifest("version: 1\ntasks:\n  noisy:\n    command: [AGENT, invalid-utf8, ansi, 'flood:3m', check-all]\n    plan: [Shout]\n");
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let log = std::fs::read(project.path().join(".dispatch/tasks/noisy/worker.log")).expect("log");
    assert!(log.len() >= 3_000_000);
    assert!(
        String::from_utf8(log).is_ok(),
        "the log is valid UTF-8 (lossy)"
    );
}

#[test]
fn secrets_are_redacted_from_logs_and_records() {
    let project = Project::new();
    project.manifest(
        "version: 1\nsecrets: [DEPLOY_KEY]\ntasks:\n  leak:\n    command: [sh, -c, 'echo key=$DEPLOY_TOKEN listed=$DEPLOY_KEY; . ./lib.sh; check_next ok']\n    plan: [Print]\n",
    );
    std::fs::copy("examples/workers/lib.sh", project.path().join("lib.sh")).expect("copy lib.sh");
    let output = project
        .command(&["run", "sweep.yaml", "--quiet"])
        .env("DEPLOY_TOKEN", "tok-1234567890")
        .env("DEPLOY_KEY", "listed-secret-value")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let log = project.task_file("leak", "worker.log");
    assert!(log.contains("key=[redacted DEPLOY_TOKEN]"), "{log}");
    assert!(
        log.contains("listed=[redacted DEPLOY_KEY]"),
        "names listed under `secrets:` too: {log}"
    );
    assert!(!log.contains("tok-1234567890") && !log.contains("listed-secret-value"));
}

#[test]
fn a_missing_program_is_found_before_anything_launches() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  first:\n    command: [AGENT, check-all]\n    plan: [x]\n  audit:\n    model: opus\n    prompt: Audit.\n",
    );
    let output = project
        .command(&["run", "sweep.yaml"])
        .env("PATH", "/nonexistent")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("backend \"claude\" needs the \"claude\" command, which is not on PATH"),
        "{err}"
    );
    assert!(
        err.contains("install Claude Code, or map model \"opus\" to another backend"),
        "{err}"
    );
    assert!(
        !project
            .path()
            .join(".dispatch/tasks/first/worker.log")
            .exists(),
        "nothing launched"
    );
}

#[test]
fn a_second_run_on_the_same_folder_is_refused_and_a_stale_lock_is_taken_over() {
    let project = Project::new();
    project.manifest("version: 1\ntasks:\n  a:\n    command: [AGENT, check-all]\n    plan: [x]\n");
    std::fs::create_dir_all(project.path().join(".dispatch")).expect("mkdir");
    let lock = project.path().join(".dispatch/lock");
    std::fs::write(
        &lock,
        r#"{"pid": 1, "run_id": "20260101-000000-beef", "started_at": "2026-01-01T00:00:00Z"}"#,
    )
    .expect("lock");
    // The holder is whoever holds the OS lock on the file: here, this test.
    let held = std::fs::File::open(&lock).expect("open");
    // SAFETY: flock on a descriptor `held` owns.
    let locked = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&held), libc::LOCK_EX) } == 0;
    assert!(locked);
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("run 20260101-000000-beef (pid 1"),
        "{}",
        stderr(&output)
    );
    drop(held);
    std::fs::write(
        &lock,
        r#"{"pid": 2147483646, "run_id": "20260101-000000-dead", "started_at": "x"}"#,
    )
    .expect("lock");
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(events.iter().any(|e| e["event"] == "warning"
        && e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("20260101-000000-dead")));
    assert!(!lock.exists(), "released at the end");
}

#[test]
fn a_new_run_archives_the_previous_runs_task_files() {
    let project = Project::new();
    std::fs::create_dir(project.path().join(".git")).expect("fake git dir");
    project.manifest(
        "version: 1\ntasks:\n  a:\n    command: [AGENT, check-all, output:first]\n    plan: [x]\n",
    );
    let (_, first) = project.run(&[]);
    let first_id = first[0]["run_id"].as_str().expect("id").to_owned();
    project.manifest(
        "version: 1\ntasks:\n  a:\n    command: [AGENT, check-all, output:second]\n    plan: [x]\n",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(project.task_file("a", "output.md"), "second\n");
    let archived = project
        .path()
        .join(".dispatch/runs")
        .join(&first_id)
        .join("tasks/a/output.md");
    assert_eq!(
        std::fs::read_to_string(archived).expect("archived"),
        "first\n"
    );
    let exclude =
        std::fs::read_to_string(project.path().join(".git/info/exclude")).expect("exclude");
    assert!(exclude.contains("/.dispatch/"));
}

#[test]
fn ctrl_c_stops_every_worker_records_the_state_and_exits_130() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ntasks:\n  long:\n    command: [AGENT, check, spawn-hang, hang]\n    {TWO_ITEMS}\n  later:\n    needs: long\n    command: [AGENT, check-all]\n    {TWO_ITEMS}\n"
    ));
    let child = project
        .command(&["run", "sweep.yaml", "--grace", "300ms"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while project
        .task_file("long", "grandchild.pid")
        .trim()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the worker never started its grandchild"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = i32::try_from(child.id()).expect("pid");
    unsafe_kill(pid, 2);
    let output = child.wait_with_output().expect("exits");
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert_eq!(status_of(&project, "long"), "cancelled");
    assert_eq!(status_of(&project, "later"), "cancelled");
    // An interrupted run still gets its reports.
    let runs = project.path().join(".dispatch/runs");
    let run = std::fs::read_dir(&runs)
        .expect("runs")
        .flatten()
        .next()
        .expect("a run")
        .path();
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("report.json")).expect("report.json"),
    )
    .expect("json");
    assert_eq!(report["status"], "interrupted");
    assert!(run.join("junit.xml").is_file() && run.join("report.md").is_file());
    let grandchild: i32 = project
        .task_file("long", "grandchild.pid")
        .trim()
        .parse()
        .expect("pid");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!alive(grandchild));
}

#[test]
fn status_shows_each_task_with_its_items() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ntasks:\n  audit:\n    command: [AGENT, check, 'fail-item:no access']\n    {TWO_ITEMS}\n  docs:\n    command: [AGENT, check-all]\n    {TWO_ITEMS}\n"
    ));
    project.run(&[]);
    let output = project.command(&["status"]).output().expect("status runs");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("● audit — FAILED: an item failed: Second step — no access"),
        "{text}"
    );
    assert!(
        text.contains("  ✓ First step — done by test agent"),
        "{text}"
    );
    assert!(text.contains("  ! Second step — no access"), "{text}");
    assert!(text.contains("● docs — COMPLETE"), "{text}");
    let json = project
        .command(&["status", "--json"])
        .output()
        .expect("status runs");
    let value: Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(value["tasks"][1]["record"]["status"], "complete");
}

#[test]
fn the_demo_manifest_runs_with_the_shipped_workers() {
    let project = Project::new();
    for path in [
        "manifests/demo.yaml",
        "examples/workers/lib.sh",
        "examples/workers/spelling.sh",
        "examples/workers/todo-count.sh",
        "examples/workers/link-check.sh",
        "examples/demo/notes.md",
        "README.md",
    ] {
        let target = project.path().join(path);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(path, &target).expect("copy");
    }
    std::fs::create_dir_all(project.path().join("src")).expect("mkdir");
    std::fs::write(
        project.path().join("src/lib.rs"),
        "// TODO: one\n// FIXME: two\n",
    )
    .expect("write");
    let output = project
        .command(&["run", "manifests/demo.yaml"])
        .env("DEMO_PAUSE", "0")
        .output()
        .expect("runs");
    // One of the demo's checks fails on purpose, so a newcomer sees both.
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        project.task_json("fix-spelling")["attempts"][0]["checks"][0]["passed"],
        true
    );
    assert_eq!(project.task_json("summarize")["status"], "check-failed");
    let fixed = project.task_file("fix-spelling", "output.md");
    assert!(
        fixed.contains("will receive an email") && !fixed.to_lowercase().contains("recieve"),
        "the question was answered by the rule, so capitals are fixed too: {fixed}"
    );
    let spelling = project.task_json("fix-spelling");
    assert!(spelling["questions"][0]["answered_by"]
        .as_str()
        .unwrap_or_default()
        .contains("manifest rule"));
    let todos = project.task_json("count-todos");
    assert_eq!(todos["findings"][0]["title"], "A FIXME is left in the code");
    assert!(project
        .task_file("count-todos", "output.md")
        .contains("Total: 2"));
    let summary = project.task_file("summarize", "output.md");
    assert!(summary.contains("Relative links in README.md"), "{summary}");
    let err = stderr(&output);
    assert!(
        err.contains("Sweep demo: 3 complete, 1 check-failed"),
        "{err}"
    );
    assert!(
        err.contains("│ examples/demo/notes.md has no Signed-off-by: line"),
        "{err}"
    );
}

fn unsafe_kill(pid: i32, signal: i32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn a_worktree_task_fails_loudly_rather_than_running_in_the_main_checkout() {
    let project = Project::new();
    // A worktree that cannot be made once the run is under way: its
    // folder would go under a regular file.
    for args in [
        &["init", "-q", "-b", "main"][..],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "first",
        ],
    ] {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(project.path())
            .status()
            .expect("git runs");
        assert!(status.success());
    }
    std::fs::write(project.path().join("blocker"), "a file").expect("write");
    project.manifest(&format!(
        "version: 1\ntasks:\n  isolated:\n    worktree: {{ path: blocker/isolated }}\n    command: [AGENT, output:ran, check-all]\n    {TWO_ITEMS}\n  plain:\n    command: [AGENT, check-all]\n    {TWO_ITEMS}\n"
    ));
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(status_of(&project, "isolated"), "failed");
    assert!(project.task_json("isolated")["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("could not be made, so it did not run (and not in the main checkout instead)"));
    assert!(
        project.task_file("isolated", "output.md").is_empty(),
        "the worker never ran"
    );
    assert_eq!(status_of(&project, "plain"), "complete");
}

/// A backend that prints Claude Code's stream-json, so the runner reads
/// usage from it as it would from the real CLI. Each task gives the agent's
/// script in `vars.script`.
const FAKE_CLAUDE: &str = "backends:
  fake-claude:
    command: [sh, -c, 'exec {{ vars.script }}']
    events: claude
";

fn assistant_turn(id: &str, tokens: u64) -> String {
    format!(
        "'print:{{\"type\":\"assistant\",\"message\":{{\"id\":\"{id}\",\"usage\":{{\"input_tokens\":{tokens},\"output_tokens\":0}}}}}}'"
    )
}

/// A task on the fake Claude backend running `script` (agent steps).
fn fake_claude_task(id: &str, extra: &str, script: &str) -> String {
    format!("  {id}:\n    backend: fake-claude\n{extra}    {TWO_ITEMS}\n    vars:\n      script: |-\n        AGENT {script}\n")
}

#[test]
fn a_worker_past_its_budget_is_stopped_and_keeps_its_plan() {
    let project = Project::new();
    let script = format!(
        "check {} {} {} hang",
        assistant_turn("m1", 10),
        assistant_turn("m2", 10),
        assistant_turn("m3", 10)
    );
    project.manifest(&format!(
        "version: 1\n{FAKE_CLAUDE}tasks:\n{}",
        fake_claude_task("spender", "    budget: { max_turns: 2 }\n", &script)
    ));
    let started = Instant::now();
    let (output, _) = project.run(&[]);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let record = project.task_json("spender");
    assert_eq!(record["status"], "budget-exceeded", "{record}");
    assert_eq!(record["reason"], "took 3 turns of a 2-turn budget");
    assert_eq!(record["usage"]["turns"], 3);
    assert!(
        project
            .task_file("spender", "plan.md")
            .contains("- [x] First step"),
        "the plan is kept"
    );
}

#[test]
fn once_the_sweeps_budget_is_spent_no_new_task_starts() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\nconcurrency: 1\nbudget: {{ max_tokens: 100 }}\n{FAKE_CLAUDE}tasks:\n{}{}",
        fake_claude_task(
            "first",
            "    priority: high\n",
            &format!("{} check-all", assistant_turn("m1", 150))
        ),
        fake_claude_task("second", "", "check-all"),
    ));
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        status_of(&project, "first"),
        "complete",
        "a running task finishes"
    );
    assert_eq!(status_of(&project, "second"), "skipped");
    assert!(project.task_json("second")["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("budget is spent"));
}

#[test]
fn symlinks_a_worker_plants_are_never_followed() {
    let project = Project::new();
    let outside = project.path().join("outside.txt");
    std::fs::write(&outside, "precious").expect("write");
    // The worker swaps task.json for a link to a file outside the state
    // folder, then its plan for a link too.
    project.manifest(&format!(
        "version: 1\ntasks:\n  sneaky:\n    command: [sh, -c, 'ln -sf {0} \"$DISPATCH_TASK_DIR/task.json\"; ln -sf {0} \"$DISPATCH_PLAN\"']\n    plan: [Behave]\n",
        outside.display()
    ));
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(&outside).expect("read"),
        "precious",
        "nothing was written through a link"
    );
    let record = project.task_json("sneaky");
    assert_eq!(record["status"], "failed");
    assert_eq!(record["reason"], "plan.md is missing or unreadable");
}

#[test]
fn a_huge_plan_is_read_only_so_far() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  big:\n    command: [sh, -c, 'yes \"* [x] again\" | head -c 5000000 >> \"$DISPATCH_PLAN\"']\n    plan: [Grow]\n",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let record = project.task_json("big");
    assert_eq!(record["status"], "incomplete", "its own item is still open");
    let total = record["items"]["total"].as_u64().expect("total");
    assert!(
        total > 1000 && total < 200_000,
        "only the first MiB is read: {total}"
    );
}

#[test]
fn plans_rewritten_the_way_agents_write_them_are_understood() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ntasks:\n  rewriter:\n    command: [AGENT, 'rewrite-plan:# Mine\\r\\n\\r\\n* [X] First step: done\\r\\n  * [x] a nested detail\\r\\n* [x] Second step\\r\\n']\n    {TWO_ITEMS}\n"
    ));
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let record = project.task_json("rewriter");
    assert_eq!(record["status"], "complete", "{record}");
    assert_eq!(record["items"]["total"], 3);
}

#[test]
fn a_second_ctrl_c_kills_at_once() {
    let project = Project::new();
    project.manifest(&format!("version: 1\ntasks:\n  stubborn:\n    command: [AGENT, ignore-term, check, hang]\n    {TWO_ITEMS}\n"));
    let child = project
        .command(&["run", "sweep.yaml", "--grace", "60s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !project.task_file("stubborn", "plan.md").contains("[x]") {
        assert!(Instant::now() < deadline, "the worker never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = i32::try_from(child.id()).expect("pid");
    let interrupted = Instant::now();
    unsafe_kill(pid, 2);
    std::thread::sleep(Duration::from_millis(300));
    unsafe_kill(pid, 2);
    let output = child.wait_with_output().expect("exits");
    assert!(
        interrupted.elapsed() < Duration::from_secs(20),
        "the 60s grace was cut short"
    );
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("interrupted again: killing workers"), "{err}");
    assert_eq!(status_of(&project, "stubborn"), "cancelled");
}

#[test]
fn ci_output_is_plain_timestamped_lines() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ntasks:\n  audit:\n    command: [AGENT, check, check]\n    {TWO_ITEMS}\n"
    ));
    let output = project
        .command(&["run", "sweep.yaml"])
        .env("CI", "true")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        !err.contains('\u{1b}'),
        "no escape codes in CI logs: {err:?}"
    );
    let stamped = regex_like_time(&err);
    assert!(
        stamped >= 4,
        "run, start, two items, end are timestamped lines:\n{err}"
    );
    assert!(
        err.contains("audit: ✓ First step — done by test agent ("),
        "{err}"
    );
    assert!(err.contains("Sweep sweep: 1 complete"), "{err}");
}

/// How many lines start with `HH:MM:SS `.
fn regex_like_time(text: &str) -> usize {
    text.lines()
        .filter(|l| {
            let b = l.as_bytes();
            b.len() > 9
                && b[2] == b':'
                && b[5] == b':'
                && b[8] == b' '
                && b[..8].iter().filter(|c| c.is_ascii_digit()).count() == 6
        })
        .count()
}

#[test]
fn caps_per_backend_are_never_exceeded_and_priority_goes_first_within_a_cap() {
    let project = Project::new();
    project.manifest(
        "version: 1
concurrency: { total: 4, slow: 1 }
backends:
  slow: { command: [AGENT, sleep:120ms, check-all] }
  fast: { command: [AGENT, sleep:120ms, check-all] }
tasks:
  s1: { backend: slow, plan: [Work] }
  s2: { backend: slow, plan: [Work] }
  s3: { backend: slow, plan: [Work], priority: high }
  f1: { backend: fast, plan: [Work] }
  f2: { backend: fast, plan: [Work] }
  f3: { backend: fast, plan: [Work] }
",
    );
    let (output, events) = project.run(&[]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let backend_of = |task: &str| {
        if task.starts_with('s') {
            "slow"
        } else {
            "fast"
        }
    };
    let mut running: std::collections::HashMap<&str, usize> = Default::default();
    let mut most: std::collections::HashMap<&str, usize> = Default::default();
    let mut first_slow = None;
    for event in &events {
        let task = event["task"].as_str().unwrap_or_default();
        match event["event"].as_str() {
            Some("task-started") => {
                let backend = backend_of(task);
                let now = running.entry(backend).or_default();
                *now += 1;
                let most = most.entry(backend).or_default();
                *most = (*most).max(*now);
                if backend == "slow" && first_slow.is_none() {
                    first_slow = Some(task.to_owned());
                }
            }
            Some("task-ended") => *running.entry(backend_of(task)).or_default() -= 1,
            _ => {}
        }
    }
    assert_eq!(most["slow"], 1, "the cap of 1 holds: {events:?}");
    assert!(
        most["fast"] >= 2,
        "an uncapped backend runs alongside: {most:?}"
    );
    assert_eq!(
        first_slow.as_deref(),
        Some("s3"),
        "priority first within the cap"
    );
}

#[test]
fn once_a_models_budget_is_spent_no_new_task_on_it_starts() {
    let project = Project::new();
    let task = |id: &str, model: &str, extra: &str, script: &str| {
        format!("  {id}:\n    model: {model}\n{extra}    {TWO_ITEMS}\n    vars:\n      script: |-\n        AGENT {script}\n")
    };
    project.manifest(&format!(
        "version: 1\nconcurrency: 1\nmodels:\n  cheap: {{ backend: fake-claude, budget: {{ max_tokens: 100 }} }}\n  other: {{ backend: fake-claude }}\n{FAKE_CLAUDE}tasks:\n{}{}{}",
        task("first", "cheap", "    priority: high\n", &format!("{} check-all", assistant_turn("m1", 150))),
        task("second", "cheap", "", "check-all"),
        task("third", "other", "    priority: low\n", "check-all"),
    ));
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        status_of(&project, "first"),
        "complete",
        "a running task finishes"
    );
    assert_eq!(status_of(&project, "second"), "skipped");
    assert_eq!(
        project.task_json("second")["reason"],
        "not started: model cheap's budget is spent (used 150 tokens of a 100-token budget)"
    );
    assert_eq!(
        status_of(&project, "third"),
        "complete",
        "other models go on"
    );
    let run_id = events[0]["run_id"].as_str().expect("run id");
    let run_dir = project.path().join(".dispatch/runs").join(run_id);
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("report.json")).expect("report.json"),
    )
    .expect("json");
    let cheap = &report["totals"]["models"][0];
    assert_eq!(cheap["model"], "cheap");
    assert_eq!(cheap["usage"]["input_tokens"], 150);
    assert_eq!(cheap["budget"]["max_tokens"], 100);
    let markdown = std::fs::read_to_string(run_dir.join("report.md")).expect("report.md");
    assert!(markdown.contains("## Spend against budget"), "{markdown}");
    assert!(
        markdown.contains("| model cheap | 1 | 150 | — | 100 tokens |"),
        "{markdown}"
    );
}

/// A sweep where `flaky` fails the first time it runs and succeeds after,
/// `after` needs it, and every worker notes its run in `runs.log`.
const FLAKY_SWEEP: &str = "version: 1
tasks:
  steady:
    command: [sh, -c, 'echo steady >> runs.log; exec AGENT check-all']
    plan: [Work]
  flaky:
    command: [sh, -c, 'echo flaky >> runs.log; if [ -f tried ]; then exec AGENT check-all; else touch tried; exec AGENT check fail-item:boom; fi']
    plan: [First, Second]
  after:
    needs: flaky
    command: [sh, -c, 'echo after >> runs.log; exec AGENT check-all']
    plan: [Work]
";

/// Which workers ran, sorted (workers that run at once log in any order).
fn runs_log(project: &Project) -> Vec<String> {
    let mut runs: Vec<String> = std::fs::read_to_string(project.path().join("runs.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    runs.sort();
    runs
}

fn report_of(project: &Project, run_id: &str) -> Value {
    let path = project
        .path()
        .join(".dispatch/runs")
        .join(run_id)
        .join("report.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("report.json")).expect("json")
}

#[test]
fn retry_failed_reruns_only_what_failed_and_carries_the_rest_over() {
    let project = Project::new();
    project.manifest(FLAKY_SWEEP);
    let (output, first) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1));
    let first_id = first[0]["run_id"].as_str().expect("run id").to_owned();
    assert_eq!(status_of(&project, "after"), "skipped");

    let (output, second) = project.run(&["--retry-failed", "latest"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let second_id = second[0]["run_id"].as_str().expect("run id").to_owned();
    assert_eq!(
        runs_log(&project),
        ["after", "flaky", "flaky", "steady"],
        "steady never ran again"
    );
    assert!(second.iter().any(|e| e["event"] == "task-carried"
        && e["task"] == "steady"
        && e["from_run"] == first_id.as_str()));
    let flaky = project.task_json("flaky");
    assert_eq!(flaky["status"], "complete");
    let attempts = flaky["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "both attempts stay visible: {flaky}");
    assert_eq!(attempts[0]["status"], "failed");
    assert_eq!(attempts[1]["status"], "complete");
    assert!(project
        .task_file("flaky", "plan.md")
        .contains("- [x] First"));
    assert_eq!(
        project.task_json("steady")["carried_from"],
        first_id.as_str()
    );

    // The rerun's report covers the whole sweep; the first one is intact.
    let merged = report_of(&project, &second_id);
    assert_eq!(merged["exit_code"], 0);
    assert_eq!(merged["continues"], first_id.as_str());
    assert_eq!(merged["tasks"][0]["carried_from"], first_id.as_str());
    assert_eq!(merged["totals"]["statuses"]["complete"], 3, "{merged}");
    let original = report_of(&project, &first_id);
    assert_eq!(original["exit_code"], 1);
    let statuses: Vec<&str> = original["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["complete", "failed", "skipped"]);
    let status = project
        .command(&["status", &first_id])
        .output()
        .expect("status");
    assert!(String::from_utf8_lossy(&status.stdout).contains("● flaky — FAILED"));
}

#[test]
fn rerun_runs_the_named_tasks_again_and_keeps_their_earlier_attempts() {
    let project = Project::new();
    project.manifest(FLAKY_SWEEP);
    project.run(&[]);
    let (output, _) = project.run(&["--rerun", "steady"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "flaky is carried over, failed"
    );
    assert_eq!(runs_log(&project), ["flaky", "steady", "steady"]);
    let steady = project.task_json("steady");
    assert_eq!(
        steady["attempts"].as_array().map(Vec::len),
        Some(2),
        "{steady}"
    );
    assert_eq!(status_of(&project, "flaky"), "failed");

    let (output, _) = project.run(&["--rerun", "stedy"]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("`stedy`, which is not a task of this manifest; did you mean `steady`?"),
        "{text}"
    );
}

#[test]
fn a_rerun_does_not_need_the_programs_of_tasks_it_carries_over() {
    let project = Project::new();
    let tool = project.path().join("steady.sh");
    std::fs::write(
        &tool,
        "#!/bin/sh\nexec AGENT check-all\n"
            .replace("AGENT", &common::agent().display().to_string()),
    )
    .expect("write");
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    project.manifest(
        "version: 1
tasks:
  steady:
    command: [./steady.sh]
    plan: [Work]
  flaky:
    command: [sh, -c, 'if [ -f tried ]; then exec AGENT check-all; else touch tried; exec AGENT fail-item:boom; fi']
    plan: [Work]
",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1));
    // The carried task's program is gone (another machine, say).
    std::fs::remove_file(&tool).expect("remove");
    let (output, _) = project.run(&["--retry-failed", "latest"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(status_of(&project, "flaky"), "complete");
}

/// A sweep large enough that its task folders are written by several
/// threads: every folder is complete, and a second run archives each of
/// the first run's folders before writing its own.
#[test]
fn a_large_sweep_writes_and_archives_every_task_folder() {
    let project = Project::new();
    let mut manifest = String::from("version: 1\nconcurrency: 8\ntasks:\n");
    for i in 0..100 {
        manifest.push_str(&format!(
            "  t{i:03}:\n    command: [AGENT, check-all]\n    plan: [Item {i}]\n"
        ));
    }
    project.manifest(&manifest);
    let run_ids: Vec<String> = (0..2)
        .map(|_| {
            let (output, events) = project.run(&[]);
            assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
            events
                .iter()
                .find(|e| e["event"] == "run-started")
                .and_then(|e| e["run_id"].as_str())
                .expect("run id")
                .to_owned()
        })
        .collect();
    for i in 0..100 {
        let id = format!("t{i:03}");
        assert_eq!(project.task_json(&id)["run_id"], run_ids[1].as_str());
        assert_eq!(project.task_json(&id)["status"], "complete");
        assert!(project
            .task_file(&id, "plan.md")
            .contains(&format!("- [x] Item {i}")));
        let archived = project
            .path()
            .join(".dispatch/runs")
            .join(&run_ids[0])
            .join("tasks")
            .join(&id);
        let old: Value = serde_json::from_str(
            &std::fs::read_to_string(archived.join("task.json")).expect("archived task.json"),
        )
        .expect("json");
        assert_eq!(old["run_id"], run_ids[0].as_str(), "{id}");
        assert!(archived.join("plan.md").is_file(), "{id}");
    }
}

/// The scheduling pass skips tasks that have left `pending`; a task that
/// fails after later ones have finished must still be retried (the pass
/// must look back for it, or the run would never end).
#[test]
fn an_early_task_that_fails_after_later_ones_finished_is_retried() {
    let project = Project::new();
    project.manifest(
        "version: 1
concurrency: 2
tasks:
  slow-flaky:
    retries: 1
    command:
      - sh
      - -c
      - >-
        if [ -f \"$DISPATCH_TASK_DIR/tried\" ]; then exec AGENT check-all; fi;
        touch \"$DISPATCH_TASK_DIR/tried\"; exec AGENT sleep:600ms exit:1
    plan: [Work]
  quick-a:
    command: [AGENT, check-all]
    plan: [Work]
  quick-b:
    command: [AGENT, check-all]
    plan: [Work]
  quick-c:
    command: [AGENT, check-all]
    plan: [Work]
",
    );
    let mut child = project
        .command(&["run", "sweep.yaml", "--json", "--retry-delay", "50ms"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dispatch starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run never ended: the failed task was not retried");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let record = project.task_json("slow-flaky");
    assert_eq!(record["status"], "complete");
    assert_eq!(record["attempts"].as_array().map(Vec::len), Some(2));
    // The quick tasks ended while its first attempt ran.
    let first_end = record["attempts"][0]["ended_at"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for id in ["quick-a", "quick-b", "quick-c"] {
        let ended = project.task_json(id)["ended_at"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            ended <= first_end,
            "{id} ended at {ended}, after {first_end}"
        );
    }
}
