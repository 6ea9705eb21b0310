//! Confinement that needs no sandbox to check: `env_policy` at launch and
//! in `dispatch plan`, the manifest's checks of `sandbox:` and
//! `env_policy:`, and a sandbox task refused (never run unconfined) where
//! bubblewrap is missing, with `dispatch doctor` saying why. What a
//! sandbox stops is proved in `tests/sandbox.rs`.

mod common;

use common::Project;

/// A folder on no one's PATH: no `bwrap`, no agent CLI.
fn empty_path() -> tempfile::TempDir {
    tempfile::tempdir().expect("empty dir")
}

/// `dispatch ARGS` in the project, for commands without `--root`.
fn bare(project: &Project, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dispatch"));
    command
        .args(args)
        .current_dir(project.path())
        .env("HOME", project.path());
    command
}

#[test]
fn a_scoped_worker_gets_what_passes_and_its_record_names_what_did_not() {
    let project = Project::new();
    project.manifest(
        "version: 1
env_policy:
  allow: [CI_*]
tasks:
  scoped:
    command: [AGENT, 'try-env:DEPLOY_TOKEN', 'try-env:CI_JOB', 'try-env:OWN', 'try-env:PATH', check-all, done]
    prompt: Look.
    plan: [Look]
    env: { OWN: set-by-the-manifest }
  open:
    command: [AGENT, 'try-env:DEPLOY_TOKEN', check-all, done]
    prompt: Look.
    plan: [Look]
    env_policy: inherit
",
    );
    let output = project
        .command(&["run", "sweep.yaml", "--json"])
        .env("DEPLOY_TOKEN", "deploy-secret-value")
        .env("CI_JOB", "42")
        // Not UTF-8: cannot be passed on as text, so left out (not a crash).
        .env(
            "BINARY_VALUE",
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"\xffx"),
        )
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(0));
    let log = project.task_file("scoped", "worker.log");
    for line in [
        "probe env DEPLOY_TOKEN: denied",
        "probe env CI_JOB: ok",
        "probe env OWN: ok",
        "probe env PATH: ok",
    ] {
        assert!(log.contains(line), "{line} not in\n{log}");
    }
    assert!(project
        .task_file("open", "worker.log")
        .contains("probe env DEPLOY_TOKEN: ok"));
    let record = project.task_file("scoped", "task.json");
    assert!(record.contains("\"DEPLOY_TOKEN\""), "{record}");
    assert!(record.contains("\"BINARY_VALUE\""), "{record}");
    assert!(!record.contains("deploy-secret-value"), "{record}");
    assert!(!record.contains("\"CI_JOB\""), "it passed: {record}");
}

#[test]
fn plan_shows_the_rules_and_the_names_that_pass_never_values() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  audit:
    model: sonnet
    prompt: Audit.
    plan: [Audit]
    env: { OWN: x }
    env_policy: { allow: [CI] }
    sandbox:
      network: { allow: ['127.0.0.1:8080'] }
",
    );
    let output = bare(&project, &["plan", "sweep.yaml"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CI", "true")
        .env("ANTHROPIC_API_KEY", "sk-ant-secret-value")
        .env("DEPLOY_TOKEN", "deploy-secret-value")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(!text.contains("secret-value"), "{text}");
    let lines: String = text
        .lines()
        .filter(|l| l.starts_with("sandbox:") || l.starts_with("env"))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!(lines, @r"
    env:      IS_SANDBOX=1
    env:      OWN=x
    sandbox:  bubblewrap, network only 127.0.0.1:8080
    env:      scoped: the base (PATH, HOME, user, locale, proxies, CA bundles, DISPATCH_*); claude's ANTHROPIC_*, CLAUDE_*; allow CI; its own env
    env now:  ANTHROPIC_API_KEY, CI, IS_SANDBOX, OWN, PATH pass; DEPLOY_TOKEN left out
    ");
}

#[test]
fn settings_a_sandbox_cannot_keep_are_located_errors() {
    let project = Project::new();
    project.manifest(
        "version: 1
env_policy:
  allow: [GOOD_*, 'bad name']
tasks:
  a:
    command: [AGENT]
    prompt: Go.
    sandbox:
      network:
        allow: [api.anthropic.com:443]
",
    );
    let output = bare(&project, &["validate", "sweep.yaml"])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("sweep.yaml:3:"), "{text}");
    assert!(
        text.contains("`bad name` is not a variable name or a glob of one"),
        "{text}"
    );
    assert!(text.contains("sweep.yaml:10:"), "{text}");
    assert!(
        text.contains("`api.anthropic.com:443` is not a loopback endpoint"),
        "{text}"
    );
    assert!(text.contains("not supported yet"), "{text}");
}

#[test]
fn a_sandbox_task_never_runs_where_bubblewrap_is_missing() {
    let project = Project::new();
    project.manifest(
        "version: 1
defaults:
  sandbox: true
tasks:
  a:
    command: [AGENT, 'write:ran.txt=unconfined', check-all, done]
    prompt: Go.
    plan: [Go]
",
    );
    let path = empty_path();
    let output = project
        .command(&["run", "sweep.yaml"])
        .env("PATH", path.path())
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("sweep.yaml:3:"),
        "points at defaults.sandbox: {text}"
    );
    assert!(
        text.contains("task `a` is to run in a sandbox, and bubblewrap (`bwrap`) is not on PATH"),
        "{text}"
    );
    assert!(text.contains("apt-get install bubblewrap"), "{text}");
    assert!(
        !project.path().join("ran.txt").exists(),
        "the worker never ran"
    );

    // `validate` keeps the manifest valid (it may run where bwrap is), but
    // says this machine would refuse it.
    let validate = bare(&project, &["validate", "sweep.yaml"])
        .env("PATH", path.path())
        .output()
        .expect("runs");
    let warned = String::from_utf8_lossy(&validate.stderr);
    assert_eq!(validate.status.code(), Some(0), "{warned}");
    assert!(
        warned.contains(
            "warning: sweep.yaml: task `a` is to run in a sandbox, and bubblewrap (`bwrap`) is not on PATH: `dispatch run` refuses to start it on this machine"
        ),
        "{warned}"
    );

    let doctor = bare(&project, &["doctor", "sweep.yaml"])
        .env("PATH", path.path())
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        said.contains(
            "Sandbox (`sandbox:` tasks): NOT AVAILABLE: bubblewrap (`bwrap`) is not on PATH"
        ),
        "{said}"
    );
    assert!(
        said.contains("sandbox via bubblewrap (1 task): NOT READY"),
        "{said}"
    );
    assert_ne!(doctor.status.code(), Some(0));
}
