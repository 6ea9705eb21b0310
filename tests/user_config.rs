//! The same manifest means the same thing everywhere: when a user's config
//! file changes what a manifest means (a model routed to another backend
//! than the built-in one, a name only the file defines, the default model),
//! `validate`, `plan` and `run` say so; `--no-user-config` and
//! `DISPATCH_NO_USER_CONFIG` read the manifest as CI does.

mod common;

use std::path::Path;

use assert_cmd::Command;

use common::Project;

const SKILL_CONFIG: &str = "default: sonnet
models:
  gemini-3.1-pro: { backend: cursor }
  fast: { backend: claude }
";

const SWEEP: &str = "version: 1
tasks:
  review:
    model: gemini-3.1-pro
    prompt: Review the diff.
  triage:
    model: fast
    prompt: Triage the issues.
  notes:
    prompt: Write release notes.
  lint:
    model: sonnet
    prompt: Lint the code.
";

/// A home folder with the skill's config, and the manifest beside it.
fn home() -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(home.path().join(".dispatch")).expect("mkdir");
    std::fs::write(home.path().join(".dispatch/config.yaml"), SKILL_CONFIG).expect("write");
    std::fs::write(home.path().join("sweep.yaml"), SWEEP).expect("write");
    home
}

fn dispatch(home: &Path, args: &[&str]) -> std::process::Output {
    Command::cargo_bin("dispatch")
        .expect("binary builds")
        .current_dir(home)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("DISPATCH_NO_USER_CONFIG")
        .args(args)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("runs")
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn validate_says_what_the_user_config_changes() {
    let home = home();
    let output = dispatch(home.path(), &["validate", "sweep.yaml"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    insta::assert_snapshot!("validate_with_user_config", stderr(&output));
    // `plan` says the same, beside the plan.
    let output = dispatch(home.path(), &["plan", "sweep.yaml"]);
    assert_eq!(output.status.code(), Some(0));
    insta::assert_snapshot!("validate_with_user_config", stderr(&output));
}

#[test]
fn no_user_config_checks_the_manifest_as_ci_sees_it() {
    let home = home();
    let flag = dispatch(home.path(), &["validate", "--no-user-config", "sweep.yaml"]);
    assert_eq!(flag.status.code(), Some(2));
    insta::assert_snapshot!("validate_without_user_config", stderr(&flag));
    let env = Command::cargo_bin("dispatch")
        .expect("binary builds")
        .current_dir(home.path())
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env("DISPATCH_NO_USER_CONFIG", "1")
        .args(["validate", "sweep.yaml"])
        .output()
        .expect("runs");
    assert_eq!(env.status.code(), Some(2));
    assert_eq!(
        stderr(&env),
        stderr(&flag),
        "the variable does what the flag does"
    );
    // `0` leaves the config on.
    let off = Command::cargo_bin("dispatch")
        .expect("binary builds")
        .current_dir(home.path())
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env("DISPATCH_NO_USER_CONFIG", "0")
        .args(["validate", "sweep.yaml"])
        .output()
        .expect("runs");
    assert_eq!(off.status.code(), Some(0), "{}", stderr(&off));
}

#[test]
fn a_manifest_that_defines_its_own_names_gets_no_warning() {
    let home = home();
    std::fs::write(
        home.path().join("own.yaml"),
        "version: 1
defaults: { model: sonnet }
models:
  fast: { backend: claude, id: haiku }
  gemini-3.1-pro: { backend: gemini }
tasks:
  review: { model: gemini-3.1-pro, prompt: Review. }
  triage: { model: fast, prompt: Triage. }
  notes: { prompt: Notes. }
",
    )
    .expect("write");
    let output = dispatch(home.path(), &["validate", "own.yaml"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "", "nothing the config fills in is used");
}

#[test]
fn a_run_warns_about_a_backend_only_the_user_config_defines() {
    let project = Project::new();
    let config = project.path().join(".config/dispatch");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(
        config.join("config.yaml"),
        format!(
            "backends:\n  my-agent:\n    command: [{}, check-all]\n    prompt: stdin\n",
            common::agent().display()
        ),
    )
    .expect("write");
    project.manifest(
        "version: 1
tasks:
  solo:
    backend: my-agent
    plan: [Work]
",
    );
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let warnings: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "warning")
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "backend `my-agent` is defined only in ~/.config/dispatch/config.yaml; without that file (in CI, or with --no-user-config) the manifest is invalid (tasks: solo)"
        )),
        "{warnings:?}"
    );
    // And as CI would run it: refused, before anything starts.
    let (output, events) = project.run(&["--no-user-config"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("unknown backend \"my-agent\""),
        "{}",
        stderr(&output)
    );
    assert!(!events.iter().any(|e| e["event"] == "task-started"));
}
