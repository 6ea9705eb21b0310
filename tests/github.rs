//! What GitHub Actions shows of a run: an annotation for every escalation
//! that fired, every finding (with or without a location) and every
//! question left unanswered.

mod common;

use common::Project;

#[test]
fn escalations_findings_without_a_location_and_unanswered_questions_are_annotated() {
    let project = Project::new();
    project.manifest(
        "version: 1
name: gaps
questions: { timeout: 300ms, on_unanswered: block }
escalation:
  - name: anything high
    when: { severity: high }
    action: notify
tasks:
  audit:
    command: [sh, -c, '\"$DISPATCH_BIN\" worker finding --severity high \"secrets, in: logs\"; \"$DISPATCH_BIN\" worker finding --severity low \"style\" --location \"src/a.rs:9\"; touch \"$DISPATCH_IPC_DIR/.done\"']
    plan: [Look]
  asker:
    command: [AGENT, 'ask:Deploy to staging or prod?']
    plan: [Deploy]
",
    );
    let output = project
        .command(&["run", "sweep.yaml", "--quiet", "--grace", "200ms"])
        .env("GITHUB_ACTIONS", "true")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .expect("dispatch runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    insta::assert_snapshot!(stdout, @r#"
    ::error title=escalation::anything high: audit HIGH: secrets, in: logs
    ::error title=audit high::secrets, in: logs
    ::warning file=src/a.rs,line=9,title=audit low::style
    ::error title=asker question unanswered::Deploy to staging or prod? (answer with: dispatch answer asker --seq 1 "...", then dispatch resume)
    "#);
}

fn junit_of_latest_run(project: &Project) -> String {
    let runs = project.path().join(".dispatch/runs");
    let mut ids: Vec<_> = std::fs::read_dir(&runs)
        .expect("runs")
        .flatten()
        .map(|e| e.path())
        .collect();
    ids.sort();
    let run = ids.pop().expect("a run");
    std::fs::read_to_string(run.join("junit.xml")).expect("junit.xml")
}

/// `name="…"` of every `<testcase>`.
fn case_names(junit: &str) -> Vec<String> {
    junit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("<testcase name=\""))
        .filter_map(|l| l.split_once('"').map(|(name, _)| name.to_owned()))
        .collect()
}

/// Dashboards follow a test case by its name across runs and machines:
/// names made from templates that print a task's paths, or from a worker
/// that reports an absolute path, are relative to the project.
#[test]
fn junit_case_names_hold_no_absolute_path() {
    let project = Project::new();
    let root = project.path().display().to_string();
    project.manifest(&format!(
        "version: 1
tasks:
  write:
    command: [AGENT, check-all, 'finding:high:Key in {root}/src/a.rs', done]
    plan:
      - Write the result to {{{{ paths.output }}}}
      - Look through {{{{ paths.root }}}}
"
    ));
    let output = project
        .command(&["run", "sweep.yaml", "--quiet"])
        .output()
        .expect("dispatch runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let junit = junit_of_latest_run(&project);
    assert_eq!(
        case_names(&junit),
        [
            "Write the result to .dispatch/tasks/write/output.md",
            "Look through .",
            "finding: Key in src/a.rs",
        ],
        "{junit}"
    );
    assert!(!junit.contains(&root), "{junit}");

    // A shard's report merged on another machine: the root there differs,
    // and the task's paths still read the same.
    let report = project.path().join("shard.json");
    let run_report = junit_of_latest_run_report(&project);
    std::fs::write(&report, run_report.replace(&root, "/elsewhere/checkout")).expect("write");
    let merged = std::process::Command::new(env!("CARGO_BIN_EXE_dispatch"))
        .args(["merge", "shard.json", "--report-dir", "merged"])
        .current_dir(project.path())
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .expect("dispatch merge runs");
    assert_eq!(
        merged.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    let junit = std::fs::read_to_string(project.path().join("merged/junit.xml")).expect("junit");
    assert_eq!(
        case_names(&junit)[0],
        "Write the result to .dispatch/tasks/write/output.md"
    );
}

fn junit_of_latest_run_report(project: &Project) -> String {
    let runs = project.path().join(".dispatch/runs");
    let mut ids: Vec<_> = std::fs::read_dir(&runs)
        .expect("runs")
        .flatten()
        .map(|e| e.path())
        .collect();
    ids.sort();
    let run = ids.pop().expect("a run");
    std::fs::read_to_string(run.join("report.json")).expect("report.json")
}

/// The root `time` is the run's wall time (docs/reports.md): two tasks
/// that ran side by side do not count twice.
#[test]
fn junit_root_time_is_the_wall_time() {
    let project = Project::new();
    project.manifest(
        "version: 1
concurrency: 2
tasks:
  one:
    command: [AGENT, 'sleep:700ms', check-all, done]
    plan: [Wait]
  two:
    command: [AGENT, 'sleep:700ms', check-all, done]
    plan: [Wait]
",
    );
    let output = project
        .command(&["run", "sweep.yaml", "--quiet"])
        .output()
        .expect("dispatch runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&junit_of_latest_run_report(&project)).expect("report.json");
    let at = |key: &str| {
        chrono::DateTime::parse_from_rfc3339(report[key].as_str().expect(key)).expect("rfc3339")
    };
    let wall = (at("ended_at") - at("started_at")).num_milliseconds();
    let summed: i64 = report["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["duration_ms"].as_i64().expect("duration"))
        .sum();
    let junit = junit_of_latest_run(&project);
    let root = junit
        .lines()
        .find(|l| l.starts_with("<testsuites "))
        .expect("root element");
    let time = root
        .split(" time=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("a time attribute");
    let seconds: f64 = time.parse().expect("seconds");
    assert_eq!(
        (seconds * 1000.0).round() as i64,
        wall,
        "{root}; tasks summed {summed} ms"
    );
    assert_ne!(wall, summed, "the test needs tasks that overlap");
}
