//! The record tells the truth: a worker that deletes its open items does not
//! complete; a task declared done with items nobody ticked says so, and no
//! unticked item is ever a passed JUnit case; reports a crash left missing
//! come back; resume runs only the manifest the user ran.

mod common;

use std::process::Output;

use serde_json::Value;

use common::Project;

const PLAN: &str = "plan: [First step, Second step, Third step]";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn run_dir(project: &Project) -> std::path::PathBuf {
    let runs = project.path().join(".dispatch/runs");
    let mut ids: Vec<_> = std::fs::read_dir(&runs)
        .expect("runs")
        .flatten()
        .map(|e| e.path())
        .collect();
    ids.sort();
    ids.pop().expect("a run")
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `<testcase>` element of `name` in a JUnit file, up to the next one.
fn case<'a>(xml: &'a str, name: &str) -> &'a str {
    let at = xml
        .find(&format!("<testcase name=\"{name}\""))
        .unwrap_or_else(|| panic!("no case {name:?} in {xml}"));
    let rest = &xml[at..];
    let end = rest[1..]
        .find("<testcase")
        .or_else(|| rest.find("</testsuite>"))
        .map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

#[test]
fn a_worker_that_deletes_its_open_items_is_incomplete_and_junit_keeps_them() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1
tasks:
  sly:
    command: [AGENT, 'rewrite-plan:# Sly\\n\\n- [x] First step — done\\n', done]
    {PLAN}
"
    ));
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let record = project.task_json("sly");
    assert_eq!(record["status"], "incomplete", "{record}");
    let reason = record["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("removed 2 of the 3 items") && reason.contains("Second step; Third step"),
        "{reason}"
    );
    assert_eq!(
        record["dropped"],
        serde_json::json!(["Second step", "Third step"])
    );
    assert!(
        events.iter().any(|e| e["event"] == "warning"
            && e["task"] == "sly"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("removed items") && m.contains("Third step"))),
        "a warning event names the dropped items"
    );
    let xml = read(&run_dir(&project).join("junit.xml"));
    assert!(!case(&xml, "First step").contains("<failure"));
    for dropped in ["Second step", "Third step"] {
        let case = case(&xml, dropped);
        assert!(
            case.contains("<failure") && case.contains("removed from the plan"),
            "{case}"
        );
    }
    let report: Value =
        serde_json::from_str(&read(&run_dir(&project).join("report.json"))).expect("json");
    assert_eq!(report["tasks"][0]["dropped"][1], "Third step", "{report}");
    let status = project.command(&["status"]).output().expect("status");
    assert!(
        stdout(&status).contains("Third step (removed from the plan by the worker)"),
        "{}",
        stdout(&status)
    );
}

#[test]
fn items_never_ticked_in_a_task_declared_done_are_skipped_never_passed() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1
tasks:
  hasty:
    command: [AGENT, check, done]
    {PLAN}
  honest:
    command: [AGENT, check-all, done]
    {PLAN}
"
    ));
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let record = project.task_json("hasty");
    assert_eq!(record["status"], "complete", "{record}");
    assert_eq!(
        record["unticked"],
        serde_json::json!(["Second step", "Third step"])
    );
    assert!(record["reason"]
        .as_str()
        .is_some_and(|r| r.contains("declared done") && r.contains("2 never ticked")));
    assert!(project.task_json("honest").get("unticked").is_none());
    // Said once, in the task's end (a warning event per such task would
    // flood a large sweep's output); the summary counts them.
    assert!(events.iter().any(|e| e["event"] == "task-ended"
        && e["task"] == "hasty"
        && e["reason"]
            .as_str()
            .is_some_and(|m| m.contains("2 never ticked"))));

    let dir = run_dir(&project);
    let xml = read(&dir.join("junit.xml"));
    for unticked in ["Second step", "Third step"] {
        // hasty's suite comes first.
        let hasty_case = case(&xml, unticked);
        assert!(
            hasty_case.contains("classname=\"hasty\"")
                && hasty_case.contains("<skipped")
                && hasty_case.contains("without ticking this item"),
            "{hasty_case}"
        );
    }
    let report: Value = serde_json::from_str(&read(&dir.join("report.json"))).expect("json");
    assert_eq!(report["totals"]["unticked_tasks"], 1, "{report}");
    assert_eq!(report["tasks"][0]["unticked"][0], "Second step");
    let markdown = read(&dir.join("report.md"));
    assert!(
        markdown.contains("declared the task done without ticking 2 items"),
        "{markdown}"
    );
    let summary = stderr(
        &project
            .command(&["run", "sweep.yaml", "--quiet"])
            .output()
            .expect("run"),
    );
    assert!(
        summary.contains("1 complete task was declared done with items nobody ticked: hasty"),
        "{summary}"
    );
    let status = project.command(&["status"]).output().expect("status");
    assert!(
        stdout(&status).contains(
            "hasty — COMPLETE, with a warning: declared done without ticking 2 of 3 items"
        ),
        "{}",
        stdout(&status)
    );
}

#[test]
fn reports_a_crash_left_unwritten_are_restored_by_resume_and_report() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1
tasks:
  one:
    command: [AGENT, check-all]
    {PLAN}
"
    ));
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let dir = run_dir(&project);
    let junit = read(&dir.join("junit.xml"));
    let run: Value = serde_json::from_str(&read(&dir.join("run.json"))).expect("run.json");
    assert_eq!(
        run["status"], "complete",
        "run.json is written before the reports"
    );
    // What a kill right after report.json appeared leaves behind.
    std::fs::remove_file(dir.join("junit.xml")).expect("rm");
    let resumed = project.command(&["resume"]).output().expect("resume");
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("nothing to resume"),
        "{}",
        stderr(&resumed)
    );
    assert!(
        stderr(&resumed).contains("junit.xml"),
        "{}",
        stderr(&resumed)
    );
    assert_eq!(
        read(&dir.join("junit.xml")),
        junit,
        "the same report, from the state"
    );

    for name in ["report.md", "report.json", "junit.xml"] {
        std::fs::remove_file(dir.join(name)).expect("rm");
    }
    let report = project
        .command(&["report", "--format", "junit"])
        .output()
        .expect("report");
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    assert_eq!(stdout(&report), junit);
    assert!(
        stderr(&report).contains("report.md, which run "),
        "says what it restored: {}",
        stderr(&report)
    );
    for name in ["report.md", "report.json", "junit.xml"] {
        assert!(dir.join(name).is_file(), "{name} restored");
    }
}

#[test]
fn resume_runs_only_the_manifest_the_user_started() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1
tasks:
  flaky:
    command: [sh, -c, 'if [ -f resumed ]; then exec AGENT check-all; else exit 1; fi']
    retries: 0
    {PLAN}
"
    ));
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    std::fs::write(project.path().join("resumed"), "").expect("write");
    let dir = run_dir(&project);
    let copy = dir.join("manifest.yaml");
    let original = read(&copy);
    let pwned = project.path().join("pwned");

    // A worker rewrites the run's copy of the manifest.
    let injected = original.replace(
        "command: [sh, -c, 'if",
        &format!("command: [sh, -c, 'touch {}; if", pwned.display()),
    );
    assert_ne!(injected, original);
    std::fs::write(&copy, &injected).expect("tamper");
    let refused = project.command(&["resume"]).output().expect("resume");
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("is not the manifest the run started with"),
        "{}",
        stderr(&refused)
    );
    assert!(!pwned.exists(), "the injected command never ran");

    // ... and points the run's record at it, inside .dispatch/.
    let run_json = dir.join("run.json");
    let mut run: Value = serde_json::from_str(&read(&run_json)).expect("run.json");
    run["manifest_path"] = Value::String(copy.display().to_string());
    std::fs::write(&run_json, serde_json::to_string(&run).expect("json")).expect("tamper");
    let refused = project.command(&["resume"]).output().expect("resume");
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("which workers can write"),
        "{}",
        stderr(&refused)
    );
    assert!(!pwned.exists(), "the injected command never ran");

    // Put back, the user's own manifest resumes as before.
    run["manifest_path"] = Value::String(
        std::fs::canonicalize(project.path().join("sweep.yaml"))
            .expect("canonical")
            .display()
            .to_string(),
    );
    std::fs::write(&run_json, serde_json::to_string(&run).expect("json")).expect("restore");
    std::fs::write(&copy, &original).expect("restore");
    let resumed = project.command(&["resume"]).output().expect("resume");
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert_eq!(project.task_json("flaky")["status"], "complete");
}

#[test]
fn answers_are_never_written_through_a_planted_link() {
    let project = Project::new();
    let elsewhere = project.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    project.manifest(&format!(
        "version: 1
questions:
  answers:
    - match: region
      answer: eu-west-1
tasks:
  sly:
    retries: 0
    command: [AGENT, 'link-ipc:{}', ask-timeout:3s, 'ask:Which region?', check-all]
    {PLAN}
",
        elsewhere.display()
    ));
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let answers: Vec<_> = std::fs::read_dir(&elsewhere)
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("answer"))
        .collect();
    assert!(
        answers.is_empty(),
        "nothing is written in the link's target: {answers:?}"
    );
    let record = project.task_json("sly");
    assert_eq!(record["status"], "failed", "{record}");
    let reason = record["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("question #1 could not be answered")
            && reason.contains("replaced by a symbolic link"),
        "{reason}"
    );
    assert!(events.iter().all(|e| e["event"] != "answered"));
}

#[test]
fn nothing_is_written_through_a_planted_task_folder() {
    let project = Project::new();
    let elsewhere = project.path().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("ipc")).expect("mkdir");
    // The worker swaps its whole task folder for a link to a folder with
    // an `ipc/` of its own, then asks there. (It waits for dispatch to
    // record its start first: that write would make the folder again
    // between the worker's `mv` and `ln`.)
    project.manifest(&format!(
        "version: 1
questions:
  answers:
    - match: region
      answer: eu-west-1
tasks:
  sly:
    retries: 0
    command: [sh, -c, 'sleep 0.5; cp \"$DISPATCH_PLAN\" {0} && mv \"$DISPATCH_TASK_DIR\" \"$DISPATCH_TASK_DIR.moved\" && ln -s {0} \"$DISPATCH_TASK_DIR\" && exec AGENT ask-timeout:3s \"ask:Which region?\" check-all']
    {PLAN}
",
        elsewhere.display()
    ));
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        !elsewhere.join("ipc/001.answer").exists(),
        "no answer through the link"
    );
    for name in ["task.json", ".task.json.swap"] {
        assert!(!elsewhere.join(name).exists(), "no {name} through the link");
    }
    let report: Value =
        serde_json::from_str(&read(&run_dir(&project).join("report.json"))).expect("json");
    assert_eq!(report["tasks"][0]["status"], "failed", "{report}");
    assert!(
        report["tasks"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("replaced by a symbolic link")),
        "{report}"
    );
}
