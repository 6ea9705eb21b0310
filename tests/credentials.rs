//! The start of `dispatch run` says which tasks' agent CLIs will lack
//! credentials, judged with each task's manifest `env:` over dispatch's own
//! environment, before any worker starts (a fake `gemini` on a private
//! PATH stands in for Gemini CLI).

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Project;
use serde_json::Value;

#[test]
fn run_warns_before_any_worker_starts_which_tasks_lack_credentials() {
    let project = Project::new();
    let bin = project.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    let gemini = bin.join("gemini");
    std::fs::write(&gemini, "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(&gemini, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(
        project.path().join("sweep.yaml"),
        "version: 1
tasks:
  keyed:
    model: gemini-2.5-flash
    prompt: Audit.
    env: { GEMINI_API_KEY: from-the-manifest }
  bare:
    model: gemini-2.5-flash
    prompt: Audit.
",
    )
    .expect("write");
    let mut command = project.command(&["run", "sweep.yaml", "--json", "--grace", "300ms"]);
    command.env("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    for name in [
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GEMINI_CLI_HOME",
    ] {
        command.env_remove(name);
    }
    let output = command.output().expect("dispatch runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains("from-the-manifest"),
        "never a secret's value"
    );
    let events: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let warned: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["event"] == "warning"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("has no credentials"))
        })
        .collect();
    assert_eq!(warned.len(), 1, "{stdout}");
    assert_eq!(warned[0]["task"], "bare", "{stdout}");
    assert!(
        warned[0]["message"].as_str().is_some_and(|m| m
            .starts_with("Gemini CLI has no credentials")
            && m.contains("GEMINI_API_KEY")),
        "{stdout}"
    );
    let position = |kind: &str| events.iter().position(|e| e["event"] == kind);
    let warning = events
        .iter()
        .position(|e| std::ptr::eq(e, warned[0]))
        .expect("the warning");
    assert!(
        position("task-started").is_some_and(|started| warning < started),
        "the warning comes before any worker starts: {stdout}"
    );
}
