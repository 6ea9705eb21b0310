//! Task and run arguments are ids, never paths: every command refuses a
//! path (absolute, `..`, with a `/`) with exit 2 and a message saying what
//! an id looks like, before it touches any file.

use assert_cmd::Command;
use predicates::prelude::*;

fn dispatch(root: &std::path::Path) -> Command {
    let mut command = Command::cargo_bin("dispatch").expect("binary builds");
    command
        .env("HOME", root)
        .env_remove("XDG_CONFIG_HOME")
        .current_dir(root);
    command
}

#[test]
fn an_absolute_path_as_task_is_refused_and_nothing_is_written_there() {
    let project = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    // What the planted answer needs to land: a task-like folder with a
    // question waiting.
    std::fs::create_dir_all(elsewhere.path().join("ipc")).expect("mkdir");
    std::fs::write(elsewhere.path().join("ipc/001.question"), "q?\n").expect("write");
    let target = elsewhere.path().display().to_string();
    dispatch(project.path())
        .args(["answer", &target, "yes"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("is not a task id")
                .and(predicate::str::contains("never paths")),
        );
    assert!(!elsewhere.path().join("ipc/001.answer").exists());
}

#[test]
fn every_command_refuses_paths_where_ids_belong() {
    let project = tempfile::tempdir().expect("tempdir");
    let cases: &[&[&str]] = &[
        &["answer", "../x", "yes"],
        &["answer", "a/b", "yes"],
        &["cancel", "--task", "/tmp"],
        &["cancel", "/tmp"],
        &["status", "/tmp"],
        &["status", ".."],
        &["report", "../../etc"],
        &["resume", "/tmp/run"],
        &["questions", "/tmp"],
        &["merge-check", "/tmp"],
        &["clean", "--run", "/tmp"],
        &["run", "sweep.yaml", "--retry-failed", "/tmp"],
        &["run", "sweep.yaml", "--rerun", "../t"],
        &["run", "sweep.yaml", "--rerun", "t", "--from", "/tmp"],
    ];
    for args in cases {
        dispatch(project.path())
            .args(*args)
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains("is not a task id")
                    .or(predicate::str::contains("is not a run id")),
            );
    }
}
