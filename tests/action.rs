//! The GitHub Action (`action.yml`) run as the runner would run it, without
//! GitHub: its `run:` steps execute with bash in a temporary repository,
//! in order, each with its own `GITHUB_OUTPUT`, a shared
//! `GITHUB_STEP_SUMMARY` and `GITHUB_PATH`, the `${{ }}` expressions of its
//! `env:`, `if:` and `working-directory:` evaluated, and the locally built
//! binary given through the `binary` input. `uses:` steps (the artifact
//! upload) are other actions and are skipped; their inputs are checked.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// `action.yml` as JSON.
fn action() -> Value {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("action.yml"))
        .expect("action.yml");
    dispatch::manifest::yaml::load(&text)
        .unwrap_or_else(|e| panic!("action.yml is not YAML: {e:?}"))
        .expect("a document")
        .to_json()
}

/// What a run of the action left: its outputs, the job summary, and
/// whether the composite step failed (the first failing step's code).
struct Ran {
    outputs: BTreeMap<String, String>,
    /// The outputs of the step `sweep` (the artifact's paths among them).
    sweep: BTreeMap<String, String>,
    summary: String,
    failed: Option<i32>,
    logs: String,
}

struct Context<'a> {
    inputs: BTreeMap<String, String>,
    steps: BTreeMap<String, BTreeMap<String, String>>,
    action_path: &'a Path,
    /// The ref the workflow's `uses:` names (`v0.1.0`); empty for `./`.
    action_ref: String,
}

impl Context<'_> {
    fn lookup(&self, name: &str) -> String {
        let name = name.trim();
        if let Some(input) = name.strip_prefix("inputs.") {
            return self
                .inputs
                .get(input)
                .unwrap_or_else(|| panic!("action.yml uses an undeclared input `{input}`"))
                .clone();
        }
        if name == "github.action_path" {
            return self.action_path.display().to_string();
        }
        if name == "github.action_ref" {
            return self.action_ref.clone();
        }
        if let Some(rest) = name.strip_prefix("steps.") {
            let (id, output) = rest
                .split_once(".outputs.")
                .unwrap_or_else(|| panic!("unsupported expression {name}"));
            return self
                .steps
                .get(id)
                .and_then(|outputs| outputs.get(output))
                .cloned()
                .unwrap_or_default();
        }
        panic!("this test does not evaluate `{name}`; extend Context::lookup");
    }

    /// `text` with each `${{ NAME }}` replaced.
    fn substitute(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${{") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("}}").expect("closed expression") + start;
            out.push_str(&self.lookup(&rest[start + 3..end]));
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    }

    /// An `if:` of the forms the action uses: terms joined by `&&`, each
    /// `always()`, or `NAME == 'v'` / `NAME != 'v'`.
    fn condition(&self, text: &str) -> bool {
        text.split("&&").all(|term| {
            let term = term.trim();
            if term == "always()" {
                return true;
            }
            let (name, equal, value) = if let Some((n, v)) = term.split_once("!=") {
                (n, false, v)
            } else if let Some((n, v)) = term.split_once("==") {
                (n, true, v)
            } else {
                panic!("this test does not evaluate the condition `{term}`");
            };
            let value = value.trim().trim_matches('\'');
            (self.lookup(name) == value) == equal
        })
    }
}

/// `NAME=VALUE` lines of a `GITHUB_OUTPUT` file (the action writes no
/// multi-line values).
fn read_outputs(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Run the action's steps in `workspace` with `inputs` (the others at
/// their defaults), as a job whose runner is Linux x64.
fn run_action(workspace: &Path, given: &[(&str, &str)]) -> Ran {
    run_action_with(workspace, given, None)
}

/// [`run_action`] with `shims` first on the PATH (stand-ins for `curl`).
fn run_action_with(workspace: &Path, given: &[(&str, &str)], shims: Option<&Path>) -> Ran {
    let action = action();
    let runner = tempfile::tempdir().expect("runner temp");
    let mut context = Context {
        inputs: BTreeMap::new(),
        steps: BTreeMap::new(),
        action_path: Path::new(env!("CARGO_MANIFEST_DIR")),
        action_ref: String::new(),
    };
    for (name, spec) in action["inputs"].as_object().expect("inputs") {
        let default = spec["default"].as_str().unwrap_or_default().to_owned();
        context.inputs.insert(name.clone(), default);
    }
    for (name, value) in given {
        if *name == "github.action_ref" {
            context.action_ref = (*value).to_owned();
            continue;
        }
        assert!(
            context.inputs.contains_key(*name),
            "action.yml has no input `{name}`"
        );
        context
            .inputs
            .insert((*name).to_owned(), (*value).to_owned());
    }
    let summary = runner.path().join("step_summary.md");
    let github_path = runner.path().join("github_path");
    std::fs::write(&github_path, "").expect("GITHUB_PATH");
    let mut failed = None;
    let mut logs = String::new();
    let steps = action["runs"]["steps"].as_array().expect("steps").clone();
    assert_eq!(action["runs"]["using"], "composite");
    for (n, step) in steps.iter().enumerate() {
        let condition = step["if"].as_str().unwrap_or("success()");
        let run_it = if condition == "success()" {
            failed.is_none()
        } else if condition.contains("always()") {
            context.condition(condition)
        } else {
            failed.is_none() && context.condition(condition)
        };
        if !run_it {
            continue;
        }
        if let Some(uses) = step["uses"].as_str() {
            // Another action: check what it would get, run nothing.
            assert!(uses.starts_with("actions/upload-artifact@"), "{uses}");
            for (_, value) in step["with"].as_object().expect("with") {
                if let Some(text) = value.as_str() {
                    context.substitute(text);
                }
            }
            continue;
        }
        let script = step["run"].as_str().expect("a run step");
        assert_eq!(step["shell"], "bash", "step {n} names its shell");
        let output = runner.path().join(format!("output-{n}"));
        std::fs::write(&output, "").expect("GITHUB_OUTPUT");
        let cwd = match step["working-directory"].as_str() {
            Some(dir) => workspace.join(context.substitute(dir)),
            None => workspace.to_path_buf(),
        };
        let added: Vec<PathBuf> = std::fs::read_to_string(&github_path)
            .unwrap_or_default()
            .lines()
            .map(PathBuf::from)
            .collect();
        let path = std::env::join_paths(
            added
                .into_iter()
                .rev()
                .chain(shims.map(Path::to_path_buf))
                .chain(std::env::split_paths(
                    &std::env::var_os("PATH").unwrap_or_default(),
                )),
        )
        .expect("PATH");
        let mut command = std::process::Command::new("bash");
        command
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .current_dir(&cwd)
            .env_clear()
            .env("PATH", path)
            .env("HOME", workspace)
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", workspace)
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("GITHUB_PATH", &github_path)
            .env("RUNNER_TEMP", runner.path())
            .env("RUNNER_OS", "Linux")
            .env("RUNNER_ARCH", "X64");
        if let Some(env) = step["env"].as_object() {
            for (name, value) in env {
                let value = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                command.env(name, context.substitute(&value));
            }
        }
        let result = command.output().expect("bash runs");
        logs.push_str(&String::from_utf8_lossy(&result.stdout));
        logs.push_str(&String::from_utf8_lossy(&result.stderr));
        if let Some(id) = step["id"].as_str() {
            context.steps.insert(id.to_owned(), read_outputs(&output));
        }
        if !result.status.success() {
            failed = Some(result.status.code().unwrap_or(-1));
        }
    }
    let outputs = action["outputs"]
        .as_object()
        .expect("outputs")
        .iter()
        .map(|(name, spec)| {
            let value = context.substitute(spec["value"].as_str().expect("value"));
            (name.clone(), value)
        })
        .collect();
    Ran {
        outputs,
        sweep: context.steps.get("sweep").cloned().unwrap_or_default(),
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
        failed,
        logs,
    }
}

/// A repository with `sweep.yaml`, as a user's checkout would be.
fn workspace(manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("workspace");
    let text = manifest.replace("AGENT", &common::agent().display().to_string());
    std::fs::write(dir.path().join("sweep.yaml"), text).expect("manifest");
    common::init_repo(dir.path());
    dir
}

const BINARY: &str = env!("CARGO_BIN_EXE_dispatch");

#[test]
fn the_action_runs_a_sweep_and_sets_its_outputs_and_the_job_summary() {
    let repo = workspace(
        "version: 1
name: from-the-action
tasks:
  greet:
    command: [AGENT, check-all, done]
    plan: ['Say {{ vars.greeting }}']
",
    );
    let ran = run_action(
        repo.path(),
        &[
            ("binary", BINARY),
            ("manifest", "sweep.yaml"),
            ("shard", "1/1"),
            ("args", "--var 'greeting=hello world' --concurrency 2"),
        ],
    );
    assert_eq!(ran.failed, None, "{}", ran.logs);
    assert_eq!(ran.outputs["exit-code"], "0", "{}", ran.logs);
    let dir = Path::new(&ran.outputs["report-dir"]);
    assert_eq!(
        dir,
        repo.path()
            .join("dispatch-report")
            .canonicalize()
            .expect("dir")
    );
    for key in ["report-md", "report-json", "junit"] {
        assert!(
            Path::new(&ran.outputs[key]).is_file(),
            "{key}: {}",
            ran.outputs[key]
        );
    }
    let junit = std::fs::read_to_string(&ran.outputs["junit"]).expect("junit");
    assert!(junit.contains("name=\"Say hello world\""), "{junit}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&ran.outputs["report-json"]).expect("json"))
            .expect("report.json");
    assert_eq!(report["shard"]["count"], 1, "{report}");
    assert!(ran.summary.contains("from-the-action"), "{}", ran.summary);
    assert!(ran.outputs["dispatch"].ends_with("dispatch-bin/dispatch"));
}

#[test]
fn a_failed_sweep_fails_the_step_with_its_code_after_setting_the_outputs() {
    let repo = workspace(
        "version: 1
name: failing
tasks:
  broken:
    command: [AGENT, 'fail-item:disk full']
    plan: [Work]
",
    );
    let ran = run_action(
        repo.path(),
        &[("binary", BINARY), ("manifest", "sweep.yaml")],
    );
    assert_eq!(ran.failed, Some(1), "{}", ran.logs);
    assert_eq!(ran.outputs["exit-code"], "1");
    assert!(ran.summary.contains("disk full"), "{}", ran.summary);

    let kept = run_action(
        repo.path(),
        &[
            ("binary", BINARY),
            ("manifest", "sweep.yaml"),
            ("fail-on-exit-code", "false"),
        ],
    );
    assert_eq!(kept.failed, None, "{}", kept.logs);
    assert_eq!(kept.outputs["exit-code"], "1");
}

#[test]
fn an_invalid_manifest_exits_2_and_says_so_in_the_job_summary() {
    let repo = workspace("version: 1\ntasks:\n  t:\n    modle: sonnet\n");
    let ran = run_action(
        repo.path(),
        &[("binary", BINARY), ("manifest", "sweep.yaml")],
    );
    assert_eq!(ran.failed, Some(2), "{}", ran.logs);
    assert_eq!(ran.outputs["exit-code"], "2");
    assert!(ran.logs.contains("modle"), "{}", ran.logs);
    assert_eq!(
        ran.summary,
        "**dispatch** exited with 2 before writing a report; the step's log says why.\n"
    );
}

#[test]
fn install_only_puts_dispatch_on_the_path_and_runs_nothing() {
    let repo = workspace("version: 1\ntasks: {}\n");
    let ran = run_action(repo.path(), &[("binary", BINARY), ("install-only", "true")]);
    assert_eq!(ran.failed, None, "{}", ran.logs);
    assert_eq!(ran.outputs["exit-code"], "");
    assert!(
        ran.logs.contains("dispatch 0."),
        "--version ran: {}",
        ran.logs
    );
    assert!(!repo.path().join(".dispatch").exists());
    assert!(ran.summary.is_empty());
}

#[test]
fn an_unclosed_quote_in_args_is_an_error_not_a_guess() {
    let repo = workspace("version: 1\ntasks:\n  t:\n    command: [AGENT, done]\n");
    let ran = run_action(
        repo.path(),
        &[
            ("binary", BINARY),
            ("manifest", "sweep.yaml"),
            ("args", "--var 'x=1"),
        ],
    );
    assert_eq!(ran.failed, Some(2), "{}", ran.logs);
    assert!(
        ran.logs.contains("does not split into words"),
        "{}",
        ran.logs
    );
    assert!(!repo.path().join(".dispatch").exists());
}

/// Words in `args` are data: `$(...)` and `$VAR` stay as they are.
#[test]
fn args_are_never_run_as_shell_code() {
    let repo = workspace(
        "version: 1
tasks:
  t:
    command: [AGENT, check-all, done]
    plan: ['Say {{ vars.word }}']
",
    );
    let ran = run_action(
        repo.path(),
        &[
            ("binary", BINARY),
            ("manifest", "sweep.yaml"),
            ("args", "--var 'word=$(touch pwned)$HOME'"),
        ],
    );
    assert_eq!(ran.failed, None, "{}", ran.logs);
    assert!(!repo.path().join("pwned").exists());
    let junit = std::fs::read_to_string(&ran.outputs["junit"]).expect("junit");
    assert!(junit.contains("Say $(touch pwned)$HOME"), "{junit}");
}

/// `owner/name` of the crate's repository, where releases, the action and
/// the images are published.
fn published() -> &'static str {
    env!("CARGO_PKG_REPOSITORY")
        .strip_prefix("https://github.com/")
        .expect("the repository is on GitHub")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect(path)
}

/// Copied into another repository, the examples must install the released
/// dispatch rather than build the repository they find themselves in.
#[test]
fn the_examples_and_docs_use_the_released_action_and_image() {
    let uses = format!("uses: {}@v0", published());
    for workflow in [
        ".github/workflows/dispatch-sweep.yml",
        ".github/workflows/dispatch-shards.yml",
    ] {
        let text = read(workflow);
        assert!(text.contains(&uses), "{workflow} does not use the action");
        for building in ["cargo ", "target/release", "rust-toolchain"] {
            assert!(
                !text.contains(building),
                "{workflow} builds dispatch: {building}"
            );
        }
    }
    let k8s = read("manifests/k8s/indexed-job.yaml");
    let image = format!("image: ghcr.io/{}:", published());
    assert_eq!(k8s.matches(&image).count(), 2, "{k8s}");
    assert!(!k8s.contains("your-org/dispatch"), "{k8s}");

    let action = action();
    assert_eq!(action["runs"]["steps"][0]["env"]["REPOSITORY"], published());
    let readme = read("README.md");
    assert!(readme.contains(&uses), "the README shows the action");
    assert!(readme.contains(dispatch::manifest::schema::SCHEMA_URL));
    assert!(readme.contains(&format!("ghcr.io/{}:", published())));
    let release = read(".github/workflows/release.yml");
    for target in [
        "x86_64-unknown-linux-musl",
        "aarch64-unknown-linux-musl",
        "aarch64-apple-darwin",
        "x86_64-apple-darwin",
    ] {
        assert!(release.contains(target), "release.yml builds no {target}");
        assert!(
            read("action.yml").contains(target),
            "action.yml installs no {target}"
        );
    }
}

/// A release as GitHub serves it, from a folder: a `curl` on the PATH that
/// answers `https://github.com/OWNER/NAME/releases/…/FILE` with
/// `release/FILE` and logs each URL. (Linux only: it needs GNU sha256sum.)
fn fake_release(dir: &Path, tamper: bool) -> PathBuf {
    let release = dir.join("release");
    let shims = dir.join("shims");
    std::fs::create_dir_all(&release).expect("mkdir");
    std::fs::create_dir_all(&shims).expect("mkdir");
    let staging = dir.join("staging");
    std::fs::create_dir_all(&staging).expect("mkdir");
    std::fs::copy(BINARY, staging.join("dispatch")).expect("copy the binary");
    let archive = "dispatch-x86_64-unknown-linux-musl.tar.gz";
    let tar = std::process::Command::new("tar")
        .arg("-czf")
        .arg(release.join(archive))
        .arg("-C")
        .arg(&staging)
        .arg("dispatch")
        .status()
        .expect("tar");
    assert!(tar.success());
    let sum = std::process::Command::new("sha256sum")
        .arg(archive)
        .current_dir(&release)
        .output()
        .expect("sha256sum");
    let mut line = String::from_utf8_lossy(&sum.stdout).into_owned();
    if tamper {
        line.replace_range(0..1, if line.starts_with('0') { "1" } else { "0" });
    }
    std::fs::write(release.join(format!("{archive}.sha256")), line).expect("write");
    let curl = format!(
        r#"#!/bin/sh
# curl --fail --silent --show-error --location --retry 3 -o FILE URL
out=""; url=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift 2 ;;
    --retry) shift 2 ;;
    -*) shift ;;
    *) url="$1"; shift ;;
  esac
done
echo "$url" >> "{log}"
case "$url" in
  https://github.com/{repo}/releases/*) cp "{release}/${{url##*/}}" "$out" ;;
  *) echo "curl: (22) 404 $url" >&2; exit 22 ;;
esac
"#,
        log = dir.join("urls").display(),
        repo = published(),
        release = release.display(),
    );
    let shim = shims.join("curl");
    std::fs::write(&shim, curl).expect("write curl");
    let chmod = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&shim)
        .status()
        .expect("chmod");
    assert!(chmod.success());
    shims
}

/// Without `binary`, the action downloads the release archive for the
/// runner (Linux x64 here) and its checksum from the crate's repository,
/// checks one against the other, and runs what it unpacked.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "Linux only: the fake release needs GNU sha256sum"
)]
fn the_action_installs_the_release_for_the_runner_after_checking_its_checksum() {
    let repo = workspace(
        "version: 1\ntasks:\n  t:\n    command: [AGENT, check-all, done]\n    plan: [Go]\n",
    );
    let fake = tempfile::tempdir().expect("tempdir");
    let shims = fake_release(fake.path(), false);
    // Pinned to a release (`uses: …@v0.1.0`): that release's binary.
    let ran = run_action_with(
        repo.path(),
        &[("manifest", "sweep.yaml"), ("github.action_ref", "v0.1.0")],
        Some(&shims),
    );
    assert_eq!(ran.failed, None, "{}", ran.logs);
    assert_eq!(ran.outputs["exit-code"], "0");
    let urls = std::fs::read_to_string(fake.path().join("urls")).expect("urls");
    let base = format!(
        "https://github.com/{}/releases/download/v0.1.0",
        published()
    );
    assert_eq!(
        urls,
        format!(
            "{base}/dispatch-x86_64-unknown-linux-musl.tar.gz\n{base}/dispatch-x86_64-unknown-linux-musl.tar.gz.sha256\n"
        )
    );

    let tampered = tempfile::tempdir().expect("tempdir");
    let shims = fake_release(tampered.path(), true);
    // Used by its major tag (`@v0`): the newest release.
    let ran = run_action_with(
        repo.path(),
        &[("manifest", "sweep.yaml"), ("github.action_ref", "v0")],
        Some(&shims),
    );
    assert!(
        ran.failed.is_some(),
        "a bad checksum must stop it: {}",
        ran.logs
    );
    assert!(ran.logs.contains("FAILED"), "{}", ran.logs);
    assert_eq!(ran.outputs["exit-code"], "", "nothing ran");
    let urls = std::fs::read_to_string(tampered.path().join("urls")).expect("urls");
    assert!(urls.contains("/releases/latest/download/"), "{urls}");
}

/// In a subfolder (`working-directory`), the manifest and the report
/// folder are relative to it, and the artifact still finds the run records
/// at the top of the repository, where dispatch keeps `.dispatch/`.
#[test]
fn a_working_directory_keeps_the_records_at_the_top_of_the_repository() {
    let repo = workspace(
        "version: 1\ntasks:\n  t:\n    command: [AGENT, check-all, done]\n    plan: [Go]\n",
    );
    std::fs::create_dir_all(repo.path().join("sub")).expect("mkdir");
    let ran = run_action(
        repo.path(),
        &[
            ("binary", BINARY),
            ("working-directory", "sub"),
            ("manifest", "../sweep.yaml"),
        ],
    );
    assert_eq!(ran.failed, None, "{}", ran.logs);
    let top = repo.path().canonicalize().expect("top");
    assert_eq!(
        Path::new(&ran.outputs["report-dir"]),
        top.join("sub/dispatch-report")
    );
    let records = Path::new(&ran.sweep["records"]);
    assert!(records.is_dir(), "{}", records.display());
    assert!(records.starts_with(&top) && !records.starts_with(top.join("sub")));
}
