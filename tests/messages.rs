//! What a new user meets on the command line when a flag says something the
//! manifest does not: `dispatch run --dry-run`, a `--var` nothing reads, a
//! `--tag` no task has. Each message is pinned by a snapshot.

use std::path::Path;

use assert_cmd::Command;

/// `dispatch ARGS` in `dir`, with an empty home (no user config).
fn dispatch(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::cargo_bin("dispatch")
        .expect("binary builds")
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("CI")
        .args(args)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("runs")
}

const SWEEP: &str = "version: 1
vars: { service: billing }
tasks:
  api-tests:
    model: sonnet
    prompt: \"Add tests for the {{ vars.service }} API in {{ vars.region | default('eu') }}.\"
    tags: [api]
  web-tests:
    model: sonnet
    prompt: Add tests for the web pages.
    tags: [web]
    needs: api-tests
";

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("sweep.yaml"), SWEEP).expect("write");
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn run_dry_run_prints_the_plan_and_runs_nothing() {
    let dir = project();
    let dry = dispatch(dir.path(), &["run", "sweep.yaml", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    let plan = dispatch(dir.path(), &["plan", "sweep.yaml"]);
    assert_eq!(
        text(&dry.stdout),
        text(&plan.stdout),
        "the same as `dispatch plan`"
    );
    assert!(text(&dry.stdout).contains("== 2. web-tests =="));
    assert!(
        !dir.path().join(".dispatch").exists(),
        "nothing written, nothing run"
    );
}

#[test]
fn run_dry_run_shows_only_what_the_selection_would_start() {
    let dir = project();
    let dry = dispatch(
        dir.path(),
        &[
            "run",
            "sweep.yaml",
            "--dry-run",
            "--only",
            "api-tests",
            "--json",
        ],
    );
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&dry.stdout).expect("JSON");
    let ids: Vec<&str> = plan["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids, ["api-tests"]);
    // A selection the run would refuse, the dry run refuses too.
    let left_out = dispatch(
        dir.path(),
        &["run", "sweep.yaml", "--dry-run", "--only", "web-tests"],
    );
    assert_eq!(left_out.status.code(), Some(2));
    insta::assert_snapshot!("dry_run_need_left_out", text(&left_out.stderr));
    assert!(!dir.path().join(".dispatch").exists());
}

#[test]
fn a_var_nothing_reads_is_refused_with_the_name_it_resembles() {
    let dir = project();
    for command in [
        vec!["validate", "sweep.yaml"],
        vec!["plan", "sweep.yaml"],
        vec!["run", "sweep.yaml", "--dry-run"],
        vec!["run", "sweep.yaml"],
    ] {
        let mut args = command.clone();
        args.extend(["--var", "servce=payments"]);
        let output = dispatch(dir.path(), &args);
        assert_eq!(output.status.code(), Some(2), "{command:?}");
        insta::assert_snapshot!("unused_var", text(&output.stderr));
    }
    assert!(!dir.path().join(".dispatch/runs").exists(), "nothing ran");
    // A var only a template reads (no `vars:` entry) is used.
    let output = dispatch(
        dir.path(),
        &["validate", "sweep.yaml", "--var", "region=us"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let output = dispatch(
        dir.path(),
        &["validate", "sweep.yaml", "--var", "regoin=us"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("did you mean `--var region=...`?"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn an_unknown_tag_is_refused_even_beside_a_known_one() {
    let dir = project();
    for extra in [&["--dry-run"][..], &[]] {
        let mut args = vec!["run", "sweep.yaml", "--tag", "api", "--tag", "wbe"];
        args.extend_from_slice(extra);
        let output = dispatch(dir.path(), &args);
        assert_eq!(output.status.code(), Some(2), "{extra:?}");
        insta::assert_snapshot!("unknown_tag", text(&output.stderr));
    }
    assert!(!dir.path().join(".dispatch/runs").exists(), "nothing ran");
}

#[test]
fn dry_run_and_rerun_do_not_go_together() {
    let dir = project();
    let output = dispatch(
        dir.path(),
        &["run", "sweep.yaml", "--dry-run", "--rerun", "api-tests"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("cannot be used with"),
        "{}",
        text(&output.stderr)
    );
}
