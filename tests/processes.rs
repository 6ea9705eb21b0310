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
    command: [sh, -c, 'setsid sleep 300 >/dev/null 2>&1 & echo $! > setsid.pid; sh -c \"setsid sleep 301 >/dev/null 2>&1 & echo \\$! > double.pid\"; exec AGENT check-all']
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
