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
