//! Acceptance checks end to end, with the scripted test agent as the
//! worker: a passing check, a failing one (`check-failed`, exit 1), one a
//! retry fixes (flaky, with the check's output in the retry's prompt), a
//! check past its timeout, a secret a check prints, and hostile check
//! output in JUnit.

mod common;

use std::process::Output;

use serde_json::Value;

use common::Project;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn run_file(project: &Project, events: &[Value], name: &str) -> String {
    let run_id = events[0]["run_id"].as_str().expect("run id");
    let path = project
        .path()
        .join(".dispatch/runs")
        .join(run_id)
        .join(name);
    std::fs::read_to_string(path).unwrap_or_default()
}

fn report_json(project: &Project, events: &[Value]) -> Value {
    serde_json::from_str(&run_file(project, events, "report.json")).expect("report.json")
}

/// The run as a person sees it (no `--json`): its summary on stderr.
fn plain_run(project: &Project) -> (Output, String) {
    let output = project
        .command(&[
            "run",
            "sweep.yaml",
            "--grace",
            "300ms",
            "--retry-delay",
            "50ms",
        ])
        .output()
        .expect("dispatch runs");
    let err = stderr(&output);
    (output, err)
}

const DONE: &str = "command: [AGENT, write:built.txt=ok, check-all, done]\n    plan: [Build it]";

#[test]
fn a_passing_check_completes_the_task_and_is_a_junit_case() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ntasks:\n  build:\n    {DONE}\n    checks:\n      - \"test -f built.txt\"\n      - {{ name: says ok, run: \"grep -q ok built.txt && echo fine\", timeout: 1m }}\n"
    ));
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let task = project.task_json("build");
    assert_eq!(task["status"], "complete");
    let checks = &task["attempts"][0]["checks"];
    assert_eq!(checks[0]["name"], "test -f built.txt");
    assert_eq!(checks[0]["passed"], true);
    assert_eq!(checks[1]["name"], "says ok");
    assert_eq!(checks[1]["log"], "checks/attempt-1-2.log");
    assert_eq!(
        project.task_file("build", "checks/attempt-1-2.log"),
        "fine\n"
    );
    assert!(
        task["reason"]
            .as_str()
            .unwrap_or_default()
            .ends_with("2 checks passed"),
        "{}",
        task["reason"]
    );
    let ended: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "check-ended")
        .collect();
    assert_eq!(ended.len(), 2);
    let junit = run_file(&project, &events, "junit.xml");
    assert!(
        junit.contains(r#"<testcase name="check: says ok" classname="build""#),
        "{junit}"
    );
    assert!(!junit.contains("<failure"), "{junit}");
}

#[test]
fn a_failing_check_fails_the_task_with_its_own_status_and_shows_its_output() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ntasks:\n  build:\n    {DONE}\n    checks:\n      - {{ name: unit tests, run: \"echo 'test parse ... FAILED'; exit 3\" }}\n"
    ));
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let task = project.task_json("build");
    assert_eq!(task["status"], "check-failed");
    let reason = task["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("1 of 1 check failed: `unit tests` (exit code 3)"),
        "{reason}"
    );
    assert_eq!(
        task["attempts"][0]["checks"][0]["tail"],
        "test parse ... FAILED\n"
    );
    // Where people look: report.md, and the summary on stderr.
    let markdown = run_file(&project, &events, "report.md");
    assert!(markdown.contains("test parse ... FAILED"), "{markdown}");
    assert!(markdown.contains("unit tests"), "{markdown}");
    let report = report_json(&project, &events);
    assert_eq!(report["totals"]["statuses"]["check-failed"], 1);
    assert_eq!(report["tasks"][0]["checks"][0]["passed"], false);
    let junit = run_file(&project, &events, "junit.xml");
    assert!(
        junit.contains(r#"<failure message="unit tests (exit code 3)" type="check-failed">"#),
        "{junit}"
    );
    let status = project.command(&["status"]).output().expect("status runs");
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("  ✗ check unit tests: failed (exit code 3); output in .dispatch/tasks/build/checks/attempt-1-1.log"),
        "{status}"
    );
    let (output, err) = plain_run(&project);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("build: check `unit tests` FAILED (exit code 3) in "),
        "the CI lines show each check: {err}"
    );
    assert!(
        err.contains("1 check-failed in") && err.contains("cost not reported"),
        "{err}"
    );
    assert!(
        err.contains("✗ build — check-failed: ")
            && err
                .contains("    │ check `unit tests` (exit code 3):\n    │ test parse ... FAILED\n"),
        "{err}"
    );
}

#[test]
fn checks_do_not_run_when_the_plan_is_not_done() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  build:\n    command: [AGENT, fail-item:broken]\n    plan: [Build it]\n    checks: [\"touch ran.txt\"]\n",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let task = project.task_json("build");
    assert_eq!(task["status"], "failed");
    assert!(task["attempts"][0].get("checks").is_none(), "{task}");
    assert!(!project.path().join("ran.txt").exists());
}

#[test]
fn a_check_a_retry_fixes_makes_the_task_flaky_and_the_retry_hears_the_output() {
    let project = Project::new();
    // The check passes once the worker's prompt carries the check's own
    // output (`needs-42`, which the command's text does not hold): only a
    // retry that was told what the check said can pass it.
    project.manifest(
        "version: 1\ntasks:\n  fix:\n    command: [AGENT, read-stdin, check-all, done]\n    plan: [Fix it]\n    retries: 1\n    checks:\n      - name: feedback\n        run: \"grep -q 'needs-4[2]' {{ paths.task_dir }}/stdin.txt || { echo \\\"please say needs-$((40 + 2))\\\"; exit 1; }\"\n",
    );
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let task = project.task_json("fix");
    assert_eq!(task["status"], "complete");
    let attempts = task["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["status"], "check-failed");
    assert_eq!(attempts[0]["checks"][0]["passed"], false);
    assert_eq!(attempts[1]["checks"][0]["passed"], true);
    // The retry's prompt quoted the failure, and its plan was reopened.
    let prompt = project.task_file("fix", "stdin.txt");
    assert!(
        prompt.contains("### Check `feedback` failed (exit code 1)"),
        "{prompt}"
    );
    assert!(prompt.contains("please say needs-42"), "{prompt}");
    let plan = project.task_file("fix", "plan.md");
    assert!(
        plan.contains("- [x] Make the failing acceptance check pass: `feedback`"),
        "{plan}"
    );
    // Flaky in the reports, JUnit and the summary.
    let report = report_json(&project, &events);
    assert_eq!(report["totals"]["flaky_tasks"], 1);
    assert_eq!(report["tasks"][0]["flaky"], true);
    assert_eq!(
        report["tasks"][0]["attempt_results"][0]["status"],
        "check-failed"
    );
    let junit = run_file(&project, &events, "junit.xml");
    assert_eq!(junit.matches("<flakyFailure ").count(), 1, "{junit}");
    assert!(
        junit.contains(
            r#"message="attempt 1: feedback (exit code 1)" type="check-failed">please say needs-42"#
        ),
        "{junit}"
    );
    let markdown = run_file(&project, &events, "report.md");
    assert!(markdown.contains("| complete (flaky) |"), "{markdown}");
    assert!(markdown.contains("- Attempt 1: check-failed"), "{markdown}");
    let (output, err) = plain_run(&project);
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert!(err.contains("1 complete (1 flaky) in"), "{err}");
    assert!(
        err.contains("~ fix — flaky: complete after 1 failed attempt of 2"),
        "{err}"
    );
}

#[test]
fn a_check_that_still_fails_after_its_retries_keeps_each_failure_as_a_rerun() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ntasks:\n  build:\n    {DONE}\n    retries: 1\n    checks: [\"echo nope; false\"]\n"
    ));
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let task = project.task_json("build");
    assert_eq!(task["status"], "check-failed");
    assert_eq!(task["attempts"].as_array().map(Vec::len), Some(2));
    let junit = run_file(&project, &events, "junit.xml");
    assert_eq!(junit.matches("<rerunFailure").count(), 1, "{junit}");
    assert!(!junit.contains("flakyFailure"), "{junit}");
}

#[test]
fn a_check_past_its_timeout_is_stopped_with_what_it_started() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ntasks:\n  build:\n    {DONE}\n    checks:\n      - {{ name: slow, run: \"sleep 300 & echo $! > bg.pid; sleep 300\", timeout: 1s }}\n"
    ));
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let task = project.task_json("build");
    assert_eq!(task["status"], "check-failed");
    let check = &task["attempts"][0]["checks"][0];
    assert_eq!(check["timed_out"], true);
    assert!(
        task["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("`slow` (timed out)"),
        "{}",
        task["reason"]
    );
    let pid: i32 = std::fs::read_to_string(project.path().join("bg.pid"))
        .expect("bg.pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(
        !common::alive(pid),
        "the check's background process outlived it"
    );
}

#[test]
fn a_secret_a_check_prints_is_redacted_everywhere() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\nsecrets: [DEPLOY_KEY]\ntasks:\n  build:\n    {DONE}\n    env: {{ DEPLOY_KEY: hunter2-s3cr3t }}\n    checks: [\"echo key=$DEPLOY_KEY; exit 1\"]\n"
    ));
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let secret = "hunter2-s3cr3t";
    let task = project.task_file("build", "task.json");
    assert!(task.contains("check-failed"), "{task}");
    let log = project.task_file("build", "checks/attempt-1-1.log");
    assert!(log.starts_with("key="), "{log}");
    for (place, text) in [
        ("task.json", task),
        ("check log", log),
        ("stderr", stderr(&output)),
        (
            "stdout",
            String::from_utf8_lossy(&output.stdout).into_owned(),
        ),
        ("junit", run_file(&project, &events, "junit.xml")),
        ("report.md", run_file(&project, &events, "report.md")),
        ("report.json", run_file(&project, &events, "report.json")),
    ] {
        assert!(!text.contains(secret), "{place} holds the secret: {text}");
    }
}

#[test]
fn hostile_check_output_stays_text_in_junit() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ntasks:\n  build:\n    {DONE}\n    checks:\n      - {{ name: \"x\\\" <y>\", run: \"printf '</failure></testcase><testcase name=\\\"forged\\\"/>\\\\033[31m\\\\a]]>\\\\n::error::forged\\\\n'; exit 1\" }}\n"
    ));
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let junit = run_file(&project, &events, "junit.xml");
    assert!(!junit.contains(r#"<testcase name="forged""#), "{junit}");
    assert!(
        !junit.contains('\u{1b}') && !junit.contains('\u{7}'),
        "{junit}"
    );
    assert!(
        !junit.lines().any(|l| l.starts_with("::")),
        "a workflow command at the start of a line: {junit}"
    );
    assert!(junit.contains("&lt;/failure&gt;"), "{junit}");
    assert!(
        junit.contains(r#"name="check: x&quot; &lt;y&gt;""#),
        "{junit}"
    );
}

#[test]
fn a_worktree_checks_sees_its_branch_and_only_the_files_it_changed() {
    let project = Project::new();
    common::init_repo(project.path());
    project.manifest(
        "version: 1\ntasks:\n  wt:\n    command: [AGENT, \"write:new file.txt=x\", commit:work, \"write:$(touch pwned).txt=y\", check-all, done]\n    plan: [Work]\n    worktree: true\n    checks:\n      - { name: files, run: \"printf '%s|' {{ changed_files }} > ../../files.txt; echo {{ branch.name }} {{ branch.base }} > ../../branch.txt\" }\n",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let files = std::fs::read_to_string(project.path().join(".dispatch/files.txt"))
        .expect("the check wrote files.txt");
    assert_eq!(files, "$(touch pwned).txt|new file.txt|");
    assert!(!project.path().join(".dispatch/worktrees/wt/pwned").exists());
    let branch =
        std::fs::read_to_string(project.path().join(".dispatch/branch.txt")).expect("branch.txt");
    assert!(branch.ends_with(" HEAD\n"), "{branch}");
}

#[test]
fn bad_checks_are_located_errors_before_anything_runs() {
    let project = Project::new();
    project.manifest(
        "version: 1\ndefaults:\n  checks: [\"  \"]\ntasks:\n  build:\n    command: [AGENT, check-all]\n    plan: [Build]\n    checks:\n      - { name: lint, run: make lint }\n      - { name: lint, run: npm run lint }\n",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("the check's command is empty"), "{err}");
    assert!(
        err.contains("defaults.checks[0]") || err.contains("defaults.checks.0"),
        "{err}"
    );
    assert!(
        err.contains("two checks are named `lint` (entries 0 and 1)"),
        "{err}"
    );
    assert!(err.contains("sweep.yaml:10"), "{err}");

    // `branch` is only there for worktree tasks: a located template error.
    project.manifest(
        "version: 1\ntasks:\n  build:\n    command: [AGENT, check-all]\n    plan: [Build]\n    checks: [\"git diff --check {{ branch.base }}\"]\n",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("sweep.yaml:6"), "{err}");
    assert!(!project.path().join(".dispatch/tasks/build").exists());
}

#[test]
fn a_tasks_empty_list_turns_the_defaults_checks_off() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ndefaults:\n  checks: [\"false\"]\ntasks:\n  build:\n    {DONE}\n    checks: []\n  other:\n    {DONE}\n"
    ));
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(project.task_json("build")["status"], "complete");
    assert_eq!(project.task_json("other")["status"], "check-failed");
}

#[test]
fn retry_failed_reopens_a_check_failed_tasks_plan_and_quotes_the_check() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  fix:\n    command: [AGENT, read-stdin, check-all, done]\n    plan: [Fix it]\n    checks:\n      - name: second look\n        run: \"test -e looked-once || { touch looked-once; echo \\\"first look finds out-$((6 * 7))\\\"; exit 1; }\"\n",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(project.task_json("fix")["status"], "check-failed");
    let (output, _) = project.run(&["--retry-failed", "latest"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let task = project.task_json("fix");
    assert_eq!(task["status"], "complete");
    assert_eq!(task["attempts"].as_array().map(Vec::len), Some(2));
    let prompt = project.task_file("fix", "stdin.txt");
    assert!(prompt.contains("first look finds out-42"), "{prompt}");
    let plan = project.task_file("fix", "plan.md");
    assert!(
        plan.contains("- [x] Make the failing acceptance check pass: `second look`"),
        "{plan}"
    );
}

#[test]
fn ctrl_c_while_a_check_runs_cancels_the_task_and_stops_the_check() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ntasks:\n  build:\n    {DONE}\n    retries: 2\n    checks: [\"echo $$ > check.pid; sleep 300\"]\n"
    ));
    let child = project
        .command(&["run", "sweep.yaml", "--grace", "300ms"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let pid_file = project.path().join("check.pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let check: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "the check never ran");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let dispatch = child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-2", &dispatch])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = child.wait_with_output().expect("exits");
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    let task = project.task_json("build");
    assert_eq!(task["status"], "cancelled", "{task}");
    assert_eq!(
        task["attempts"].as_array().map(Vec::len),
        Some(1),
        "not retried"
    );
    assert!(!common::alive(check), "the check outlived the run");
}

#[test]
fn a_check_log_the_worker_planted_is_replaced_not_appended_to() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  build:\n    command: [sh, -c, \"mkdir -p $DISPATCH_TASK_DIR/checks && echo all 999 tests passed > $DISPATCH_TASK_DIR/checks/attempt-1-1.log && exec AGENT check-all done\"]\n    plan: [Build]\n    checks: [\"echo real output; exit 1\"]\n",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let log = project.task_file("build", "checks/attempt-1-1.log");
    assert_eq!(log, "real output\n");
    assert_eq!(
        project.task_json("build")["attempts"][0]["checks"][0]["tail"],
        "real output\n"
    );
}
