//! The sandbox tier: what a worker in a bubblewrap sandbox (`sandbox:`)
//! cannot reach, proved by trying. The scripted test agent attempts each
//! escape and prints `probe KIND TARGET: ok|denied`; every attempt must
//! be denied inside the sandbox, and the same attempts must succeed in an
//! unconfined task of the same run, so a denial is the sandbox's doing
//! and not the test's.
//!
//! Where bubblewrap cannot make a sandbox, each test shows as ignored, and
//! fails instead under `DISPATCH_REQUIRE_SANDBOX=1` (see
//! `tests/common/tier.rs`).

#[macro_use]
mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::ExitCode;

use common::{tier, Project};
use serde_json::Value;

fn main() -> ExitCode {
    tier::main(
        &tier::SANDBOX,
        || {
            dispatch::isolation::sandbox::probe()
                .map(drop)
                .map_err(|e| e.to_string())
        },
        include_str!("sandbox.rs"),
        tier_tests![
            every_escape_fails_in_the_sandbox_and_succeeds_unconfined,
            no_network_cuts_every_loopback_port,
            the_sandboxed_worker_commits_ticks_and_asks,
            a_stop_reaches_the_sandboxed_worker_with_its_grace,
            nothing_a_sandboxed_worker_started_outlives_it,
        ],
    )
}

/// The outcome of each `probe` line of a task's worker log: target → ok.
fn probes(project: &Project, task: &str) -> Vec<(String, bool)> {
    project
        .task_file(task, "worker.log")
        .lines()
        .filter_map(|line| line.strip_prefix("probe "))
        .filter_map(|rest| {
            if let Some(target) = rest.strip_suffix(": ok") {
                return Some((target.to_owned(), true));
            }
            let (target, _) = rest.split_once(": denied (")?;
            Some((target.to_owned(), false))
        })
        .collect()
}

/// A fake home with a private key planted where an agent would look.
fn fake_home(project: &Project) -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("home");
    std::fs::create_dir_all(home.path().join(".ssh")).expect(".ssh");
    std::fs::write(home.path().join(".ssh/id_rsa"), "PRIVATE KEY\n").expect("key");
    let _ = project;
    home
}

/// The steps that try every escape the issue names; `other` is a task
/// whose folder this one must not write.
fn escapes(project: &Path, home: &Path, other: &str, port: u16, model_port: u16) -> String {
    let root = project.display();
    [
        format!("try-read:{}/.ssh/id_rsa", home.display()),
        format!("try-write:{root}/escape.txt"),
        format!("try-write:{root}/.dispatch/tasks/{other}/escape.txt"),
        format!("try-write:{root}/.dispatch/runs/escape.txt"),
        format!("try-connect:127.0.0.1:{port}"),
        "try-env:DEPLOY_TOKEN".to_owned(),
        format!("try-connect:127.0.0.1:{model_port}"),
        "write:inside.txt=made in the worktree".to_owned(),
        "commit:work of the task".to_owned(),
        "check-all".to_owned(),
        "done".to_owned(),
    ]
    .iter()
    .map(|s| format!("'{s}'"))
    .collect::<Vec<_>>()
    .join(", ")
}

fn run_with_home(project: &Project, home: &Path) -> (std::process::Output, Vec<Value>) {
    let output = project
        .command(&[
            "run",
            "sweep.yaml",
            "--json",
            "--grace",
            "5s",
            "--retry-delay",
            "50ms",
        ])
        .env("HOME", home)
        .env("DEPLOY_TOKEN", "deploy-secret-value")
        .output()
        .expect("dispatch runs");
    let events = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (output, events)
}

fn why(project: &Project, output: &std::process::Output, task: &str) -> String {
    format!(
        "stderr:\n{}\nworker.log of {task}:\n{}",
        String::from_utf8_lossy(&output.stderr),
        project.task_file(task, "worker.log")
    )
}

fn every_escape_fails_in_the_sandbox_and_succeeds_unconfined() {
    let project = Project::new();
    common::init_repo(project.path());
    let home = fake_home(&project);
    // A loopback service that is not the model endpoint, and one that
    // stands for it (allowed).
    let other_service = TcpListener::bind("127.0.0.1:0").expect("listen");
    let model = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = other_service.local_addr().expect("addr").port();
    let model_port = model.local_addr().expect("addr").port();
    let path = project.path();
    project.manifest(&format!(
        "version: 1
tasks:
  confined:
    command: [AGENT, {confined}]
    prompt: Try.
    plan: [Try every escape]
    worktree: true
    sandbox:
      network:
        allow: [127.0.0.1:{model_port}]
  open:
    command: [AGENT, {open}]
    prompt: Try.
    plan: [Try every escape]
    worktree: true
",
        confined = escapes(path, home.path(), "open", port, model_port),
        open = escapes(path, home.path(), "confined", port, model_port),
    ));
    let (output, _) = run_with_home(&project, home.path());
    let confined = probes(&project, "confined");
    let open = probes(&project, "open");
    let why = format!(
        "{}\n{}",
        why(&project, &output, "confined"),
        why(&project, &output, "open")
    );
    assert_eq!(output.status.code(), Some(0), "{why}");
    assert_eq!(confined.len(), 7, "{why}");
    assert_eq!(open.len(), 7, "{why}");
    for ((target, inside), (_, outside)) in confined.iter().zip(&open) {
        let allowed = target.ends_with(&format!(":{model_port}"));
        assert_eq!(
            *inside,
            allowed,
            "in the sandbox, {target} is {}\n{why}",
            if *inside { "reachable" } else { "denied" }
        );
        assert!(*outside, "unconfined, {target} is reachable\n{why}");
    }
    // The worker still did its work: its commit is on its branch.
    let record = project.task_json("confined");
    assert_eq!(record["status"], "complete", "{why}");
    assert_eq!(record["sandboxed"], true);
    assert_eq!(record["branch"]["ahead"], 1, "{record}");
    assert_eq!(
        common::git(path, &["show", "dispatch/confined:inside.txt"]),
        "made in the worktree"
    );
    // The scoped environment lists, by name only, what it left out.
    let left_out = record["env_left_out"].to_string();
    assert!(left_out.contains("\"DEPLOY_TOKEN\""), "{left_out}");
    assert!(!left_out.contains("deploy-secret-value"), "{left_out}");
    assert!(project.task_json("open")["env_left_out"].is_null());
    assert!(!path.join("escape.txt").exists());
}

fn no_network_cuts_every_loopback_port() {
    let project = Project::new();
    let service = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = service.local_addr().expect("addr").port();
    project.manifest(&format!(
        "version: 1
tasks:
  offline:
    command: [AGENT, 'try-connect:127.0.0.1:{port}', 'try-connect:localhost:{port}', check-all, done]
    prompt: Try.
    plan: [Try the network]
    sandbox:
      network: none
  online:
    command: [AGENT, 'try-connect:127.0.0.1:{port}', 'try-connect:localhost:{port}', check-all, done]
    prompt: Try.
    plan: [Try the network]
    sandbox: true
"
    ));
    let (output, _) = project.run(&[]);
    let why = why(&project, &output, "offline");
    assert_eq!(output.status.code(), Some(0), "{why}");
    let offline = probes(&project, "offline");
    assert_eq!(offline.len(), 2, "{why}");
    assert!(offline.iter().all(|(_, ok)| !ok), "{offline:?}\n{why}");
    let online = probes(&project, "online");
    assert!(
        online.iter().all(|(_, ok)| *ok),
        "network: full reaches it: {online:?}"
    );
}

/// A sandboxed task without a worktree: its folder is the project, which
/// it writes, but the state folder in it stays read-only; it asks through
/// `dispatch worker ask` (from inside) and gets its answer.
fn the_sandboxed_worker_commits_ticks_and_asks() {
    let project = Project::new();
    common::init_repo(project.path());
    project.manifest(
        "version: 1
questions:
  answers:
    - match: region
      answer: eu-west-1
tasks:
  folder:
    command: [AGENT, check, 'ask:Which region?', 'write:made.txt=by the worker', 'try-write:.dispatch/runs/x', check-all, done]
    prompt: Work.
    plan: [First, Second]
    sandbox: true
",
    );
    let (output, events) = project.run(&[]);
    let why = why(&project, &output, "folder");
    assert_eq!(output.status.code(), Some(0), "{why}");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "answered" && e["answer"] == "eu-west-1"),
        "{why}"
    );
    assert!(project
        .task_file("folder", "output.md")
        .contains("A: eu-west-1"));
    assert_eq!(
        std::fs::read_to_string(project.path().join("made.txt")).unwrap_or_default(),
        "by the worker\n"
    );
    assert_eq!(
        probes(&project, "folder"),
        [("write .dispatch/runs/x".to_owned(), false)]
    );
}

/// A timeout's SIGTERM reaches the worker inside, which gets its grace
/// period to clean up (bwrap would otherwise die of the signal and take
/// the sandbox down with SIGKILL at once).
fn a_stop_reaches_the_sandboxed_worker_with_its_grace() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  stopped:
    command: [sh, -c, 'trap \"sleep 0.2; echo graceful > $DISPATCH_TASK_DIR/term.txt; exit 0\" TERM; echo started; sleep 60 & wait']
    prompt: Wait.
    plan: [Wait]
    timeout: 2s
    sandbox: true
",
    );
    // A grace period longer than the handler takes (`run_with_home` gives 5s).
    let (output, _) = run_with_home(&project, project.path());
    let why = why(&project, &output, "stopped");
    assert_eq!(project.task_json("stopped")["status"], "timed-out", "{why}");
    assert_eq!(
        project.task_file("stopped", "term.txt"),
        "graceful\n",
        "the worker's SIGTERM handler ran\n{why}"
    );
}

/// A worker that leaves a detached process behind: when the task ends,
/// nothing carrying its run's marker is alive.
fn nothing_a_sandboxed_worker_started_outlives_it() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  leaver:
    command: [AGENT, spawn-hang-detached, check-all, done]
    prompt: Leave.
    plan: [Leave something running]
    sandbox: true
",
    );
    let (output, events) = project.run(&[]);
    let why = why(&project, &output, "leaver");
    let run_id = events
        .first()
        .and_then(|e| e["run_id"].as_str())
        .expect("run id")
        .to_owned();
    let marker = format!("DISPATCH_RUN_ID={run_id}");
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ
            .split(|&b| b == 0)
            .any(|var| var == marker.as_bytes())
        {
            left.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    assert!(left.is_empty(), "still alive: {left:?}\n{why}");
}
