//! Workers ask, rules and people answer; findings escalate and the exit code
//! says so. Every worker is the scripted test agent (or a shell one-liner
//! speaking the same file protocol), through the `command` backend.

mod common;

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::Project;

const PLAN: &str = "plan: [First step, Second step]";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The messages of the run's warning events.
fn warnings(events: &[Value]) -> Vec<String> {
    events_of(events, "warning")
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn events_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// Wait until `path` exists under the task's folder.
fn wait_for(project: &Project, task: &str, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let path = project.path().join(".dispatch/tasks").join(task).join(name);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_rule_answers_and_the_worker_goes_on_with_the_answer() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1
questions:
  answers:
    - match: 'PII|personal data|user emails'
      answer: Yes, flag it. We should not log PII at INFO level.
tasks:
  audit:
    command: [AGENT, check, 'ask:Found INFO-level logging of user emails in auth.ts:42. Should I flag this?', check]
    {PLAN}
  local-rule:
    answers:
      - keywords: [region]
        answer: eu-west-1
    command: [AGENT, 'ask:Which region should I deploy the PII scrubber to?', check-all]
    {PLAN}
"
    ));
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(project
        .task_file("audit", "output.md")
        .contains("A: Yes, flag it. We should not log PII at INFO level."));
    assert!(
        project
            .task_file("local-rule", "output.md")
            .contains("A: eu-west-1"),
        "the task's rule comes first"
    );
    let answered = events_of(&events, "answered");
    assert_eq!(answered.len(), 2);
    assert!(answered.iter().any(|e| e["by"]
        .as_str()
        .unwrap_or_default()
        .starts_with("a manifest rule (match: ")));
    assert!(answered
        .iter()
        .any(|e| e["by"] == "a task rule (keywords: region)"));
    let record = project.task_json("audit");
    assert_eq!(record["questions"][0]["seq"], 1);
    assert!(record["questions"][0]["answered_by"]
        .as_str()
        .unwrap_or_default()
        .contains("manifest rule"));
}

#[test]
fn two_workers_asking_at_once_each_get_their_own_answer() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1
questions:
  answers:
    - {{ keywords: [alpha], answer: answer-for-alpha }}
    - {{ keywords: [beta], answer: answer-for-beta }}
tasks:
  alpha:
    command: [AGENT, 'ask:alpha question?', 'ask:alpha again?', check-all]
    {PLAN}
  beta:
    command: [AGENT, 'ask:beta question?', check-all]
    {PLAN}
"
    ));
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let alpha = project.task_file("alpha", "output.md");
    assert_eq!(alpha.matches("A: answer-for-alpha").count(), 2, "{alpha}");
    assert!(project
        .task_file("beta", "output.md")
        .contains("A: answer-for-beta"));
}

#[test]
fn a_question_written_with_plain_mv_is_answered() {
    let project = Project::new();
    project.manifest(
        "version: 1
questions:
  answers: [{ keywords: [proceed], answer: go ahead }]
tasks:
  shell:
    command:
      - sh
      - -c
      - >-
        printf 'Shall I proceed?' > \"$DISPATCH_IPC_DIR/q.tmp\" && mv \"$DISPATCH_IPC_DIR/q.tmp\" \"$DISPATCH_IPC_DIR/001.question\";
        while [ ! -f \"$DISPATCH_IPC_DIR/001.answer\" ]; do sleep 0.02; done;
        cat \"$DISPATCH_IPC_DIR/001.answer\" > \"$DISPATCH_OUTPUT\"; touch \"$DISPATCH_IPC_DIR/001.done\" \"$DISPATCH_IPC_DIR/.done\"
    plan: [Ask]
",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(project.task_file("shell", "output.md").trim(), "go ahead");
}

#[test]
fn dispatch_answer_from_another_terminal_reaches_the_worker() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\nquestions: {{ on_unanswered: wait }}\ntasks:\n  deploy:\n    priority: high\n    command: [AGENT, 'ask:Which region?', check-all]\n    {PLAN}\n"
    ));
    let child = project
        .command(&["run", "sweep.yaml", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    wait_for(&project, "deploy", "ipc/001.question");
    // The run's record exists before the question: `questions` finds it.
    let listed = project.command(&["questions"]).output().expect("questions");
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains("deploy #1 (high): Which region?"), "{text}");
    let json = project
        .command(&["questions", "--json"])
        .output()
        .expect("questions --json");
    let waiting: Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(waiting[0]["task"], "deploy");
    let status = project.command(&["status"]).output().expect("status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("question #1 waiting: Which region?"),
        "{text}"
    );
    let answered = project
        .command(&["answer", "deploy", "eu-west-1"])
        .output()
        .expect("answer");
    assert_eq!(answered.status.code(), Some(0), "{}", stderr(&answered));
    let again = project
        .command(&["answer", "deploy", "--seq", "1", "us-east-1"])
        .output()
        .expect("answer");
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("was already answered: eu-west-1"));
    let output = child.wait_with_output().expect("exits");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(project
        .task_file("deploy", "output.md")
        .contains("A: eu-west-1"));
    let record = project.task_json("deploy");
    assert_eq!(record["questions"][0]["answered_by"], "dispatch answer");
}

#[test]
fn a_person_at_the_terminal_answers() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ntasks:\n  ask:\n    command: [AGENT, 'ask:Staging or production?', check-all]\n    {PLAN}\n"
    ));
    let mut child = project
        .command(&["run", "sweep.yaml", "--answer-here"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let screen = Screen::follow(child.stderr.take().expect("stderr"));
    // Typed as a person would, once the question shows: on a busy machine
    // the question file appears well before dispatch has read it.
    screen.wait_for("Type the answer");
    let mut stdin = child.stdin.take().expect("stdin");
    // A blank line is ignored; the next line is the answer.
    stdin.write_all(b"\nstaging\n").expect("type");
    let status = child.wait().expect("exits");
    let err = screen.text();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("? ask asks: Staging or production?"), "{err}");
    assert!(project.task_file("ask", "output.md").contains("A: staging"));
    assert_eq!(
        project.task_json("ask")["questions"][0]["answered_by"],
        "a person"
    );
}

/// A line typed while no question waits answers nothing later, and the
/// person is told so rather than left guessing.
#[test]
fn a_line_typed_before_any_question_is_not_used_and_says_so() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ntasks:\n  ask:\n    command: [AGENT, 'wait-file:go', 'ask:Staging or production?', check-all]\n    {PLAN}\n"
    ));
    let mut child = project
        .command(&["run", "sweep.yaml", "--answer-here"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let screen = Screen::follow(child.stderr.take().expect("stderr"));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"production\n").expect("type");
    screen.wait_for("the line typed was not used: production");
    std::fs::write(project.path().join("go"), "").expect("open the gate");
    screen.wait_for("Type the answer");
    stdin.write_all(b"staging\n").expect("type");
    let status = child.wait().expect("exits");
    assert_eq!(status.code(), Some(0), "{}", screen.text());
    assert!(project.task_file("ask", "output.md").contains("A: staging"));
}

/// What dispatch writes to a pipe, read as it comes.
struct Screen {
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Screen {
    fn follow(mut pipe: impl std::io::Read + Send + 'static) -> Self {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let into = seen.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                into.lock().expect("screen").extend_from_slice(&buffer[..n]);
            }
        });
        Screen { seen }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().expect("screen")).into_owned()
    }

    fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "never shown: {text:?}\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A sweep whose one task asks a question nobody answers.
fn unanswered(policy: &str) -> (Project, Output, Vec<Value>) {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\nquestions: {{ timeout: 300ms, on_unanswered: {policy}, default_answer: go with the default }}\ntasks:\n  lonely:\n    command: [AGENT, check, 'ask-timeout:5s', 'ask:Anyone there?', check]\n    {PLAN}\n"
    ));
    let (output, events) = project.run(&[]);
    (project, output, events)
}

#[test]
fn on_unanswered_default_sends_the_default_answer() {
    let (project, output, _) = unanswered("default");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(project
        .task_file("lonely", "output.md")
        .contains("A: go with the default"));
    assert_eq!(
        project.task_json("lonely")["questions"][0]["answered_by"],
        "the default answer"
    );
}

#[test]
fn on_unanswered_block_ends_the_task_blocked_with_exit_code_4() {
    let (project, output, _) = unanswered("block");
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let record = project.task_json("lonely");
    assert_eq!(record["status"], "blocked");
    assert!(record["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("was not answered in time: Anyone there?"));
}

#[test]
fn on_unanswered_fail_fails_the_task() {
    let (project, output, _) = unanswered("fail");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(project.task_json("lonely")["status"], "failed");
}

#[test]
fn on_unanswered_wait_keeps_waiting_and_says_so() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\nquestions: {{ timeout: 200ms, on_unanswered: wait }}\ntasks:\n  lonely:\n    command: [AGENT, check, 'ask-timeout:1s', 'ask:Anyone there?', check]\n    {PLAN}\n"
    ));
    let (output, events) = project.run(&[]);
    // The worker gave up waiting after a second and left its item [?].
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(warnings(&events)
        .iter()
        .any(|w| w.contains("still unanswered")));
    assert_eq!(project.task_json("lonely")["status"], "blocked");
}

#[test]
fn worker_ask_times_out_marks_the_item_and_writes_context() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  asker:\n    command: [sh, -c, '\"$DISPATCH_BIN\" worker ask \"Which database?\" --timeout 300ms; echo \"exit=$?\" > \"$DISPATCH_OUTPUT\"']\n    plan: [Pick a database]\n",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert_eq!(project.task_file("asker", "output.md").trim(), "exit=4");
    assert!(project
        .task_file("asker", "plan.md")
        .contains("- [?] Pick a database — Which database?"));
    assert!(project
        .task_file("asker", "context.md")
        .contains("Waiting for an answer to: Which database?"));
}

#[test]
fn worker_ask_prints_the_answer() {
    let project = Project::new();
    project.manifest(
        "version: 1\nquestions:\n  answers: [{ keywords: [database], answer: postgres }]\ntasks:\n  asker:\n    command: [sh, -c, 'a=$(\"$DISPATCH_BIN\" worker ask \"Which database?\") && echo \"got $a\" > \"$DISPATCH_OUTPUT\" && touch \"$DISPATCH_IPC_DIR/.done\"']\n    plan: [Pick a database]\n",
    );
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        project.task_file("asker", "output.md").trim(),
        "got postgres"
    );
}

#[test]
fn findings_show_live_even_when_quiet_and_a_critical_one_fails_the_sweep_by_default() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  audit:\n    command: [sh, -c, '\"$DISPATCH_BIN\" worker finding --severity critical \"Stripe webhook signature verification disabled\" --location config/stripe.ts:31 && \"$DISPATCH_BIN\" worker finding --severity low \"Verbose logs\" && touch \"$DISPATCH_IPC_DIR/.done\"']\n    plan: [Audit]\n",
    );
    let output = project
        .command(&["run", "sweep.yaml", "--quiet"])
        .output()
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(3),
        "no escalation section: a critical finding still fails with 3"
    );
    let err = stderr(&output);
    assert!(err.contains("! audit CRITICAL: Stripe webhook signature verification disabled (config/stripe.ts:31)"), "{err}");
    assert!(err.contains("ESCALATED critical finding: audit CRITICAL: Stripe webhook signature verification disabled"), "the summary leads with it: {err}");
    let record = project.task_json("audit");
    assert_eq!(record["findings"].as_array().map(Vec::len), Some(2));
    assert_eq!(record["status"], "complete");
    let status = project.command(&["status"]).output().expect("status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("finding CRITICAL: Stripe webhook signature verification disabled (config/stripe.ts:31)"),
        "{text}"
    );
}

#[test]
fn malformed_finding_lines_are_reported_and_skipped() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  messy:\n    command: [sh, -c, 'echo \"not json\" >> \"$DISPATCH_TASK_DIR/findings.jsonl\"; echo \"{\\\"severity\\\": \\\"severe\\\", \\\"title\\\": \\\"x\\\"}\" >> \"$DISPATCH_TASK_DIR/findings.jsonl\"; \"$DISPATCH_BIN\" worker finding --severity medium \"Real one\"; touch \"$DISPATCH_IPC_DIR/.done\"']\n    plan: [Report]\n",
    );
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let warnings = warnings(&events);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("findings.jsonl line 1 skipped")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("findings.jsonl line 2 skipped")),
        "{warnings:?}"
    );
    let record = project.task_json("messy");
    assert_eq!(record["findings"][0]["title"], "Real one");
}

#[test]
fn halt_starts_nothing_new_and_exits_with_the_rules_code() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1
concurrency: 1
escalation:
  - name: launch blocker
    when: {{ severity: critical }}
    action: halt
    exit_code: 9
tasks:
  first:
    priority: high
    command: [sh, -c, '\"$DISPATCH_BIN\" worker finding --severity critical \"Blocker\" && touch \"$DISPATCH_IPC_DIR/.done\"']
    plan: [Find]
  second:
    command: [AGENT, check-all]
    {PLAN}
"
    ));
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(9), "{}", stderr(&output));
    assert_eq!(
        project.task_json("first")["status"],
        "complete",
        "the running task finishes"
    );
    let second = project.task_json("second");
    assert_eq!(second["status"], "skipped");
    assert!(second["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("halted by escalation rule launch blocker"));
    let escalation = events_of(&events, "escalation");
    assert_eq!(escalation[0]["action"], "halt");
    assert_eq!(escalation[0]["rule"], "launch blocker");
}

#[test]
fn cancel_stops_running_workers_within_the_grace_period() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1
escalation:
  - when: {{ severity: high }}
    action: cancel
tasks:
  finder:
    command: [sh, -c, 'sleep 0.3; \"$DISPATCH_BIN\" worker finding --severity critical \"Stop everything\"; sleep 30']
    plan: [Find]
  bystander:
    command: [AGENT, check, hang]
    {PLAN}
"
    ));
    let started = Instant::now();
    let (output, _) = project.run(&[]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    for task in ["finder", "bystander"] {
        let record = project.task_json(task);
        assert_eq!(record["status"], "cancelled", "{task}: {record}");
        assert!(record["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("cancelled by escalation rule rule 1"));
    }
}

#[test]
fn a_failing_or_hanging_hook_is_reported_and_the_sweep_goes_on() {
    let project = Project::new();
    project.manifest(
        "version: 1
escalation:
  - name: pager
    when: { severity: high }
    run: 'cat > hook.json; env | grep ^DISPATCH_ | sort > hook.env; exit 7'
  - name: slow
    when: { status: [failed] }
    run: [sleep, '30']
tasks:
  finder:
    command: [sh, -c, '\"$DISPATCH_BIN\" worker finding --severity high \"Rate limiting missing\" --location api/login.ts:12 && touch \"$DISPATCH_IPC_DIR/.done\"']
    plan: [Find]
  crasher:
    command: [sh, -c, 'exit 1']
    plan: [Crash]
",
    );
    let started = Instant::now();
    let (output, events) = project.run(&["--hook-timeout", "500ms"]);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let warnings = warnings(&events);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("hook of escalation rule pager failed")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("hook of escalation rule slow did not finish")),
        "{warnings:?}"
    );
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(project.path().join("hook.json")).expect("hook ran"),
    )
    .expect("json");
    assert_eq!(event["kind"], "finding");
    assert_eq!(event["finding"]["location"], "api/login.ts:12");
    let env = std::fs::read_to_string(project.path().join("hook.env")).expect("env");
    assert!(
        env.contains("DISPATCH_SEVERITY=high") && env.contains("DISPATCH_RULE=pager"),
        "{env}"
    );
}

/// On a real terminal (a pseudo-terminal made by `script`), the live view
/// is on and the person there is asked, without any flag. Linux only: the
/// BSD `script` of macOS takes other arguments.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "Linux only: the BSD `script` of macOS takes other arguments"
)]
fn on_a_real_terminal_the_person_is_asked_without_a_flag() {
    let project = Project::new();
    project.manifest(&format!(
        "version: 1\ntasks:\n  ask:\n    command: [AGENT, 'ask:Staging or production?', check-all]\n    {PLAN}\n"
    ));
    let dispatch = env!("CARGO_BIN_EXE_dispatch");
    let command_line = format!(
        "{dispatch} run sweep.yaml --root {}",
        project.path().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command_line, "/dev/null"])
        .current_dir(project.path())
        .env("HOME", project.path())
        .env_remove("CI")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux runs the command on a pseudo-terminal");
    wait_for(&project, "ask", "ipc/001.question");
    // Type only once the question is on screen, as a person would: a line
    // typed before the prompt answers nothing (on a busy machine the file
    // can appear well before dispatch has read it).
    let mut stdout = child.stdout.take().expect("stdout");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut stdout, &mut buffer) {
                if n == 0 {
                    break;
                }
                seen.lock().expect("screen").extend_from_slice(&buffer[..n]);
            }
        })
    };
    let shown = |text: &str| String::from_utf8_lossy(&seen.lock().expect("screen")).contains(text);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !shown("Type the answer") {
        assert!(Instant::now() < deadline, "the question was never shown");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"staging\r").expect("type");
    let status = child.wait().expect("exits");
    let _ = reader.join();
    let screen = String::from_utf8_lossy(&seen.lock().expect("screen")).into_owned();
    assert_eq!(status.code(), Some(0), "{screen}");
    assert!(
        screen.contains("? ask asks: Staging or production?"),
        "{screen}"
    );
    assert!(project.task_file("ask", "output.md").contains("A: staging"));
    assert_eq!(
        project.task_json("ask")["questions"][0]["answered_by"],
        "a person"
    );
}
