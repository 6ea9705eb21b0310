//! A wide sweep starts at once and keeps little: task folders are written
//! in the background while the first workers run, a wide sweep's worker
//! prompts are rendered at each launch (a narrower one's with its plan;
//! the workers get the same either way), `validate` checks them without
//! keeping them, and
//! `dispatch plan` of a large sweep leaves the prompts out unless asked.
//! A prompt error that only some matrix rows hit is still a located error
//! before anything runs.

mod common;

use std::process::Command;

use common::Project;
use serde_json::Value;

fn dispatch(project: &Project, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dispatch"))
        .args(args)
        .current_dir(project.path())
        .env("HOME", project.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("CI")
        .output()
        .expect("dispatch runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A worker that saves the prompt it got on stdin and as its argument,
/// ticks its plan and says it is done.
const RECORDING_BACKEND: &str = r#"backends:
  recorder:
    command:
      - sh
      - -c
      - 'printf "%s" "$1" > "$DISPATCH_TASK_DIR/arg.txt"; cat > "$DISPATCH_TASK_DIR/stdin.txt"; sed -i "s/- \[ \]/- [x]/" "$DISPATCH_PLAN"; touch "$DISPATCH_IPC_DIR/.done"'
      - sh
      - "{{ prompt }}"
    prompt: stdin
"#;

/// The prompts kept in the plan (a sweep this small).
#[test]
fn each_worker_gets_the_prompt_dispatch_plan_shows() {
    each_worker_gets_the_planned_prompt(None);
}

/// The prompts rendered at each launch, as a wide sweep's are.
#[test]
fn each_worker_gets_the_prompt_dispatch_plan_shows_rendered_at_launch() {
    each_worker_gets_the_planned_prompt(Some("0"));
}

/// `kept_up_to` lowers the size up to which a run keeps its prompts.
fn each_worker_gets_the_planned_prompt(kept_up_to: Option<&str>) {
    let project = Project::new();
    project.manifest(&format!(
        r#"version: 1
vars: {{ what: things }}
{RECORDING_BACKEND}tasks:
  up:
    title: "Collect {{{{ vars.what }}}}"
    backend: recorder
    plan: [Collect]
  each:
    backend: recorder
    needs: up
    matrix:
      v: [alpha, beta]
    prompt: "Work on {{{{ matrix.v }}}} after {{{{ needs.up.title }}}}"
    plan: ["Do {{{{ matrix.v }}}}"]
"#
    ));
    let planned = dispatch(&project, &["plan", "sweep.yaml", "--json"]);
    assert_eq!(planned.status.code(), Some(0), "{}", text(&planned.stderr));
    let plan: Value = serde_json::from_slice(&planned.stdout).expect("plan JSON");
    let mut run = project.command(&["run", "sweep.yaml", "--json"]);
    if let Some(most) = kept_up_to {
        run.env("DISPATCH_TEST_PROMPTS_KEPT_UP_TO", most);
    }
    let output = run.output().expect("dispatch runs");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let root = project.path().display().to_string();
    let tasks = plan["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 3);
    for task in tasks {
        let id = task["id"].as_str().expect("id");
        let stdin = project.task_file(id, "stdin.txt");
        let arg = project.task_file(id, "arg.txt");
        assert_eq!(stdin, arg, "{id}: the argv carries the same prompt");
        // The plan shows paths relative to the project; the run, absolute.
        let relative = stdin
            .replace(&format!("`{root}`"), "`.`")
            .replace(&format!("{root}/"), "");
        assert_eq!(
            relative,
            task["prompt"].as_str().expect("prompt"),
            "{id}: the prompt rendered at launch is the planned one"
        );
    }
    let beta = project.task_file("each-beta", "stdin.txt");
    assert!(beta.contains("Work on beta after Collect things"), "{beta}");
    assert!(
        beta.contains(&format!(
            "Task up (Collect things) wrote its output to {root}/.dispatch/tasks/up/output.md"
        )),
        "{beta}"
    );
    let record = project.task_json("each-beta");
    assert_eq!(
        record["argv"][4], "<worker prompt>",
        "the record shows where the prompt goes, not the prompt"
    );
}

#[test]
fn the_first_worker_starts_before_every_folder_is_written() {
    let project = Project::new();
    let values: Vec<String> = (1..=50).map(|i| i.to_string()).collect();
    project.manifest(&format!(
        r#"version: 1
concurrency: 1
tasks:
  first:
    command: [sh, -c, 'ls .dispatch/tasks | wc -l > "$DISPATCH_TASK_DIR/seen.txt"; touch "$DISPATCH_IPC_DIR/.done"']
    plan: [Look]
  rest:
    matrix: {{ x: [{}] }}
    command: [sh, -c, 'touch "$DISPATCH_IPC_DIR/.done"']
    plan: [Nothing]
"#,
        values.join(", ")
    ));
    // Each folder takes 150 ms to write: all 51 take over 7 s, while the
    // first worker needs only its own.
    let output = project
        .command(&["run", "sweep.yaml", "--quiet"])
        .env("DISPATCH_TEST_FOLDER_DELAY_MS", "150")
        .output()
        .expect("dispatch runs");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let seen: usize = project
        .task_file("first", "seen.txt")
        .trim()
        .parse()
        .expect("a count");
    assert!(
        seen < 51,
        "the first worker started only after all {seen} task folders were written"
    );
    // Once the run has ended, every task has its folder and record.
    let folders = std::fs::read_dir(project.path().join(".dispatch/tasks"))
        .expect("tasks folder")
        .count();
    assert_eq!(folders, 51);
    for entry in std::fs::read_dir(project.path().join(".dispatch/tasks")).expect("tasks") {
        let dir = entry.expect("entry").path();
        let record: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("task.json")).expect("task.json"),
        )
        .expect("a record");
        assert_eq!(record["status"], "complete", "{}", dir.display());
        assert!(dir.join("plan.md").is_file());
        assert!(dir.join("ipc").is_dir());
    }
}

/// `validate` and `run` both refuse the manifest with exit code 2, at
/// its task, and nothing runs.
fn refused(project: &Project, wanted: &[&str]) {
    let validate = dispatch(project, &["validate", "sweep.yaml"]);
    let stderr = text(&validate.stderr);
    assert_eq!(validate.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sweep.yaml:"), "located: {stderr}");
    for want in wanted {
        assert!(stderr.contains(want), "{want:?} in {stderr}");
    }
    let run = project
        .command(&["run", "sweep.yaml", "--quiet"])
        .output()
        .expect("runs");
    assert_eq!(run.status.code(), Some(2), "{}", text(&run.stderr));
    assert!(
        !project.path().join(".dispatch/tasks").exists(),
        "no task folder: nothing ran"
    );
}

#[test]
fn a_prompt_template_only_some_rows_break_is_refused_before_anything_runs() {
    let project = Project::new();
    std::fs::write(
        project.path().join("rows.jsonl"),
        "{\"name\": \"a\", \"extra\": \"x\"}\n{\"name\": \"b\"}\n{\"name\": \"c\", \"extra\": \"y\"}\n",
    )
    .expect("rows");
    std::fs::create_dir_all(project.path().join(".git")).expect(".git");
    std::fs::create_dir_all(project.path().join("templates")).expect("templates");
    // The project's own prompt template reads a field one row lacks.
    std::fs::write(
        project.path().join("templates/worker-prompt.md.j2"),
        "# {{ task.title }}\nAlso: {{ matrix.row.extra }}\n{{ plan_text }}\n",
    )
    .expect("template");
    project.manifest(
        r#"version: 1
tasks:
  t:
    matrix:
      row: { jsonl: rows.jsonl, id: name }
    command: [sh, -c, 'touch "$DISPATCH_IPC_DIR/.done"']
    plan: [Nothing]
"#,
    );
    refused(&project, &["undefined variable `matrix.row.extra`"]);

    // The same field read in the task's own prompt.
    std::fs::remove_file(project.path().join("templates/worker-prompt.md.j2")).expect("rm");
    project.manifest(
        r#"version: 1
tasks:
  t:
    matrix:
      row: { jsonl: rows.jsonl, id: name }
    command: [sh, -c, 'touch "$DISPATCH_IPC_DIR/.done"']
    prompt: "Also {{ matrix.row.extra }}"
    plan: [Nothing]
"#,
    );
    refused(&project, &["undefined variable `matrix.row.extra`"]);
}

#[test]
fn a_prompt_only_one_row_makes_too_long_is_refused_before_anything_runs() {
    let project = Project::new();
    // Only `big`, the second entry, renders a prompt past the 4 MiB bound
    // (3 MB of its own text and a 2 MB plan); each part alone is within it.
    project.manifest(
        r#"version: 1
tasks:
  t:
    matrix:
      v: [small, big, other]
    command: [sh, -c, 'touch "$DISPATCH_IPC_DIR/.done"']
    prompt: "Do {{ matrix.v }}{% if matrix.v == 'big' %}{{ 'x' * 3000000 }}{% endif %}"
    plan: ["Item{% if matrix.v == 'big' %}{{ 'y' * 2000000 }}{% endif %}"]
"#,
    );
    refused(&project, &["renders more than 4 MiB"]);
}

#[test]
fn a_large_sweeps_plan_shows_prompts_only_when_asked() {
    let project = Project::new();
    let values: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
    project.manifest(&format!(
        "version: 1\ntasks:\n  t:\n    matrix: {{ x: [{}] }}\n    command: [sh, -c, 'true']\n    plan: [Nothing]\n",
        values.join(", ")
    ));
    let count = |args: &[&str], what: &str| {
        let output = dispatch(&project, args);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        text(&output.stdout).matches(what).count()
    };
    let heading = "# Task: ";
    let left_out = "(not shown in a sweep of more than 100 tasks";
    assert_eq!(count(&["plan", "sweep.yaml"], heading), 0);
    assert_eq!(count(&["plan", "sweep.yaml"], left_out), 101);
    assert_eq!(count(&["plan", "sweep.yaml", "--prompts"], heading), 101);
    assert_eq!(count(&["plan", "sweep.yaml", "--task", "t-7"], heading), 1);
    let in_json = "\"prompt\": \"# Task: ";
    assert_eq!(count(&["plan", "sweep.yaml", "--json"], in_json), 0);
    assert_eq!(
        count(&["plan", "sweep.yaml", "--json", "--prompts"], in_json),
        101
    );
}
