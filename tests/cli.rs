//! The command line as a user meets it: `validate`, `plan`, `schema`, exit
//! codes and help texts.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

/// An empty home folder, so a developer's own config files cannot change
/// what the tests see.
fn empty_home() -> &'static Path {
    static HOME: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
}

fn dispatch() -> Command {
    dispatch_with_home(empty_home())
}

fn dispatch_with_home(home: &Path) -> Command {
    let mut command = Command::cargo_bin("dispatch").expect("binary builds");
    command.env("HOME", home).env_remove("XDG_CONFIG_HOME");
    command
}

/// Every checked-in example manifest.
fn example_manifests() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("manifests")
        .expect("manifests/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    found.sort();
    found
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write manifest");
    path
}

const SMALL: &str = "version: 1
name: small
vars: { greeting: hello }
tasks:
  first:
    model: sonnet
    prompt: \"{{ vars.greeting }} from {{ task.id }}\"
    plan: [Say it]
  second:
    model: opus
    needs: first
    priority: critical
    prompt: Read {{ needs.first.output }}
  third:
    model: haiku
    priority: high
    matrix: { module: [auth, billing] }
    title: Audit {{ matrix.module }}
";

#[test]
fn every_example_manifest_is_valid() {
    let manifests = example_manifests();
    assert!(
        manifests.len() >= 5,
        "expected the seed scenarios as manifests, found {manifests:?}"
    );
    for manifest in manifests {
        dispatch()
            .arg("validate")
            .arg(&manifest)
            .assert()
            .success()
            .stdout(predicate::str::contains("valid"));
    }
}

#[test]
fn plan_of_every_example_matches_its_snapshot() {
    for manifest in example_manifests() {
        let output = dispatch()
            .arg("plan")
            .arg(&manifest)
            .output()
            .expect("runs");
        assert!(
            output.status.success(),
            "{}: {}",
            manifest.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let name = manifest
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        // A scoped task's `env now:` line names this machine's variables.
        let text: String = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| match line.starts_with("env now:") {
                true => "env now:  [names of this environment]\n".to_owned(),
                false => format!("{line}\n"),
            })
            .collect();
        insta::with_settings!({ snapshot_path => "snapshots/plans", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(name, text);
        });
    }
}

#[test]
fn plan_is_deterministic() {
    for manifest in example_manifests() {
        let a = dispatch()
            .arg("plan")
            .arg("--json")
            .arg(&manifest)
            .output()
            .expect("runs");
        let b = dispatch()
            .arg("plan")
            .arg("--json")
            .arg(&manifest)
            .output()
            .expect("runs");
        assert_eq!(a.stdout, b.stdout, "{}", manifest.display());
    }
}

#[test]
fn plan_shows_when_a_quiet_worker_is_stopped_as_stalled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = write(
        dir.path(),
        "sweep.yaml",
        "version: 1
tasks:
  cli-default: { model: sonnet, prompt: Go, plan: [Go] }
  cli-own: { model: sonnet, prompt: Go, plan: [Go], idle_timeout: 90s }
  cli-off: { model: sonnet, prompt: Go, plan: [Go], idle_timeout: 0m }
  script: { command: [sh, -c, 'true'], plan: [Go] }
",
    );
    let output = dispatch()
        .arg("plan")
        .arg(&manifest)
        .output()
        .expect("runs");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let limits = |task: &str| {
        let start = text
            .find(&format!("title:    {task}\n"))
            .expect("task shown");
        let rest = &text[start..];
        let line = rest
            .lines()
            .find(|l| l.starts_with("limits:"))
            .expect("limits");
        line.to_owned()
    };
    assert!(
        limits("cli-default").contains("stalled after 10m quiet"),
        "{text}"
    );
    assert!(
        limits("cli-own").contains("stalled after 90s quiet"),
        "{text}"
    );
    assert!(!limits("cli-off").contains("stalled"), "{text}");
    assert!(!limits("script").contains("stalled"), "{text}");
}

#[test]
fn validate_reports_every_file_and_fails_if_any_is_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(dir.path(), "good.yaml", SMALL);
    let bad = write(
        dir.path(),
        "bad.yaml",
        "version: 1\ntasks:\n  a:\n    model: gpt9x\n",
    );
    dispatch()
        .arg("validate")
        .arg(&good)
        .arg(&bad)
        .assert()
        .code(2)
        .stdout(predicate::str::contains("good.yaml: valid (4 tasks)"))
        .stderr(predicate::str::contains(
            "bad.yaml:4:12: tasks.a.model: unknown model \"gpt9x\"",
        ));
}

#[test]
fn schedule_orders_by_needs_then_priority_then_manifest_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "sweep.yaml", SMALL);
    let output = dispatch()
        .arg("plan")
        .arg("--json")
        .arg(&file)
        .output()
        .expect("runs");
    assert!(output.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let ids: Vec<&str> = plan["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["id"].as_str().expect("id"))
        .collect();
    // third-* are high priority and ready; first is normal; second needs first.
    assert_eq!(ids, ["third-auth", "third-billing", "first", "second"]);
    let second = &plan["tasks"][3];
    assert_eq!(second["stage"], 2);
    assert_eq!(second["needs"], serde_json::json!(["first"]));
    assert!(second["prompt"]
        .as_str()
        .expect("prompt")
        .contains("Read .dispatch/tasks/first/output.md"));
    assert_eq!(plan["tasks"][0]["title"], "Audit auth");
}

#[test]
fn var_on_the_command_line_overrides_the_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "sweep.yaml", SMALL);
    dispatch()
        .args(["plan", "--task", "first", "--var", "greeting=bonjour"])
        .arg(&file)
        .assert()
        .success()
        .stdout(predicate::str::contains("bonjour from first"))
        .stdout(
            predicate::str::contains("== 3. first ==")
                .and(predicate::str::contains("second").not()),
        );
}

#[test]
fn undefined_variable_can_be_supplied_with_var() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "sweep.yaml",
        "version: 1\ntasks:\n  a:\n    model: sonnet\n    prompt: Deploy to {{ vars.target }}\n",
    );
    dispatch()
        .arg("validate")
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "sweep.yaml:5:13: tasks.a.prompt: undefined variable `vars.target`",
        ))
        .stderr(predicate::str::contains("vars.target"));
    dispatch()
        .args(["validate", "--var", "target=staging"])
        .arg(&file)
        .assert()
        .success();
}

#[test]
fn task_filter_takes_a_matrix_task_id_and_refuses_unknown_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "sweep.yaml", SMALL);
    let output = dispatch()
        .args(["plan", "--json", "--task", "third"])
        .arg(&file)
        .output()
        .expect("runs");
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(plan["tasks"].as_array().expect("tasks").len(), 2);
    dispatch()
        .args(["plan", "--task", "fourth"])
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--task fourth: no such task"));
}

#[test]
fn out_writes_plan_prompt_and_task_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "sweep.yaml", SMALL);
    let out = dir.path().join("review");
    dispatch()
        .args(["plan", "--out"])
        .arg(&out)
        .arg(&file)
        .assert()
        .success();
    let plan = std::fs::read_to_string(out.join("first/plan.md")).expect("plan.md");
    assert_eq!(plan, "# first\n\n- [ ] Say it\n");
    let prompt = std::fs::read_to_string(out.join("second/prompt.md")).expect("prompt.md");
    assert!(prompt.contains(".dispatch/tasks/second/plan.md"));
    let task: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("third-auth/task.json")).expect("task.json"),
    )
    .expect("json");
    assert_eq!(task["matrix"]["module"], "auth");
    assert!(out.join("plan.json").is_file());
}

#[test]
fn argv_places_the_prompt_the_way_each_backend_takes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "sweep.yaml",
        "version: 1
models:
  flash: { backend: gemini, id: gemini-2.5-flash }
backends:
  bot:
    command: [bot, --model, \"{{ model.id }}\"]
    prompt: arg
tasks:
  by-claude: { model: opus, prompt: Do it }
  by-gemini: { model: flash, prompt: Do it }
  by-aider: { model: gpt-5, backend: aider, prompt: Do it }
  by-bot: { model: sonnet, backend: bot, prompt: Do it }
  by-script: { command: [sh, scripts/work.sh, \"{{ task.id }}\"] }
",
    );
    let output = dispatch()
        .args(["plan", "--json"])
        .arg(&file)
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let task = |id: &str| {
        plan["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .find(|t| t["id"] == id)
            .expect("task")
            .clone()
    };
    let argv = |id: &str| -> Vec<String> {
        serde_json::from_value(task(id)["argv"].clone()).expect("argv")
    };
    assert_eq!(argv("by-claude")[..4], ["claude", "-p", "--model", "opus"]);
    assert_eq!(task("by-claude")["prompt_via"], "stdin");
    assert_eq!(
        task("by-claude")["env"]["IS_SANDBOX"],
        "1",
        "Claude Code runs as root in CI"
    );
    let claude = argv("by-claude");
    assert_eq!(
        claude[claude.len() - 2..],
        ["--add-dir", ".dispatch"],
        "leave to write the state folder"
    );
    let gemini = argv("by-gemini");
    assert_eq!(
        gemini[..4],
        ["gemini", "--skip-trust", "--model", "gemini-2.5-flash"]
    );
    assert_eq!(
        gemini.last().map(String::as_str),
        task("by-gemini")["prompt"].as_str()
    );
    assert_eq!(
        argv("by-aider").last().map(String::as_str),
        Some(".dispatch/tasks/by-aider/prompt.md")
    );
    let bot = argv("by-bot");
    assert_eq!(bot[..3], ["bot", "--model", "sonnet"]);
    assert_eq!(bot.len(), 4, "the prompt is appended as the last argument");
    assert_eq!(argv("by-script"), ["sh", "scripts/work.sh", "by-script"]);
    assert!(task("by-script")["model"].is_null());
}

#[test]
fn built_in_agent_clis_get_a_private_config_folder_unless_told_otherwise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "sweep.yaml",
        "version: 1
backends:
  bot:
    command: [claude, -p]
tasks:
  by-claude: { model: opus, prompt: Do it }
  by-codex: { model: o3, prompt: Do it }
  own-config: { model: opus, prompt: Do it, cli_config: user }
  by-cursor: { model: gpt-5, backend: cursor, prompt: Do it }
  by-bot: { backend: bot, prompt: Do it }
  by-script: { command: [sh, work.sh] }
",
    );
    let plan = plan_json_with_home(empty_home(), &file);
    let home = |id: &str| {
        plan["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .find(|t| t["id"] == id)
            .expect("task")["cli_home"]
            .clone()
    };
    assert_eq!(home("by-claude"), ".dispatch/tasks/by-claude/cli");
    assert_eq!(home("by-codex"), ".dispatch/tasks/by-codex/cli");
    assert!(home("own-config").is_null(), "cli_config: user");
    assert!(
        home("by-cursor").is_null(),
        "Cursor's folder cannot be moved"
    );
    assert!(home("by-bot").is_null(), "a backend of the manifest's own");
    assert!(home("by-script").is_null());

    // A sweep-wide default, which a task can still override.
    let file = write(
        dir.path(),
        "user.yaml",
        "version: 1
defaults:
  cli_config: user
tasks:
  shared: { model: opus, prompt: Do it }
  isolated: { model: opus, prompt: Do it, cli_config: private }
",
    );
    let plan = plan_json_with_home(empty_home(), &file);
    let tasks = plan["tasks"].as_array().expect("tasks");
    assert!(tasks[0]["cli_home"].is_null(), "{}", tasks[0]);
    assert_eq!(tasks[1]["cli_home"], ".dispatch/tasks/isolated/cli");
}

#[test]
fn matrix_over_models_resolves_each_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "sweep.yaml",
        "version: 1\ntasks:\n  audit:\n    model: \"{{ matrix.model }}\"\n    matrix: { model: [opus, gpt-5, nope-model] }\n    prompt: Audit\n",
    );
    dispatch()
        .arg("validate")
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
        "sweep.yaml:4:12: tasks.audit.model: task `audit-nope-model`: unknown model \"nope-model\"",
    ));
    std::fs::write(&file, "version: 1\ntasks:\n  audit:\n    model: \"{{ matrix.model }}\"\n    matrix: { model: [opus, gpt-5] }\n    prompt: Audit\n").expect("write");
    let output = dispatch()
        .args(["plan", "--json"])
        .arg(&file)
        .output()
        .expect("runs");
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(plan["tasks"][0]["backend"], "claude");
    assert_eq!(plan["tasks"][1]["backend"], "codex");
}

#[test]
fn project_templates_override_built_ins() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("templates/plans")).expect("mkdir");
    std::fs::write(
        dir.path().join("templates/plans/fix.md.j2"),
        "# {{ task.title }}\n\n- [ ] Our own way\n",
    )
    .expect("write");
    let file = write(
        dir.path(),
        "sweep.yaml",
        "version: 1\ntasks:\n  typo: { model: haiku, template: fix }\n",
    );
    dispatch()
        .arg("plan")
        .arg(&file)
        .assert()
        .success()
        .stdout(predicate::str::contains("- [ ] Our own way"));
}

#[test]
fn help_documents_the_exit_codes_and_commands() {
    dispatch()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("validate").and(predicate::str::contains("plan")))
        .stdout(predicate::str::contains("3    an escalation rule fired"));
    dispatch()
        .args(["plan", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--var <NAME=VALUE>"));
}

#[test]
fn bad_usage_exits_2() {
    dispatch().assert().code(2);
    dispatch().args(["plan"]).assert().code(2);
    dispatch()
        .args(["plan", "--var", "no-equals", "x.yaml"])
        .assert()
        .code(2);
    dispatch()
        .args(["validate", "does-not-exist.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "does-not-exist.yaml: cannot read the manifest",
        ));
}

/// `dispatch plan --json` with `home` as the home folder (and its config).
fn plan_json_with_home(home: &Path, file: &Path) -> serde_json::Value {
    let output = dispatch_with_home(home)
        .args(["plan", "--json"])
        .arg(file)
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json")
}

#[test]
fn user_config_adds_models_and_roles_but_the_manifest_wins() {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(home.path().join(".config/dispatch")).expect("mkdir");
    std::fs::write(
        home.path().join(".config/dispatch/config.yaml"),
        "models:\n  fast: { backend: claude, id: haiku }\n  opus: { backend: codex, id: not-used }\nroles:\n  terse: { model: fast, prompt: Be brief. }\n",
    )
    .expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "sweep.yaml",
        "version: 1\nmodels:\n  opus: { backend: claude, id: opus }\ntasks:\n  a: { model: fast, prompt: Go }\n  b: { role: terse, prompt: Go }\n  c: { model: opus, prompt: Go }\n",
    );
    let plan = plan_json_with_home(home.path(), &file);
    let task = |i: usize| plan["tasks"][i].clone();
    assert_eq!(task(0)["model"]["id"], "haiku");
    assert!(task(1)["prompt"]
        .as_str()
        .expect("prompt")
        .starts_with("Be brief."));
    assert_eq!(
        task(2)["backend"],
        "claude",
        "the manifest's own `opus` wins"
    );
    assert!(plan["user_config"][0]
        .as_str()
        .expect("path")
        .ends_with(".config/dispatch/config.yaml"));
    // Without the user config, `fast` is unknown.
    dispatch()
        .arg("validate")
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown model \"fast\""));
}

#[test]
fn the_dispatch_skills_config_is_read_too() {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(home.path().join(".dispatch")).expect("mkdir");
    std::fs::write(
        home.path().join(".dispatch/config.yaml"),
        "default: security-reviewer\nbackends:\n  claude:\n    command: >\n      claude -p --dangerously-skip-permissions\n  mybot:\n    command: mybot --fast\nmodels:\n  opus: { backend: claude }\n  gpt-5.3-codex: { backend: cursor }\n  bot-large: { backend: mybot }\naliases:\n  security-reviewer:\n    model: opus\n    prompt: You are a security-focused reviewer.\n",
    )
    .expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "sweep.yaml",
        "version: 1\ntasks:\n  review: { role: security-reviewer, prompt: Review auth }\n  plain: { prompt: Default model }\n  cursor: { model: gpt-5.3-codex, prompt: Go }\n  bot: { model: bot-large, prompt: Go }\n",
    );
    let plan = plan_json_with_home(home.path(), &file);
    let task = |id: &str| {
        plan["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .find(|t| t["id"] == id)
            .expect("task")
            .clone()
    };
    assert!(task("review")["prompt"]
        .as_str()
        .expect("prompt")
        .starts_with("You are a security-focused reviewer."));
    assert_eq!(
        task("plain")["model"]["name"],
        "opus",
        "the skill's default (an alias) gives its model"
    );
    assert_eq!(
        task("review")["argv"][0],
        "claude",
        "a skill backend named like a built-in is not imported"
    );
    assert_eq!(task("cursor")["backend"], "cursor");
    let bot: Vec<String> = serde_json::from_value(task("bot")["argv"].clone()).expect("argv");
    assert_eq!(
        bot[..5],
        [
            "sh",
            "-c",
            "mybot --fast --model \"$1\" \"$2\"",
            "dispatch-worker",
            "bot-large"
        ]
    );
    assert_eq!(bot[5], task("bot")["prompt"].as_str().expect("prompt"));
}

#[test]
fn a_broken_user_config_is_reported_at_its_line() {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(home.path().join(".config/dispatch")).expect("mkdir");
    std::fs::write(
        home.path().join(".config/dispatch/config.yaml"),
        "models:\n  fast: [unclosed\n",
    )
    .expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "sweep.yaml", SMALL);
    dispatch_with_home(home.path())
        .arg("validate")
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            ".config/dispatch/config.yaml:3:1: YAML syntax error",
        ));
}
