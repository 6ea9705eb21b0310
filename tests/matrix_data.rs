//! Matrix values from data, as a user meets them: `dispatch plan` names
//! where each entry came from, ids stay readable, paths are the
//! repository's wherever dispatch runs from, and `max_tasks` bounds a
//! sweep with a located error that names it.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn dispatch(dir: &Path) -> Command {
    let mut command = Command::cargo_bin("dispatch").expect("binary builds");
    command
        .current_dir(dir)
        .env("HOME", dir.join("home"))
        .env_remove("XDG_CONFIG_HOME");
    command
}

fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A repository (a `.git` folder is all dispatch looks for) with data.
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join(".git")).expect(".git");
    write(dir.path(), ".gitignore", "generated/\n");
    write(dir.path(), "src/auth/login.test.js", "");
    write(dir.path(), "src/auth/logout.test.js", "");
    write(dir.path(), "src/generated/api.test.js", "");
    write(dir.path(), "generated/x.test.js", "");
    write(
        dir.path(),
        "data/services.txt",
        "# one per line\nauth\nbilling\n",
    );
    write(
        dir.path(),
        "data/owners.jsonl",
        "{\"team\": \"core\", \"lead\": \"ann\"}\n{\"team\": \"web\", \"lead\": \"bob\"}\n",
    );
    dir
}

const SWEEP: &str = r#"version: 1
name: data
defaults: { model: haiku }
tasks:
  migrate:
    matrix:
      file: { glob: "src/**/*.test.js" }
    prompt: "Migrate {{ matrix.file }}."
  audit:
    matrix:
      service: { lines: data/services.txt }
      owner: { jsonl: data/owners.jsonl, id: lead }
      exclude:
        - { service: billing, owner: { team: web } }
      include:
        - { service: search, owner: { team: web, lead: bob } }
    prompt: "Audit {{ matrix.service }} with {{ matrix.owner.lead }} of {{ matrix.owner.team }}."
  listed:
    matrix:
      region: { command: "printf 'eu-west\nus-east\n'" }
    prompt: "Check {{ matrix.region }}."
"#;

/// The plan's header lines of each task: id, matrix and source.
fn task_lines(plan: &str) -> String {
    plan.lines()
        .filter(|l| l.starts_with("== ") || l.starts_with("matrix:") || l.starts_with("source:"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn plan_names_each_entry_and_its_source() {
    let repo = repository();
    write(repo.path(), "manifests/sweep.yaml", SWEEP);
    let output = dispatch(repo.path())
        .args(["plan", "manifests/sweep.yaml"])
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    insta::assert_snapshot!(task_lines(&String::from_utf8_lossy(&output.stdout)));
}

#[test]
fn paths_are_the_repositorys_from_any_folder() {
    let repo = repository();
    write(repo.path(), "manifests/sweep.yaml", SWEEP);
    let from_root = dispatch(repo.path())
        .args(["plan", "--json", "manifests/sweep.yaml"])
        .output()
        .expect("runs");
    let from_below = dispatch(&repo.path().join("src/auth"))
        .args(["plan", "--json", "../../manifests/sweep.yaml"])
        .output()
        .expect("runs");
    assert!(from_root.status.success() && from_below.status.success());
    let ids = |out: &[u8]| -> Vec<String> {
        let plan: serde_json::Value = serde_json::from_slice(out).expect("json");
        plan["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .map(|t| format!("{} {}", t["id"], t["matrix"]))
            .collect()
    };
    assert_eq!(ids(&from_root.stdout), ids(&from_below.stdout));
}

#[test]
fn a_source_that_fails_is_a_located_error_with_exit_2() {
    let repo = repository();
    write(
        repo.path(),
        "sweep.yaml",
        "version: 1\ntasks:\n  t:\n    model: haiku\n    prompt: x {{ matrix.f }}\n    matrix:\n      f: { glob: \"lib/**/*.rs\" }\n",
    );
    dispatch(repo.path())
        .args(["validate", "sweep.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "sweep.yaml:7:18: tasks.t.matrix.f.glob: `lib/**/*.rs` matches no file in the repository",
        ));
}

fn wide(count: usize, max_tasks: Option<u32>) -> tempfile::TempDir {
    let repo = repository();
    let lines: String = (0..count).map(|i| format!("item-{i}\n")).collect();
    write(repo.path(), "data/wide.txt", &lines);
    let setting = max_tasks.map_or(String::new(), |n| format!("max_tasks: {n}\n"));
    write(
        repo.path(),
        "sweep.yaml",
        &format!("version: 1\n{setting}tasks:\n  t:\n    model: haiku\n    prompt: x {{{{ matrix.v }}}}\n    matrix:\n      v: {{ lines: data/wide.txt }}\n"),
    );
    repo
}

#[test]
fn max_tasks_bounds_the_sweep_and_is_named_when_passed() {
    let repo = wide(5_001, None);
    dispatch(repo.path())
        .args(["validate", "sweep.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "sweep.yaml:6:5: tasks.t.matrix: the matrix expands to 5001 tasks; the sweep's limit, `max_tasks`, is 5000",
        ))
        .stderr(predicate::str::contains("raise `max_tasks:`"));
    let repo = wide(6_000, Some(6_000));
    dispatch(repo.path())
        .args(["validate", "sweep.yaml"])
        .assert()
        .success()
        .stdout(predicate::str::contains("6000 tasks"));
}
