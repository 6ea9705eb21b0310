//! Costs and counts as people read them (issue: `$0.00` for a cheap
//! model's task, "1 turns", float noise in `report.json`): a fake Claude
//! backend reports usage the way the real CLI does, and the end summary,
//! `report.md` and `report.json` are read back.

mod common;

use common::Project;

/// A backend that prints Claude Code's stream-json result event, so the
/// runner reads turns and cost from it as from the real CLI.
const FAKE_CLAUDE: &str = "backends:
  fake-claude:
    command: [sh, -c, 'exec {{ vars.script }}']
    events: claude
";

/// A task whose worker ticks its plan and reports `turns` turns costing
/// `cost` dollars.
fn task(id: &str, turns: u32, cost: &str) -> String {
    let result = format!(
        "{{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"num_turns\":{turns},\"total_cost_usd\":{cost},\"result\":\"ok\",\"usage\":{{\"input_tokens\":10,\"output_tokens\":5}}}}"
    );
    format!(
        "  {id}:\n    backend: fake-claude\n    plan: [Do it]\n    vars:\n      script: |-\n        AGENT check-all 'print:{result}' done\n"
    )
}

fn latest_run(project: &Project) -> std::path::PathBuf {
    let mut runs: Vec<_> = std::fs::read_dir(project.path().join(".dispatch/runs"))
        .expect("runs")
        .flatten()
        .map(|e| e.path())
        .collect();
    runs.sort();
    runs.pop().expect("a run")
}

#[test]
fn small_costs_show_their_digits_turns_their_plural_and_json_no_float_noise() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\n{FAKE_CLAUDE}tasks:\n{}{}{}",
        task("cheap", 1, "0.0002"),
        task("tenth", 2, "0.1"),
        task("fifth", 3, "0.2")
    ));
    let output = project
        .command(&["run", "sweep.yaml", "--quiet"])
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("dispatch runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(" · $0.30 "),
        "the summary's total: {stderr}"
    );

    let run = latest_run(&project);
    let md = std::fs::read_to_string(run.join("report.md")).expect("report.md");
    assert!(
        md.contains("- Usage: 1 turn, 10 input and 5 output tokens, $0.0002\n"),
        "a cheap task's one turn and cost:\n{md}"
    );
    assert!(md.contains("- Usage: 2 turns, "), "two turns:\n{md}");
    assert!(!md.contains("1 turns"), "{md}");
    assert!(!md.contains("$0.00 "), "{md}");

    let json = std::fs::read_to_string(run.join("report.json")).expect("report.json");
    assert!(
        !json.contains("0000000000"),
        "no float noise in report.json: {json}"
    );
    let report: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(report["totals"]["usage"]["cost_usd"], 0.3002, "{json}");
}
