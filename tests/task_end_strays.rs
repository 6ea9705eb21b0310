//! The task-end stray scan reads one `children` file, its leader thread's
//! (`procfs::orphan_parents_children`): the kernel re-parents an orphan to
//! the subreaper's first live thread, the leader, whichever of dispatch's
//! threads started its parent. These tests leave an orphan behind from a
//! parent started on the runtime's thread (a worker) and from one started
//! on a blocking thread (a worktree's setup script), and check that each
//! is stopped at its task's end, not only by the scan at the end of the run.

mod common;

use serde_json::Value;

use common::{init_repo, Project};

/// The pid a process wrote to `name` in the project folder.
fn pid_in(project: &Project, name: &str) -> i32 {
    let text = std::fs::read_to_string(project.path().join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Kill what a failed assertion left running.
fn cleanup(pids: &[i32]) {
    for &pid in pids {
        if pid > 1 && common::alive(pid) {
            // SAFETY: signals a process this test's worker or setup started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// When each of the task's strays was stopped, by pid.
/// None of `pids` outlived the run (each is stopped here either way), and
/// the run succeeded.
fn none_left_and_succeeded(pids: &[i32], output: &std::process::Output) {
    let alive: Vec<i32> = pids.iter().copied().filter(|&p| common::alive(p)).collect();
    cleanup(pids);
    assert!(alive.is_empty(), "still running after the run: {alive:?}");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn stopped_when(record: &Value, pid: i32) -> Option<String> {
    record["strays"]
        .as_array()?
        .iter()
        .find(|s| s["pid"].as_i64() == Some(i64::from(pid)))
        .and_then(|s| s["when"].as_str().map(str::to_owned))
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "Linux only: the task-end scan reads /proc children files"
)]
fn an_orphan_is_stopped_at_its_tasks_end_whichever_thread_started_its_parent() {
    let project = Project::new();
    // `web`'s setup script runs on a blocking thread and leaves a daemon;
    // `escape`'s worker (started on the runtime's thread) leaves another,
    // through a double fork. `slow` keeps workers, their threads and the
    // blocking pool busy meanwhile. Each daemon writes its pid once it has
    // left its parent's group, and its parent waits for that.
    project.manifest(
        "version: 1
tasks:
  web:
    command: [AGENT, check-all]
    plan: [Build]
    worktree:
      setup:
        run: |
          setsid sh -c 'echo $$ > ../setup.pid; exec sleep 303' >/dev/null 2>&1 &
          until [ -s ../setup.pid ]; do sleep 0.01; done
  escape:
    command:
      - sh
      - -c
      - |
        sh -c \"setsid sh -c 'echo \\$\\$ > double.pid; exec sleep 304' >/dev/null 2>&1 &\"
        until [ -s double.pid ]; do sleep 0.01; done
        exec AGENT check-all
    plan: [Work]
  slow:
    command: [AGENT, 'sleep:1500ms', check-all]
    plan: [Work]
",
    );
    init_repo(project.path());
    let (output, _events) = project.run(&[]);
    // The setup script runs in the worktree, beside which `../setup.pid`
    // lands; find it wherever the worktrees folder is.
    let setup_pid = std::fs::read_dir(project.path().join(".dispatch"))
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("setup.pid"))
        .find(|path| path.exists())
        .map(|path| {
            std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
                .unwrap_or_else(|| panic!("{}: no pid", path.display()))
        })
        .unwrap_or_else(|| panic!("no setup.pid beside the worktree"));
    let double_pid = pid_in(&project, "double.pid");
    let pids = [setup_pid, double_pid];
    none_left_and_succeeded(&pids, &output);
    let web = project.task_json("web");
    let escape = project.task_json("escape");
    assert_eq!(
        stopped_when(&web, setup_pid).as_deref(),
        Some("task end"),
        "{web}"
    );
    assert_eq!(
        stopped_when(&escape, double_pid).as_deref(),
        Some("task end"),
        "{escape}"
    );
}

/// Two tasks that end together (each worker waits for the other's daemon
/// before it exits, so their ends are queued for the same look): each
/// task's stray is stopped at its own end and reported in its own record,
/// never in the other's.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "Linux only: the task-end scan reads /proc children files"
)]
fn tasks_that_end_together_each_get_their_own_strays() {
    let project = Project::new();
    let worker = |me: &str, other: &str| {
        format!(
            "    command:
      - sh
      - -c
      - |
        sh -c \"setsid sh -c 'echo \\$\\$ > {me}.pid; exec sleep 305' >/dev/null 2>&1 &\"
        until [ -s {me}.pid ] && [ -s {other}.pid ]; do sleep 0.01; done
        exec AGENT check-all
    plan: [Work]
"
        )
    };
    project.manifest(&format!(
        "version: 1
concurrency: 2
tasks:
  left:
{}  right:
{}",
        worker("left", "right"),
        worker("right", "left")
    ));
    init_repo(project.path());
    let (output, _events) = project.run(&[]);
    let pids = [pid_in(&project, "left.pid"), pid_in(&project, "right.pid")];
    none_left_and_succeeded(&pids, &output);
    let left = project.task_json("left");
    let right = project.task_json("right");
    assert_eq!(
        stopped_when(&left, pids[0]).as_deref(),
        Some("task end"),
        "{left}"
    );
    assert_eq!(
        stopped_when(&right, pids[1]).as_deref(),
        Some("task end"),
        "{right}"
    );
    assert_eq!(stopped_when(&left, pids[1]), None, "{left}");
    assert_eq!(stopped_when(&right, pids[0]), None, "{right}");
}
