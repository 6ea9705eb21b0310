//! Getting started: `dispatch init` (starter and examples, the schema
//! hint), `dispatch completions` and `dispatch man`.

mod common;

use std::path::Path;

use assert_cmd::Command;
use dispatch::manifest::schema::SCHEMA_URL;

fn dispatch(cwd: &Path) -> Command {
    let mut command = Command::cargo_bin("dispatch").expect("binary builds");
    command
        .current_dir(cwd)
        .env("HOME", cwd)
        .env_remove("XDG_CONFIG_HOME");
    command
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The hint must name the published file, so it follows the crate's
/// `repository`: the raw file on the default branch.
#[test]
fn the_schema_url_is_the_raw_file_of_the_crate_repository() {
    let repository = env!("CARGO_PKG_REPOSITORY");
    let path = repository
        .strip_prefix("https://github.com/")
        .expect("the repository is on GitHub");
    assert_eq!(
        SCHEMA_URL,
        format!("https://raw.githubusercontent.com/{path}/main/schemas/manifest.schema.json")
    );
}

#[test]
fn init_writes_a_starter_at_the_top_of_the_repository_that_validates() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::init_repo(dir.path());
    let sub = dir.path().join("src/deep");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let output = dispatch(&sub).arg("init").output().expect("runs");
    assert!(output.status.success(), "{}", stderr(&output));
    let path = dir.path().join("dispatch.yaml");
    let text = std::fs::read_to_string(&path).expect("written at the top");
    assert_eq!(
        text.lines().next(),
        Some(format!("# yaml-language-server: $schema={SCHEMA_URL}").as_str())
    );
    let checked = dispatch(dir.path())
        .args(["validate", "dispatch.yaml"])
        .output()
        .expect("runs");
    assert!(checked.status.success(), "{}", stderr(&checked));
    assert!(String::from_utf8_lossy(&checked.stdout).contains("valid (2 tasks)"));
}

#[test]
fn init_never_replaces_a_manifest_without_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sweep.yaml");
    std::fs::write(&path, "mine\n").expect("write");
    let output = dispatch(dir.path())
        .args(["init", "sweep.yaml"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "error: sweep.yaml: already exists; pass --force to replace it, or name another FILE (dispatch init FILE)\n"
    );
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "mine\n");

    let forced = dispatch(dir.path())
        .args(["init", "sweep.yaml", "--force", "--example", "fix-typo"])
        .output()
        .expect("runs");
    assert!(forced.status.success(), "{}", stderr(&forced));
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains("template: fix"), "{text}");
}

/// Every example starts a manifest that validates where it is written, with
/// the published schema on its first line rather than a path into this
/// repository.
#[test]
fn every_example_validates_with_the_published_schema_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, _) in dispatch::cli::setup::EXAMPLES {
        let file = format!("{name}.yaml");
        let output = dispatch(dir.path())
            .args(["init", &file, "--example", name])
            .output()
            .expect("runs");
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        let text = std::fs::read_to_string(dir.path().join(&file)).expect("written");
        assert!(
            text.starts_with(&format!("# yaml-language-server: $schema={SCHEMA_URL}\n")),
            "{name}: {}",
            text.lines().next().unwrap_or_default()
        );
        assert_eq!(text.matches("yaml-language-server").count(), 1, "{name}");
        let checked = dispatch(dir.path())
            .args(["validate", &file])
            .output()
            .expect("runs");
        assert!(checked.status.success(), "{name}: {}", stderr(&checked));
    }
}

#[test]
fn an_unknown_example_is_a_usage_error_that_lists_the_examples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dispatch(dir.path())
        .args(["init", "--example", "pre-lunch"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    insta::assert_snapshot!(stderr(&output), @r"
    error: --example pre-lunch: no such example (known: pre-launch, fix-typo, security-review, auth-refactor, payment-module, module-audit-matrix)
      = help: did you mean `pre-launch`?
    ");
    assert!(!dir.path().join("dispatch.yaml").exists());
}

#[test]
fn completions_cover_every_shell_and_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let output = dispatch(dir.path())
            .args(["completions", shell])
            .output()
            .expect("runs");
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let script = String::from_utf8_lossy(&output.stdout);
        for word in ["merge-check", "init", "retry-failed"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let bash = dispatch(dir.path())
        .args(["completions", "bash"])
        .output()
        .expect("runs");
    let script = dir.path().join("dispatch.bash");
    std::fs::write(&script, &bash.stdout).expect("write");
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash runs");
    assert!(syntax.status.success(), "{}", stderr(&syntax));

    let unknown = dispatch(dir.path())
        .args(["completions", "tcsh"])
        .output()
        .expect("runs");
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn man_prints_the_page_and_writes_one_per_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dispatch(dir.path()).arg("man").output().expect("runs");
    assert!(output.status.success(), "{}", stderr(&output));
    let page = String::from_utf8_lossy(&output.stdout);
    assert!(page.contains(".TH dispatch 1"), "{page}");
    assert!(page.contains("merge\\-check"), "{page}");

    let out = dir.path().join("man");
    let written = dispatch(dir.path())
        .args(["man", "--out", "man"])
        .output()
        .expect("runs");
    assert!(written.status.success(), "{}", stderr(&written));
    for page in [
        "dispatch.1",
        "dispatch-run.1",
        "dispatch-init.1",
        "dispatch-worker-ask.1",
    ] {
        assert!(out.join(page).is_file(), "{page} missing");
    }
}
