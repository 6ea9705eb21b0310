//! A hostile worker: it knows a secret from its environment and puts it,
//! with forged GitHub workflow commands and terminal escapes, into every
//! kind of text dispatch records or shows (a question, a finding's title,
//! location and detail, a plan note, `output.md`, its stdout). No record,
//! report or output may carry the secret, no output line may be a forged
//! workflow command, and no raw control character may reach the terminal
//! or the Markdown report (issue 18, items 7 and 8).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::Project;

const SECRET: &str = "sk-test-123456";

/// The worker, as a shell script: each piece of text it hands dispatch
/// carries the secret, a newline followed by a workflow command, a screen
/// clear and an OSC title sequence.
const WORKER: &str = r#"#!/bin/sh
set -e
S="$MY_API_KEY"
E=$(printf '\033')
B=$(printf '\007')
C1=$(printf '\302\233')
DEL=$(printf '\177')
NL='
'
EVIL="${NL}::error::forged${NL}::stop-commands::x${NL}${E}[2J${E}]0;pwned${B}${C1}2J${DEL}"
a=$("$DISPATCH_BIN" worker ask "Use key $S?$EVIL")
"$DISPATCH_BIN" worker finding --severity high "leaked $S$EVIL" \
  --location "src/$S.rs,x=1${EVIL}:7" --detail "detail $S$EVIL"
printf '# Plan\n\n- [x] Step %s one — note %s%s\n  ::error::forged-note %s[2J\n- [!] Step two — failed with %s%s\n' \
  "$S" "$S" "$EVIL" "$E" "$S" "$EVIL" > "$DISPATCH_PLAN.tmp"
mv "$DISPATCH_PLAN.tmp" "$DISPATCH_PLAN"
printf 'output with %s%s\n' "$S" "$EVIL" > "$DISPATCH_OUTPUT"
echo "stdout $S$EVIL"
echo "stderr $S$EVIL" >&2
touch "$DISPATCH_IPC_DIR/.done"
"#;

/// `HOOKS` is replaced by the file the escalation hooks append their
/// `DISPATCH_*` variables and stdin to.
const MANIFEST: &str = "version: 1
questions:
  answers: [{ keywords: [key], answer: go on }]
escalation:
  - name: pager
    when: { severity: high }
    run: 'env | grep ^DISPATCH_ >> HOOKS; cat >> HOOKS'
  - name: asked
    when: { question: key }
    run: 'env | grep ^DISPATCH_ >> HOOKS; cat >> HOOKS'
tasks:
  evil:
    command: [sh, work.sh]
    plan: [Step one, Step two]
";

/// The files the worker itself writes (its protocol files): the secret in
/// them is the worker's doing, not a record of dispatch's.
fn written_by_worker(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    path.components().any(|c| c.as_os_str() == "ipc")
        || matches!(name, "plan.md" | "output.md" | "findings.jsonl")
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in listing.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

/// Every record and report dispatch wrote under `dirs`.
fn records(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in dirs {
        files_under(dir, &mut files);
    }
    files.retain(|f| !written_by_worker(f));
    files
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} carries the secret:\n{text}");
}

/// No line a CI runner reads can be a workflow command the worker forged:
/// the only `::` lines are dispatch's own annotations.
fn assert_no_forged_command(what: &str, text: &str) {
    for line in text.split(['\n', '\r']) {
        let line = line.trim_start();
        if line.starts_with("::") {
            assert!(
                [
                    "::error file=",
                    "::warning file=",
                    "::error title=",
                    "::warning title="
                ]
                .iter()
                .any(|own| line.starts_with(own)),
                "{what} has a forged workflow command: {line:?}\n{text}"
            );
        }
    }
}

fn assert_no_raw_controls(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n' && *c != '\t')
        .collect();
    assert!(
        bad.is_empty(),
        "{what} has raw control characters {bad:?}:\n{text}"
    );
}

fn check_output(what: &str, output: &Output) {
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        let what = format!("{what} {stream}");
        assert_no_secret(&what, &text);
        assert_no_forged_command(&what, &text);
        assert_no_raw_controls(&what, &text);
    }
}

/// A project holding the hostile worker; `dispatch run` with `extra`
/// arguments and `env`, whose output is checked before it is returned.
fn hostile_run(what: &str, extra: &[&str], env: &[(&str, &Path)]) -> (Project, Output) {
    let project = Project::new();
    let hooks = project.path().join("hooks.txt");
    project.manifest(&MANIFEST.replace("HOOKS", &hooks.display().to_string()));
    std::fs::write(project.path().join("work.sh"), WORKER).expect("write worker");
    let mut args = vec![
        "run",
        "sweep.yaml",
        "--report-dir",
        "out",
        "--grace",
        "300ms",
    ];
    args.extend_from_slice(extra);
    let mut command = project.command(&args);
    command
        .env("MY_API_KEY", SECRET)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("dispatch runs");
    check_output(what, &output);
    // The run saw everything the worker did: the question, the finding.
    let task = project.task_json("evil");
    assert_eq!(
        task["questions"].as_array().map(Vec::len),
        Some(1),
        "{task}"
    );
    assert_eq!(task["findings"].as_array().map(Vec::len), Some(1), "{task}");
    assert!(
        task.to_string().contains("[redacted MY_API_KEY]"),
        "the redaction is marked: {task}"
    );
    // Both hooks ran, and saw the worker's text without the secret.
    let hooked = std::fs::read_to_string(&hooks).unwrap_or_default();
    for part in [
        "DISPATCH_TITLE=leaked [redacted MY_API_KEY]",
        "DISPATCH_LOCATION=src/[redacted MY_API_KEY].rs",
        "DISPATCH_QUESTION=Use key [redacted MY_API_KEY]?",
        "\"kind\":\"question\"",
    ] {
        assert!(
            hooked.contains(part),
            "no {part:?} in the hooks' input:\n{hooked}"
        );
    }
    assert_no_secret("the hooks' variables and stdin", &hooked);
    (project, output)
}

fn check_records(project: &Project) {
    let files = records(&[project.path().join(".dispatch"), project.path().join("out")]);
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for expected in [
        "events.jsonl",
        "task.json",
        "run.json",
        "report.json",
        "report.md",
        "junit.xml",
        "worker.log",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "no {expected} in {names:?}"
        );
    }
    for file in &files {
        let text = String::from_utf8_lossy(&std::fs::read(file).unwrap_or_default()).into_owned();
        assert_no_secret(&file.display().to_string(), &text);
        if file.extension().is_some_and(|e| e == "md") {
            assert_no_raw_controls(&file.display().to_string(), &text);
        }
    }
    // A question the worker left waiting as the run ended.
    std::fs::write(
        project.path().join(".dispatch/tasks/evil/ipc/002.question"),
        format!("Still there? {SECRET}\n::error::forged\n\x1b[2J"),
    )
    .expect("write question");
    // Read back by other commands, in another process.
    for args in [
        &["questions"][..],
        &["questions", "--json"],
        &["status"],
        &["status", "--json"],
        &["report", "--format", "md"],
        &["report", "--format", "json"],
        &["report", "--format", "junit"],
    ] {
        let output = project
            .command(args)
            .env("MY_API_KEY", SECRET)
            .output()
            .expect("dispatch runs");
        check_output(&format!("dispatch {}", args.join(" ")), &output);
    }
}

#[test]
fn a_hostile_worker_leaks_no_secret_and_forges_no_line_in_plain_output() {
    let (project, _) = hostile_run("plain run", &[], &[]);
    check_records(&project);
}

#[test]
fn a_hostile_worker_leaks_no_secret_in_json_output() {
    let (project, _) = hostile_run("--json run", &["--json"], &[]);
    check_records(&project);
}

#[test]
fn a_hostile_worker_leaks_no_secret_and_forges_no_command_on_github_actions() {
    let summary_dir = tempfile::tempdir().expect("tempdir");
    let summary = summary_dir.path().join("summary.md");
    let (project, output) = hostile_run(
        "GitHub Actions run",
        &[],
        &[
            ("GITHUB_ACTIONS", Path::new("true")),
            ("GITHUB_STEP_SUMMARY", &summary),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    for part in [
        "::error file=src/[redacted MY_API_KEY].rs%2Cx=1%0A%3A%3Aerror%3A%3Aforged%0A",
        ",line=7,title=evil high::leaked [redacted MY_API_KEY]%0A::error::forged%0A",
    ] {
        assert!(stdout.contains(part), "the finding is annotated: {stdout}");
    }
    let text = std::fs::read_to_string(&summary).unwrap_or_default();
    assert!(
        text.contains("leaked"),
        "the job summary has the finding: {text}"
    );
    assert_no_secret("the job summary", &text);
    assert_no_raw_controls("the job summary", &text);
    check_records(&project);
}

/// A worker that swaps its task folder for a link to a folder outside
/// makes dispatch's last write of its record fail. Nothing is written
/// through the link, and the failure is a warning event, in `--json` and
/// in `events.jsonl`, not a line the state writer printed around the
/// reporters (which redact and escape what they show).
#[test]
fn a_record_that_cannot_be_written_is_a_warning_event() {
    let project = Project::new();
    let outside = project.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    project.manifest(&format!(
        "version: 1\ntasks:\n  mover:\n    command: [sh, -c, 'mv \"$DISPATCH_TASK_DIR\" \"$DISPATCH_TASK_DIR.gone\" && ln -s \"{}\" \"$DISPATCH_TASK_DIR\"']\n    plan: [Move]\n",
        outside.display()
    ));
    let (output, events) = project.run(&[]);
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    let warned = |events: &[serde_json::Value]| {
        events.iter().any(|e| {
            e["event"] == "warning"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("cannot update ") && m.contains("symbolic link"))
        })
    };
    assert!(warned(&events), "no warning event: {events:?}");
    assert!(
        !err.contains("cannot update"),
        "printed around the reporters: {err}"
    );
    let runs = project.path().join(".dispatch/runs");
    let logged: Vec<serde_json::Value> = std::fs::read_dir(&runs)
        .expect("runs")
        .filter_map(Result::ok)
        .filter_map(|run| std::fs::read_to_string(run.path().join("events.jsonl")).ok())
        .flat_map(|log| {
            log.lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(warned(&logged), "not in events.jsonl: {logged:?}");
    let written: Vec<_> = std::fs::read_dir(&outside).expect("outside").collect();
    assert!(written.is_empty(), "written through the link: {written:?}");
}
