//! Processes never run twice and never outlive their task: escaped
//! descendants (setsid, double fork) are stopped, a resumed run stops
//! what its dead predecessor left, a hang-up stops the sweep in order,
//! signals reach only the process that was recorded, one run holds the
//! state folder, and a low open-files limit fails no task.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::Project;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pid a worker wrote to `name` in the project folder.
fn pid_in(project: &Project, name: &str) -> i32 {
    let text = std::fs::read_to_string(project.path().join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Alive and not a zombie.
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .and_then(|i| s[i + 1..].split_whitespace().next().map(str::to_owned))
        })
        .is_some_and(|state| state != "Z" && state != "X")
}

/// Kill a process the test knows about, if a failed assertion left it.
fn cleanup(pids: &[i32]) {
    for &pid in pids {
        if pid > 1 && running(pid) {
            // SAFETY: signals a process this test's worker started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

fn warnings(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "warning")
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_setsid_daemon_and_a_double_fork_do_not_outlive_their_task() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  escape:
    command:
      - sh
      - -c
      # Each daemon writes its own pid once it has left the worker's
      # group, and the worker waits for both: a daemon still in the group
      # when the worker ends is stopped with the group, not found as a
      # stray, and the test would then depend on the scheduler.
      - |
        setsid sh -c 'echo $$ > setsid.pid; exec sleep 300' >/dev/null 2>&1 &
        sh -c \"setsid sh -c 'echo \\$\\$ > double.pid; exec sleep 301' >/dev/null 2>&1 &\"
        until [ -s setsid.pid ] && [ -s double.pid ]; do sleep 0.01; done
        exec AGENT check-all
    plan: [Work]
  slow:
    command: [sh, -c, 'setsid sleep 302 >/dev/null 2>&1 & echo $! > timeout.pid; exec AGENT hang']
    plan: [Work]
    timeout: 1s
",
    );
    let (output, events) = project.run(&[]);
    let pids = [
        pid_in(&project, "setsid.pid"),
        pid_in(&project, "double.pid"),
        pid_in(&project, "timeout.pid"),
    ];
    let alive: Vec<i32> = pids.iter().copied().filter(|&p| running(p)).collect();
    cleanup(&pids);
    assert!(alive.is_empty(), "still running after the run: {alive:?}");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let escape = project.task_json("escape");
    assert_eq!(escape["status"], "complete", "{escape}");
    let strays: Vec<i64> = escape["strays"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["pid"].as_i64()).collect())
        .unwrap_or_default();
    // Both are its task's, found at its end (a daemon caught mid-exec, or
    // re-parented while the tree was read, is looked for again).
    assert!(
        strays.contains(&i64::from(pids[0])) && strays.contains(&i64::from(pids[1])),
        "{escape}"
    );
    let slow = project.task_json("slow");
    assert_eq!(slow["status"], "timed-out");
    assert_eq!(slow["strays"][0]["pid"], i64::from(pids[2]), "{slow}");
    assert_eq!(slow["strays"][0]["when"], "timeout", "{slow}");
    let warnings = warnings(&events);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("outlived it and were stopped") && w.contains("sleep (pid")),
        "{warnings:?}"
    );
}

#[test]
fn a_hooks_daemon_does_not_outlive_the_hook() {
    let project = Project::new();
    project.manifest(
        "version: 1
escalation:
  - name: starter
    when: { status: [failed] }
    run: 'setsid sleep 303 >/dev/null 2>&1 & echo $! > hook.pid'
tasks:
  crasher:
    command: [sh, -c, 'exit 1']
    plan: [Crash]
",
    );
    let (output, events) = project.run(&[]);
    let pid = pid_in(&project, "hook.pid");
    let alive = running(pid);
    cleanup(&[pid]);
    assert!(!alive, "the hook's daemon outlived the run");
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        warnings(&events)
            .iter()
            .any(|w| w.contains("hook of escalation rule starter started outlived it")),
        "{:?}",
        warnings(&events)
    );
}

/// `dispatch run` in the background, its output unread.
fn spawn_run(project: &Project, extra: &[&str]) -> Child {
    let mut args = vec!["run", "sweep.yaml", "--json", "--grace", "300ms"];
    args.extend_from_slice(extra);
    project
        .command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dispatch starts")
}

fn task_status(project: &Project, id: &str) -> Option<String> {
    let value: Value = serde_json::from_str(&project.task_file(id, "task.json")).ok()?;
    value["status"].as_str().map(str::to_owned)
}

/// A worker that notes, when it starts, whether the worker before it is
/// still alive (`overlap` in life.log), then records its own pid; its
/// first attempt leaves a setsid daemon and hangs.
const TWICE_SWEEP: &str = "version: 1
tasks:
  twice:
    command: [sh, -c, 'if [ -f worker.pid ]; then old=$(cat worker.pid); s=$(cut -d\" \" -f3 /proc/$old/stat 2>/dev/null); if [ -n \"$s\" ] && [ \"$s\" != Z ]; then echo overlap >> life.log; fi; fi; echo $$ > worker.pid; echo start $$ >> life.log; if [ -f resumed ]; then exec AGENT check-all; fi; setsid sleep 305 >/dev/null 2>&1 & echo $! > daemon.pid; exec AGENT check hang']
    plan: [One, Two]
";

/// Start the sweep, wait for its worker, and kill -9 dispatch only.
fn orphan_the_worker(project: &Project) -> (i32, i32) {
    project.manifest(TWICE_SWEEP);
    let mut child = spawn_run(project, &[]);
    wait_for("the worker", || {
        project.task_file("twice", "plan.md").contains("- [x] One")
            && task_status(project, "twice").as_deref() == Some("running")
            && project.path().join("daemon.pid").exists()
    });
    child.kill().expect("kill -9 dispatch");
    let _ = child.wait();
    let worker = pid_in(project, "worker.pid");
    let daemon = pid_in(project, "daemon.pid");
    assert!(running(worker) && running(daemon));
    std::fs::write(project.path().join("resumed"), "").expect("write");
    (worker, daemon)
}

#[test]
fn resume_stops_the_dead_runs_worker_before_starting_its_next() {
    let project = Project::new();
    let (worker, daemon) = orphan_the_worker(&project);

    // Meanwhile, status says the worker runs on without its dispatch.
    let status = project.command(&["status"]).output().expect("status");
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    let json = project
        .command(&["status", "--json"])
        .output()
        .expect("status");
    let json: Value = serde_json::from_slice(&json.stdout).expect("json");

    let output = project
        .command(&["resume", "--json", "--grace", "300ms"])
        .output()
        .expect("resume");
    let left = [worker, daemon]
        .into_iter()
        .filter(|&p| running(p))
        .collect::<Vec<_>>();
    cleanup(&[worker, daemon]);
    assert!(
        text.contains("still running, but its dispatch is gone"),
        "{text}"
    );
    assert_eq!(json["tasks"][0]["record"]["status"], "running", "{json}");
    assert_eq!(json["orphaned"], 1, "{json}");
    assert!(text.contains("1 worker still running"), "{text}");
    assert!(
        left.is_empty(),
        "the dead run's processes live on: {left:?}"
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let life = std::fs::read_to_string(project.path().join("life.log")).expect("life.log");
    assert!(!life.contains("overlap"), "two workers at once:\n{life}");
    assert_eq!(life.lines().count(), 2, "{life}");
    let record = project.task_json("twice");
    assert_eq!(record["status"], "complete", "{record}");
    assert!(
        record["attempts"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("stopped by `dispatch resume`")),
        "{record}"
    );
    let strays: Vec<i64> = record["strays"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["pid"].as_i64()).collect())
        .unwrap_or_default();
    assert!(
        strays.contains(&i64::from(worker)) && strays.contains(&i64::from(daemon)),
        "{record}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("\"warning\"") && l.contains("stopped what run")),
        "{stdout}"
    );
}

#[test]
fn retry_failed_stops_the_dead_runs_worker_before_starting_its_next() {
    let project = Project::new();
    let (worker, daemon) = orphan_the_worker(&project);
    let (output, _) = project.run(&["--retry-failed", "latest"]);
    let left = [worker, daemon]
        .into_iter()
        .filter(|&p| running(p))
        .collect::<Vec<_>>();
    cleanup(&[worker, daemon]);
    assert!(
        left.is_empty(),
        "the dead run's processes live on: {left:?}"
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let life = std::fs::read_to_string(project.path().join("life.log")).expect("life.log");
    assert!(!life.contains("overlap"), "two workers at once:\n{life}");
    assert_eq!(project.task_json("twice")["status"], "complete");
}

/// A task.json (and run.json) whose pid now belongs to an unrelated
/// process — a reboot or pid reuse — must not get that process signalled.
/// A worker's start time is read after its launch, off the runner's
/// thread, and recorded beside its pid: the same figure the worker reads
/// for itself in `/proc`.
#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "Linux only: reads /proc")]
fn a_workers_start_time_is_recorded_beside_its_pid() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  slow:\n    command: [sh, -c, 'cut -d\" \" -f22 /proc/$$/stat > start; echo $$ > pid; sleep 1; : > \"$DISPATCH_IPC_DIR/.done\"']\n    plan: [One]\n",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let own: u64 = std::fs::read_to_string(project.path().join("start"))
        .expect("start")
        .trim()
        .parse()
        .expect("a number");
    let task = project.task_json("slow");
    assert_eq!(task["pid"], pid_in(&project, "pid"));
    assert_eq!(task["pid_start_time"], own, "{task:#}");
}

/// Every thread of a running sweep but the runner blocks the signals that
/// come from outside, so the SIGCHLD of each worker's exit (and a Ctrl-C)
/// wakes the runner alone, not a helper asleep in a timed wait.
#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "Linux only: reads /proc")]
fn only_the_runner_thread_takes_signals_from_outside() {
    let project = Project::new();
    std::fs::write(
        project.path().join("threads.sh"),
        "sleep 0.3\nfor t in /proc/$PPID/task/*; do echo \"${t##*/} $(grep SigBlk $t/status | cut -f2) $(cat $t/comm)\"; done > threads\necho $PPID > parent\n: > \"$DISPATCH_IPC_DIR/.done\"\n",
    )
    .expect("script");
    project
        .manifest("version: 1\ntasks:\n  look:\n    command: [sh, threads.sh]\n    plan: [One]\n");
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let runner = pid_in(&project, "parent");
    let listing = std::fs::read_to_string(project.path().join("threads")).expect("threads");
    let blocks = |mask: u64, signal: i32| mask & (1 << (signal - 1)) != 0;
    let mut helpers = Vec::new();
    for line in listing.lines() {
        let mut fields = line.split_whitespace();
        let (Some(tid), Some(mask), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            panic!("unreadable line {line:?} in {listing}");
        };
        let mask = u64::from_str_radix(mask, 16).expect("hex mask");
        if tid.parse::<i32>().ok() == Some(runner) {
            assert!(
                !blocks(mask, libc::SIGCHLD),
                "the runner blocks SIGCHLD: {listing}"
            );
            assert!(
                !blocks(mask, libc::SIGINT),
                "the runner blocks SIGINT: {listing}"
            );
        } else {
            assert!(
                blocks(mask, libc::SIGCHLD),
                "{name} takes SIGCHLD: {listing}"
            );
            assert!(blocks(mask, libc::SIGINT), "{name} takes SIGINT: {listing}");
            helpers.push(name.to_owned());
        }
    }
    for expected in ["dispatch-writer", "dispatch-plans"] {
        assert!(
            helpers.iter().any(|h| h == expected),
            "no {expected}: {listing}"
        );
    }
}

#[test]
fn cancel_never_signals_a_process_that_took_a_recorded_pid() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  done:\n    command: [AGENT, check-all]\n    plan: [One]\n",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let mut stranger = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("sleep");
    let pid = stranger.id();
    let runs = project.path().join(".dispatch/runs");
    let run_dir = std::fs::read_dir(&runs)
        .expect("runs")
        .flatten()
        .next()
        .expect("a run")
        .path();
    let run_json = run_dir.join("run.json");
    let mut run: Value =
        serde_json::from_str(&std::fs::read_to_string(&run_json).expect("run.json")).expect("json");
    run["pid"] = pid.into();
    run["ended_at"] = Value::Null;
    std::fs::write(&run_json, run.to_string()).expect("write");
    let task_json = project.path().join(".dispatch/tasks/done/task.json");
    let mut task = project.task_json("done");
    task["pid"] = pid.into();
    task["status"] = "running".into();
    task["ended_at"] = Value::Null;
    // A worker that ends within moments of its launch has no start time
    // recorded (it is read a little after the launch): stand in the
    // earliest there could be, which is not the stranger's.
    for start_time in [Value::from(1u64), Value::Null] {
        // Once with a start time that is not the process's, once with none
        // recorded (then the environment marker decides).
        task["pid_start_time"] = start_time;
        std::fs::write(&task_json, task.to_string()).expect("write");
        let output = project.command(&["cancel"]).output().expect("cancel");
        std::thread::sleep(Duration::from_millis(300));
        let alive = stranger.try_wait().expect("try_wait").is_none();
        if !alive {
            break;
        }
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("nothing to cancel"),
            "{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    let alive = stranger.try_wait().expect("try_wait").is_none();
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert!(alive, "dispatch cancel signalled an unrelated process");
}

/// The worker pid in a task's record, once it is there (a read that
/// straddles a rewrite is tried again).
fn recorded_pid(project: &Project, id: &str) -> Option<i32> {
    let value: Value = serde_json::from_str(&project.task_file(id, "task.json")).ok()?;
    i32::try_from(value["pid"].as_i64()?).ok()
}

/// The run folder of the only run.
fn only_run(project: &Project) -> std::path::PathBuf {
    std::fs::read_dir(project.path().join(".dispatch/runs"))
        .expect("runs")
        .flatten()
        .next()
        .expect("a run")
        .path()
}

/// A hang-up (the terminal closed: its output goes nowhere) and a SIGTERM
/// stop the sweep as Ctrl-C does: workers stopped, records and reports
/// written, and the documented exit code.
#[test]
fn sighup_and_sigterm_stop_the_workers_and_write_the_reports() {
    for (signal, code) in [(libc::SIGHUP, 129), (libc::SIGTERM, 143)] {
        let project = Project::new();
        project.manifest("version: 1\ntasks:\n  long:\n    command: [AGENT, check, hang]\n    plan: [One, Two]\n");
        // Plain output (no --json): every line goes to stderr, which is
        // closed before the signal, as a dropped SSH session leaves it.
        let mut child = project
            .command(&["run", "sweep.yaml", "--grace", "300ms"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dispatch starts");
        let mut worker = 0;
        wait_for("the worker", || {
            worker = recorded_pid(&project, "long").unwrap_or(0);
            worker > 0 && project.task_file("long", "plan.md").contains("- [x] One")
        });
        drop(child.stdout.take());
        drop(child.stderr.take());
        let dispatch = i32::try_from(child.id()).expect("pid");
        // SAFETY: signals the dispatch process this test started.
        unsafe {
            libc::kill(dispatch, signal);
        }
        let status = child.wait().expect("dispatch ends");
        let worker_left = running(worker);
        cleanup(&[worker]);
        assert_eq!(status.code(), Some(code), "signal {signal}");
        assert!(!worker_left, "the worker outlived a signal {signal}");
        assert_eq!(project.task_json("long")["status"], "cancelled");
        let run = only_run(&project);
        let report: Value = serde_json::from_str(
            &std::fs::read_to_string(run.join("report.json")).expect("report.json"),
        )
        .expect("json");
        assert_eq!(report["status"], "interrupted");
        assert!(run.join("junit.xml").is_file() && run.join("report.md").is_file());
        let events = std::fs::read_to_string(run.join("events.jsonl")).expect("events");
        let name = if signal == libc::SIGHUP {
            "SIGHUP"
        } else {
            "SIGTERM"
        };
        assert!(
            events.contains(&format!("\"signal\":\"{name}\"")),
            "{events}"
        );
    }
}

/// Forty tasks at once under `ulimit` in `sh` (soft only, or soft and
/// hard): every task completes; with the hard limit low too, concurrency
/// is lowered with a warning.
#[test]
fn a_low_open_files_limit_fails_no_task() {
    let mut manifest = String::from("version: 1\nconcurrency: 40\ntasks:\n");
    for i in 0..40 {
        manifest.push_str(&format!(
            "  t{i}:\n    command: [AGENT, 'sleep:300ms', check-all]\n    plan: [One]\n"
        ));
    }
    for (ulimit, lowered) in [("ulimit -Sn 64", false), ("ulimit -n 64", true)] {
        let project = Project::new();
        project.manifest(&manifest);
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{ulimit} && exec \"$0\" run sweep.yaml --json --root \"$1\""
            ))
            .arg(env!("CARGO_BIN_EXE_dispatch"))
            .arg(project.path())
            .current_dir(project.path())
            .env("HOME", project.path())
            .env_remove("CI")
            .output()
            .expect("sh runs dispatch");
        let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let failed: Vec<String> = events
            .iter()
            .filter(|e| e["event"] == "task-ended" && e["status"] != "complete")
            .map(|e| format!("{}: {}", e["task"], e["reason"]))
            .collect();
        assert!(failed.is_empty(), "{ulimit}: {failed:?}");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{ulimit}: {}",
            stderr(&output)
        );
        let warned = warnings(&events)
            .iter()
            .any(|w| w.contains("concurrency lowered from 40 to 4"));
        assert_eq!(warned, lowered, "{ulimit}: {:?}", warnings(&events));
    }
}
