//! Secret values outside the event stream: `run.json` and `status --json`,
//! `dispatch plan`, `worker.log` across a read boundary, and the source
//! lines of error messages. A value is secret by its name (`*_TOKEN`, …),
//! by `secrets:`, or by being equal to a secret value of the environment.

mod common;

use std::process::Output;

use common::Project;

/// A secret the environment of `dispatch` holds, under a secret name.
const ENV_SECRET: &str = "sk-test-0123456789";
const TOKEN: &str = "tok-0123456789";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `dispatch ARGS` in the project, for commands without `--root`.
fn bare(project: &Project, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dispatch"));
    command
        .args(args)
        .current_dir(project.path())
        .env("HOME", project.path())
        .env_remove("XDG_CONFIG_HOME");
    command
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn secret_vars_stay_out_of_run_json_and_status_and_are_asked_for_again_on_resume() {
    let project = Project::new();
    project.manifest(
        "version: 1
questions: { on_unanswered: block, timeout: 200ms }
tasks:
  deploy:
    command: [sh, -c, 'if [ -f resumed ]; then exec AGENT read-stdin check-all; else exec AGENT ask-timeout:5s \"ask:Go?\"; fi']
    prompt: \"deploy with {{ vars.DEPLOY_TOKEN }} and {{ vars.copy }} to {{ vars.region }}\"
    plan: [Deploy]
",
    );
    let vars = [
        "--var",
        "DEPLOY_TOKEN=tok-0123456789",
        "--var",
        "copy=sk-test-0123456789",
        "--var",
        "region=eu-west-1",
    ];
    let output = project
        .command(&[&["run", "sweep.yaml", "--json"], &vars[..]].concat())
        .env("OPENAI_API_KEY", ENV_SECRET)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let runs = project.path().join(".dispatch/runs");
    let run_dir = std::fs::read_dir(&runs)
        .expect("runs folder")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("run.json").exists())
        .expect("a run folder");
    let run_json = std::fs::read_to_string(run_dir.join("run.json")).expect("run.json");
    let status = project
        .command(&["status", "--json"])
        .output()
        .expect("status");
    for (what, text) in [("run.json", run_json), ("status --json", stdout(&status))] {
        assert!(!text.contains(TOKEN), "{what}: {text}");
        assert!(!text.contains(ENV_SECRET), "{what}: {text}");
        assert!(text.contains("[redacted DEPLOY_TOKEN]"), "{what}: {text}");
        assert!(text.contains("[redacted copy]"), "{what}: {text}");
        assert!(text.contains("eu-west-1"), "{what}: {text}");
    }

    let answer = project
        .command(&["answer", "deploy", "yes"])
        .output()
        .expect("answer");
    assert_eq!(answer.status.code(), Some(0), "{}", stderr(&answer));
    std::fs::write(project.path().join("resumed"), "").expect("write");
    // The secrets were not kept, so resume cannot render the prompt alone.
    let refused = project.command(&["resume"]).output().expect("resume");
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains("secret variables that are not stored: DEPLOY_TOKEN, copy")
            && err.contains("--var DEPLOY_TOKEN=… --var copy=…"),
        "{err}"
    );
    let resumed = project
        .command(&[&["resume", "--json"], &vars[..4]].concat())
        .output()
        .expect("resume");
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert!(project
        .task_file("deploy", "stdin.txt")
        .contains("deploy with tok-0123456789 and sk-test-0123456789 to eu-west-1"));
}

#[test]
fn dispatch_plan_shows_env_names_but_not_secret_values() {
    let project = Project::new();
    project.manifest(
        "version: 1
secrets: [LICENSE]
tasks:
  deploy:
    command: [AGENT, check-all]
    plan: [Deploy]
    env:
      DEPLOY_TOKEN: tok-0123456789
      LICENSE: lic-0123456789
      COPY: sk-test-0123456789
      REGION: eu-west-1
",
    );
    for args in [
        &["plan", "sweep.yaml"][..],
        &["plan", "sweep.yaml", "--json"],
    ] {
        let output = bare(&project, args)
            .env("OPENAI_API_KEY", ENV_SECRET)
            .output()
            .expect("plan");
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        for secret in [TOKEN, "lic-0123456789", ENV_SECRET] {
            assert!(!text.contains(secret), "{args:?} shows {secret}: {text}");
        }
        for name in ["DEPLOY_TOKEN", "LICENSE", "COPY"] {
            assert!(text.contains(&format!("[redacted {name}]")), "{text}");
        }
        assert!(text.contains("eu-west-1"), "{text}");
    }
}

/// A stdout line is read in 64 KiB pieces; the secret starts 5 bytes
/// before the first piece ends.
#[test]
fn a_secret_across_a_64_kib_boundary_of_one_line_is_redacted_in_worker_log() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  long-line:
    command: [sh, -c, 'head -c 65531 /dev/zero | tr \"\\0\" a; echo \"$DEPLOY_TOKEN\"']
    plan: [Print]
    env:
      DEPLOY_TOKEN: hunter2hunter2-xyz
",
    );
    let (output, _) = project.run(&[]);
    assert!(output.status.code().is_some(), "{}", stderr(&output));
    let log = project.task_file("long-line", "worker.log");
    assert!(
        log.len() > 65536,
        "the line reached the log: {} bytes",
        log.len()
    );
    assert!(!log.contains("hunter2"), "the secret is in worker.log");
    assert!(log.contains("[redacted DEPLOY_TOKEN]"));
}

#[test]
fn error_snippets_do_not_show_secret_values() {
    let project = Project::new();
    let cases = [
        // A schema error on a line holding a secret by name.
        "version: 1\ntasks:\n  a:\n    model: sonnet\n    env: {DEPLOY_TOKEN: tok-0123456789, bad-name: x}\n",
        // A syntax error (a tab) before the file's secrets are known.
        "version: 1\ntasks:\n  a:\n    env:\n\tDEPLOY_TOKEN: tok-0123456789\n",
        // A secret of the environment, pasted into a prompt.
        "version: 1\ntasks:\n  a:\n    model: sonnet\n    prompt: \"key sk-test-0123456789 {{ vars.nope }}\"\n",
        // A name listed under `secrets:`.
        "version: 1\nsecrets: [license]\nvars: {license: lic-0123456789}\ntasks:\n  a:\n    model: sonnet\n    prompt: \"{{ vars.license }} {{ vars.nope }}\"\n    env: {license: lic-0123456789, bad-name: x}\n",
    ];
    for case in cases {
        project.manifest(case);
        let output = bare(&project, &["validate", "sweep.yaml"])
            .env("OPENAI_API_KEY", ENV_SECRET)
            .output()
            .expect("validate");
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{err}");
        assert!(err.contains(" | "), "a snippet is shown: {err}");
        for secret in [TOKEN, ENV_SECRET, "lic-0123456789"] {
            assert!(!err.contains(secret), "{secret} shown: {err}");
        }
    }
}
