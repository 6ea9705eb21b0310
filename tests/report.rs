//! Reports after a sweep: Markdown, JSON and JUnit, golden-tested on runs of
//! the scripted test agent, parsed by an independent XML parser, and kept
//! small whatever the workers print.

mod common;

use std::process::Command;

use serde_json::Value;

use common::Project;

const PLAN: &str = "plan: [First step, Second step]";

/// A sweep with every ending: complete, failed, blocked, timed out,
/// skipped, escalated, with findings that need escaping and a log full of
/// ANSI codes.
const MIXED: &str = "version: 1
name: mixed
concurrency: 6
reports: { junit_fail_severity: high }
tasks:
  done:
    command: [AGENT, check-all, 'output:All <good> & done', done]
    PLAN
  broken:
    command: [AGENT, check, 'fail-item:disk full']
    PLAN
  waiting:
    command: [AGENT, 'block-item:staging or prod?']
    PLAN
  slow:
    timeout: 300ms
    command: [AGENT, hang]
    PLAN
  after-broken:
    needs: broken
    command: [AGENT, check-all]
    PLAN
  hostile:
    command: [sh, -c, 'printf \"\\033[31mred\\007 bell\\n\"; \"$DISPATCH_BIN\" worker finding --severity critical \"<script>&\\\"x\" --location \"src/a.ts:7\"; \"$DISPATCH_BIN\" worker finding --severity low \"minor | thing\"; touch \"$DISPATCH_IPC_DIR/.done\"']
    plan: [Look]
";

fn run_mixed(project: &Project, extra: &[&str]) -> std::process::Output {
    project.manifest(&MIXED.replace("PLAN", PLAN));
    let mut args = vec!["run", "sweep.yaml", "--quiet", "--grace", "200ms"];
    args.extend_from_slice(extra);
    project.command(&args).output().expect("runs")
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

/// Replace what changes from run to run (ids, times, durations, pids,
/// temporary paths) so the reports can be compared with golden files.
fn normalize(text: &str, project: &Project) -> String {
    let root = std::fs::canonicalize(project.path())
        .expect("canonical")
        .display()
        .to_string();
    let text = text
        .replace(&root, "[root]")
        .replace(&project.path().display().to_string(), "[root]");
    let rules = [
        (r"\d{8}-\d{6}-[0-9a-f]{4}", "[run-id]"),
        (
            r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
            "[time]",
        ),
        (r#"time="[0-9.]+""#, r#"time="[secs]""#),
        (r#""duration_ms": \d+"#, r#""duration_ms": "[ms]""#),
        (r"\| \d+(\.\d+)?(ms|s|m\d+s) \|", "| [duration] |"),
        (r"attempts?; \d+(\.\d+)?(ms|s|m\d+s)", "attempt; [duration]"),
        (r"grandchild: \d+", "grandchild: [pid]"),
    ];
    let mut out = text;
    for (pattern, replacement) in rules {
        out = regex::Regex::new(pattern)
            .expect("regex")
            .replace_all(&out, replacement)
            .into_owned();
    }
    out
}

#[test]
fn the_three_reports_match_their_golden_files() {
    let project = Project::new();
    let output = run_mixed(&project, &[]);
    assert_eq!(
        output.status.code(),
        Some(3),
        "the critical finding escalates: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = run_dir(&project);
    for (name, file) in [
        ("report-md", "report.md"),
        ("report-json", "report.json"),
        ("junit", "junit.xml"),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).expect("report written");
        insta::with_settings!({ snapshot_path => "snapshots/reports", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(name, normalize(&text, &project));
        });
    }
}

#[test]
fn junit_loads_in_an_independent_parser_with_the_right_counts() {
    let project = Project::new();
    run_mixed(&project, &[]);
    let junit = run_dir(&project).join("junit.xml");
    // Python's standard XML parser, a consumer that shares no code with us.
    let script = [
        "import sys, xml.etree.ElementTree as ET",
        "root = ET.parse(sys.argv[1]).getroot()",
        "for s in root.iter('testsuite'):",
        "    print(s.get('name'), s.get('tests'), s.get('failures'), s.get('errors'), s.get('skipped'))",
    ]
    .join("\n");
    let parsed = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&junit)
        .output()
        .expect("python3 runs");
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let lines = String::from_utf8_lossy(&parsed.stdout).into_owned();
    let suites: std::collections::HashMap<&str, Vec<&str>> = lines
        .lines()
        .map(|l| {
            let mut p = l.split(' ');
            (p.next().unwrap_or(""), p.collect())
        })
        .collect();
    assert_eq!(suites["done"], ["2", "0", "0", "0"]);
    assert_eq!(
        suites["broken"],
        ["2", "1", "0", "0"],
        "[x] passes, [!] fails"
    );
    assert_eq!(suites["waiting"], ["2", "1", "1", "0"], "[?] is an error");
    assert_eq!(suites["slow"], ["2", "2", "0", "0"]);
    assert_eq!(
        suites["after-broken"],
        ["2", "0", "0", "2"],
        "a skipped task's items are skipped"
    );
    assert_eq!(
        suites["hostile"],
        ["2", "1", "0", "0"],
        "the critical finding is a failed test case; the low one is not"
    );
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(
        !xml.contains('\u{1b}') && !xml.contains('\u{7}'),
        "no control characters in XML"
    );
    assert!(xml.contains("finding: &lt;script&gt;&amp;&quot;x"), "{xml}");
}

#[test]
fn reports_go_where_the_command_line_and_manifest_say_and_render_again() {
    let project = Project::new();
    let junit = project.path().join("out/junit.xml");
    let dir = project.path().join("out/reports");
    run_mixed(
        &project,
        &[
            "--junit",
            junit.to_str().expect("utf8"),
            "--report-dir",
            dir.to_str().expect("utf8"),
        ],
    );
    assert!(junit.is_file());
    for file in ["report.md", "report.json", "junit.xml"] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    let again = project
        .command(&["report", "--format", "json"])
        .output()
        .expect("report");
    assert_eq!(again.status.code(), Some(0));
    let original = std::fs::read_to_string(run_dir(&project).join("report.json")).expect("json");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        original,
        "dispatch report re-renders the same report"
    );
    let report: Value = serde_json::from_str(&original).expect("json");
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["status"], "escalated");
    assert!(report["escalations"][0]
        .as_str()
        .unwrap_or_default()
        .contains("<script>"));
    let md = std::fs::read_to_string(run_dir(&project).join("report.md")).expect("md");
    assert!(md.starts_with("**ESCALATED**"), "escalations lead: {md}");
    assert!(
        md.contains("&lt;script&gt;&amp;"),
        "worker text is escaped in Markdown"
    );
    assert!(md.contains("minor \\| thing"));
}

#[test]
fn github_actions_get_a_job_summary_and_annotations() {
    let project = Project::new();
    let summary = project.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").expect("write");
    project.manifest(&MIXED.replace("PLAN", PLAN));
    let output = project
        .command(&["run", "sweep.yaml", "--quiet", "--grace", "200ms"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("::error file=src/a.ts,line=7,title=hostile critical::<script>&\"x"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&summary).expect("summary");
    assert!(
        text.starts_with("earlier step\n**ESCALATED**"),
        "appended, not replaced: {text}"
    );
}

/// A worker that speaks Gemini CLI's stream and exits 41: the failure the
/// reports show says what 41 means to Gemini CLI, not just the number.
#[test]
fn a_known_clis_exit_code_is_explained_in_the_reports() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1
backends:
  fake-gemini:
    command: [AGENT, check, 'exit:41']
    events: gemini
tasks:
  login:
    backend: fake-gemini
    {PLAN}
"
    ));
    let output = project
        .command(&["run", "sweep.yaml", "--quiet"])
        .output()
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meaning = "exited with code 41 (Gemini CLI: no usable authentication";
    let reason = project.task_json("login")["reason"].to_string();
    assert!(reason.contains(meaning), "{reason}");
    let junit = std::fs::read_to_string(run_dir(&project).join("junit.xml")).expect("junit");
    assert!(junit.contains(meaning), "{junit}");
}

#[test]
fn a_huge_log_leaves_the_reports_small() {
    let project = Project::new();
    project.manifest("version: 1\ntasks:\n  loud:\n    command: [AGENT, 'flood:100m', check-all]\n    plan: [Shout]\n");
    let output = project
        .command(&["run", "sweep.yaml", "--quiet"])
        .output()
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = run_dir(&project);
    for file in ["report.md", "report.json", "junit.xml"] {
        let size = std::fs::metadata(dir.join(file)).expect("report").len();
        assert!(size < 64 * 1024, "{file} is {size} bytes");
    }
}

#[test]
fn a_sweep_of_500_tasks_is_reported_whole() {
    let project = Project::new();
    let values = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    let mut manifest = String::from("version: 1\nconcurrency: 16\ntasks:\n");
    for half in ["first", "second"] {
        manifest.push_str(&format!(
            "  {half}:\n    matrix: {{ a: [{}], b: [{}] }}\n    command: [sh, -c, 'echo \"from $DISPATCH_TASK_ID\" > \"$DISPATCH_OUTPUT\"; : > \"$DISPATCH_IPC_DIR/.done\"']\n    plan: [Nothing]\n",
            values(10),
            values(25)
        ));
    }
    project.manifest(&manifest);
    let output = project
        .command(&["run", "sweep.yaml", "--quiet"])
        .output()
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir(&project).join("report.json")).expect("json"),
    )
    .expect("json");
    assert_eq!(report["tasks"].as_array().map(Vec::len), Some(500));
    assert_eq!(report["totals"]["statuses"]["complete"], 500);
    // The tasks are read on several threads: each keeps its own output,
    // and they stay in the schedule's order (the order they started in).
    let events = std::fs::read_to_string(run_dir(&project).join("events.jsonl")).expect("events");
    let started: Vec<String> = events
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["event"] == "task-started")
        .filter_map(|e| e["task"].as_str().map(str::to_owned))
        .collect();
    let reported: Vec<String> = report["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|task| {
            let id = task["id"].as_str().unwrap_or_default().to_owned();
            assert_eq!(
                task["output_head"].as_str().map(str::trim),
                Some(format!("from {id}").as_str())
            );
            id
        })
        .collect();
    assert_eq!(reported, started);
    let xml = std::fs::read_to_string(run_dir(&project).join("junit.xml")).expect("junit");
    assert_eq!(xml.matches("<testsuite ").count(), 500);
}

#[test]
fn checked_in_report_schema_matches_the_types() {
    let on_disk = std::fs::read_to_string("schemas/report.schema.json").expect("schema file");
    assert!(
        on_disk == dispatch::report::schema_text(),
        "schemas/report.schema.json is out of date: run `cargo run -- schema --report > schemas/report.schema.json`"
    );
}

#[test]
fn a_projects_report_template_overrides_the_built_in_one() {
    let project = Project::new();
    std::fs::create_dir_all(project.path().join("templates")).expect("mkdir");
    std::fs::write(
        project.path().join("templates/report.md.j2"),
        "Our report for {{ name }}: {% for t in tasks %}{{ t.id }}={{ t.status }} {% endfor %}\n",
    )
    .expect("write");
    project.manifest(
        "version: 1\nname: ours\ntasks:\n  a:\n    command: [AGENT, check-all]\n    plan: [x]\n",
    );
    let output = project
        .command(&["run", "sweep.yaml", "--quiet"])
        .output()
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let md = std::fs::read_to_string(run_dir(&project).join("report.md")).expect("md");
    assert_eq!(md, "Our report for ours: a=complete \n");
}
