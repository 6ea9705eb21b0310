//! `dispatch doctor`: installed agent CLIs, their versions and setup, and
//! whether a manifest's models can be served, judged with a fake `claude`
//! on a private PATH.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::Value;

fn doctor(dir: &std::path::Path, args: &[&str], key: Option<&str>) -> (Option<i32>, String) {
    let bin = dir.join("bin");
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let mut command = Command::new(env!("CARGO_BIN_EXE_dispatch"));
    command
        .arg("doctor")
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("PATH", path)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .env_remove("GEMINI_API_KEY")
        .env_remove("GOOGLE_API_KEY")
        .env_remove("GOOGLE_GENAI_USE_VERTEXAI");
    // The folders the CLIs are moved to; doctor looks for logins there.
    for moved in [
        "CLAUDE_CONFIG_DIR",
        "CODEX_HOME",
        "GEMINI_CLI_HOME",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
    ] {
        command.env_remove(moved);
    }
    if let Some(key) = key {
        command.env("ANTHROPIC_API_KEY", key);
    }
    let output = command.output().expect("dispatch runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    let claude = bin.join("claude");
    std::fs::write(&claude, "#!/bin/sh\necho '2.1.9 (Claude Code)'\n").expect("write");
    std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(
        dir.path().join("sweep.yaml"),
        "version: 1\ntasks:\n  audit:\n    model: opus\n    prompt: Audit.\n  port:\n    model: gpt-5\n    prompt: Port.\n",
    )
    .expect("write");
    dir
}

#[test]
fn doctor_reports_versions_setup_and_what_a_manifest_can_run() {
    let dir = project();
    let (code, text) = doctor(
        dir.path(),
        &["sweep.yaml", "--json"],
        Some("sk-very-secret"),
    );
    assert_eq!(code, Some(1), "gpt-5 cannot be served: {text}");
    assert!(!text.contains("sk-very-secret"), "never a secret's value");
    let report: Value = serde_json::from_str(&text).expect("json");
    let claude = report["clis"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["backend"] == "claude"))
        .expect("claude")
        .clone();
    assert_eq!(claude["version"], "2.1.9 (Claude Code)");
    assert_eq!(claude["setup"]["state"], "configured");
    assert_eq!(claude["setup"]["detail"], "ANTHROPIC_API_KEY is set");
    let needs = report["needs"].as_array().expect("needs");
    let opus = needs.iter().find(|n| n["model"] == "opus").expect("opus");
    assert_eq!(opus["ready"], true);
    let gpt = needs.iter().find(|n| n["model"] == "gpt-5").expect("gpt-5");
    assert_eq!(gpt["ready"], false);
    assert!(gpt["problem"]
        .as_str()
        .is_some_and(|p| p.contains("`codex` is not installed") && p.contains("@openai/codex")));
}

#[test]
fn doctor_says_what_to_do_when_a_cli_is_not_logged_in() {
    let dir = project();
    let (code, text) = doctor(dir.path(), &[], None);
    assert_eq!(code, Some(0), "without a manifest it only informs");
    assert!(
        text.contains("claude    2.1.9 (Claude Code)")
            && text
                .contains("NOT CONFIGURED: run `claude` once and log in, or set ANTHROPIC_API_KEY"),
        "{text}"
    );
    assert!(
        text.contains("codex     not installed — the Codex CLI: npm install -g @openai/codex"),
        "{text}"
    );
    std::fs::create_dir_all(dir.path().join(".claude")).expect("mkdir");
    std::fs::write(dir.path().join(".claude/.credentials.json"), "{}").expect("write");
    let (_, text) = doctor(dir.path(), &[], None);
    assert!(
        text.contains("configured (~/.claude/.credentials.json exists)"),
        "{text}"
    );
}

#[test]
fn doctor_names_what_private_config_folders_leave_out() {
    let dir = project();
    std::fs::create_dir_all(dir.path().join(".claude")).expect("mkdir");
    std::fs::write(
        dir.path().join(".claude/settings.json"),
        r#"{"apiKeyHelper": "~/bin/key.sh", "hooks": {}}"#,
    )
    .expect("write");
    let (_, text) = doctor(dir.path(), &[], Some("key"));
    assert!(
        text.contains(
            "note: ~/.claude/settings.json sets `apiKeyHelper`, which workers do not see"
        ),
        "{text}"
    );
    assert!(text.contains("set `cli_config: user`"), "{text}");
    let (_, json) = doctor(dir.path(), &["--json"], Some("key"));
    let report: Value = serde_json::from_str(&json).expect("json");
    let claude = report["clis"]
        .as_array()
        .and_then(|clis| clis.iter().find(|c| c["backend"] == "claude"))
        .expect("claude");
    assert_eq!(
        claude["left_out"][0],
        "~/.claude/settings.json sets `apiKeyHelper`"
    );
}

#[test]
fn doctor_judges_credentials_per_task_with_the_manifests_env() {
    let dir = project();
    let gemini = dir.path().join("bin/gemini");
    std::fs::write(&gemini, "#!/bin/sh\necho 0.61.0\n").expect("write");
    std::fs::set_permissions(&gemini, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(
        dir.path().join("sweep.yaml"),
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
    let (code, text) = doctor(dir.path(), &["sweep.yaml", "--json"], None);
    assert_eq!(code, Some(1), "one task lacks a key: {text}");
    assert!(
        !text.contains("from-the-manifest"),
        "never a secret's value"
    );
    let report: Value = serde_json::from_str(&text).expect("json");
    let need = &report["needs"][0];
    assert_eq!(need["ready"], false, "{need}");
    let problem = need["problem"].as_str().unwrap_or_default();
    assert!(
        problem.starts_with("Gemini CLI has no credentials")
            && problem.contains("GEMINI_API_KEY")
            && problem.ends_with("tasks without: bare"),
        "{problem}"
    );
    // With the key in both tasks' env (and none in dispatch's), it is ready.
    std::fs::write(
        dir.path().join("sweep.yaml"),
        "version: 1
tasks:
  keyed:
    model: gemini-2.5-flash
    prompt: Audit.
    env: { GEMINI_API_KEY: from-the-manifest }
",
    )
    .expect("write");
    let (code, text) = doctor(dir.path(), &["sweep.yaml"], None);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("gemini-2.5-flash via gemini (1 task): ready"),
        "{text}"
    );
}

/// aider takes the key of its model's provider: with only
/// `ANTHROPIC_API_KEY` set, an `openai/` model lacks one and an
/// `anthropic/` model does not.
#[test]
fn doctor_judges_aiders_credentials_by_its_models_provider() {
    let dir = project();
    let aider = dir.path().join("bin/aider");
    std::fs::write(&aider, "#!/bin/sh\necho 'aider 0.86.2'\n").expect("write");
    std::fs::set_permissions(&aider, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(
        dir.path().join("sweep.yaml"),
        "version: 1
models:
  gpt:
    backend: aider
    id: openai/gpt-4.1
  claude:
    backend: aider
    id: anthropic/claude-sonnet-4-5
tasks:
  port:
    model: gpt
    prompt: Port.
  audit:
    model: claude
    prompt: Audit.
",
    )
    .expect("write");
    let (code, text) = doctor(dir.path(), &["sweep.yaml", "--json"], Some("key"));
    assert_eq!(code, Some(1), "the openai model lacks its key: {text}");
    let report: Value = serde_json::from_str(&text).expect("json");
    let need = |model: &str| {
        report["needs"]
            .as_array()
            .and_then(|needs| needs.iter().find(|n| n["model"] == model))
            .cloned()
            .unwrap_or_else(|| panic!("no need for {model}: {text}"))
    };
    let gpt = need("gpt");
    assert_eq!(gpt["ready"], false, "{gpt}");
    let problem = gpt["problem"].as_str().unwrap_or_default();
    assert!(
        problem.starts_with("aider (model `openai/gpt-4.1`, provider openai) has no credentials")
            && problem.contains("set OPENAI_API_KEY")
            && problem.ends_with("tasks without: port"),
        "{problem}"
    );
    assert_eq!(need("claude")["ready"], true, "{text}");
}
