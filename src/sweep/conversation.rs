//! Workers ask, rules and people answer; findings come in and escalate.
//!
//! A question is answered, in order, by the task's and the manifest's
//! answer rules, by a person at this terminal (when there is one), or by
//! `dispatch answer` from another terminal; past `questions.timeout`,
//! `questions.on_unanswered` decides. Every finding and question, and every
//! task that ends badly, is offered to the escalation rules.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::plans::IpcNews;
use super::Sweep;
use crate::domain::status::TaskStatus;
use crate::escalation::{self, Trigger};
use crate::events::Event;
use crate::ipc::findings::{Finding, Malformed};
use crate::ipc::questions::{self, Question};
use crate::ipc::{self};
use crate::manifest::types::{Action, CommandLine, EndStatus, OnUnanswered};
use crate::record::QuestionRecord;
use crate::supervise::process::Stop;
use crate::supervise::procfs::Marker;
use crate::supervise::reaper::{self, Scope};

/// A question no rule answered, waiting for a person or its timeout.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub index: usize,
    pub seq: u32,
    pub text: String,
    pub asked: Instant,
}

/// How long a question waits by default before `on_unanswered` decides.
pub(super) const DEFAULT_QUESTION_TIMEOUT: Duration = Duration::from_secs(600);

impl Sweep {
    /// Something changed in a watched folder: a task's `ipc/` (questions,
    /// answers) or its folder (findings).
    pub(super) fn folder_changed(&mut self, folder: PathBuf) {
        // A finished task's folder stays watched (unwatching costs a round
        // trip to the watcher per task); its late events are ignored.
        if let Some(&index) = self
            .folders
            .get(&folder)
            .filter(|&&i| self.slots[i].stop.is_some())
        {
            self.plans.read_ipc(Some(index));
        }
    }

    /// What the reader found in a task's `ipc/` and findings file.
    pub(super) fn ipc_read(&mut self, news: IpcNews) {
        self.take_questions(news.index, news.questions);
        self.take_findings(news.index, news.findings);
    }

    /// New questions, and answers written elsewhere.
    fn take_questions(&mut self, index: usize, all: Vec<Question>) {
        let seen = &self.seen_questions;
        let pending = &self.pending;
        let wanted = |seq: u32| {
            !seen.contains(&(index, seq))
                || pending.iter().any(|p| p.index == index && p.seq == seq)
        };
        let all: Vec<Question> = all.into_iter().filter(|q| wanted(q.seq)).collect();
        for question in all {
            let question = self.redactor.scrub(question);
            let key = (index, question.seq);
            if !self.seen_questions.contains(&key) {
                self.seen_questions.insert(key);
                if question.answer.is_none() {
                    self.on_question(index, question.seq, question.text.clone());
                    continue;
                }
            }
            if let Some(answer) = &question.answer {
                self.answered_elsewhere(index, question.seq, answer);
            }
        }
    }

    fn on_question(&mut self, index: usize, seq: u32, text: String) {
        let task = self.slots[index].task.clone();
        self.slots[index].record.questions.push(QuestionRecord {
            seq,
            text: text.clone(),
            answer: None,
            answered_by: None,
            asked_at: Some(crate::util::clock::now()),
            answered_at: None,
        });
        self.emit(Event::Question {
            task: task.id.clone(),
            seq,
            text: text.clone(),
        });
        self.escalate(&Trigger::Question {
            task: &task.id,
            source_task: &task.source_id,
            tags: &task.tags,
            text: &text,
        });
        let rule = ipc::answer_for(&task.answers, &text)
            .map(|r| ("a task rule", r))
            .or_else(|| {
                ipc::answer_for(&self.plan.questions.answers, &text).map(|r| ("a manifest rule", r))
            });
        if let Some((which, rule)) = rule {
            let by = match &rule.pattern {
                Some(pattern) => format!("{which} (match: {pattern})"),
                None => format!("{which} (keywords: {})", rule.keywords.join(", ")),
            };
            let answer = rule.answer.clone();
            self.give_answer(index, seq, &answer, &by);
            return;
        }
        self.pending.push(Pending {
            index,
            seq,
            text,
            asked: Instant::now(),
        });
        self.pending.sort_by(|a, b| {
            self.slots[b.index]
                .task
                .rank
                .cmp(&self.slots[a.index].task.rank)
                .then(a.asked.cmp(&b.asked))
        });
        self.prompt_next();
    }

    /// Write an answer and record who gave it.
    pub(super) fn give_answer(&mut self, index: usize, seq: u32, answer: &str, by: &str) {
        let ipc = PathBuf::from(self.slots[index].task.paths.ipc());
        match questions::answer(&ipc, seq, answer) {
            Ok(()) => self.record_answer(index, seq, answer, by),
            Err(questions::AnswerError::AlreadyAnswered(existing)) => {
                self.record_answer(index, seq, &existing, "dispatch answer")
            }
            Err(e @ questions::AnswerError::Planted) => {
                // A worker that redirects its answers elsewhere (another
                // task's folder, say) gets none, and its task ends.
                let why = format!("question #{seq} could not be answered: {e}");
                let task = self.slots[index].task.id.clone();
                self.emit(Event::Warning {
                    task: Some(task),
                    message: why.clone(),
                });
                if self.slots[index].ended_by.is_none() {
                    self.slots[index].ended_by = Some((TaskStatus::Failed, why));
                    self.stop(index);
                }
            }
            Err(e) => {
                let task = self.slots[index].task.id.clone();
                self.emit(Event::Warning {
                    task: Some(task),
                    message: format!("cannot answer question #{seq}: {e}"),
                });
            }
        }
    }

    fn answered_elsewhere(&mut self, index: usize, seq: u32, answer: &str) {
        if self
            .pending
            .iter()
            .any(|p| p.index == index && p.seq == seq)
        {
            self.record_answer(index, seq, answer, "dispatch answer");
        }
    }

    fn record_answer(&mut self, index: usize, seq: u32, answer: &str, by: &str) {
        self.pending.retain(|p| !(p.index == index && p.seq == seq));
        if let Some(q) = self.slots[index]
            .record
            .questions
            .iter_mut()
            .find(|q| q.seq == seq)
        {
            q.answer = Some(answer.to_owned());
            q.answered_by = Some(by.to_owned());
            q.answered_at = Some(crate::util::clock::now());
        }
        self.save_soon(index);
        let task = self.slots[index].task.id.clone();
        self.emit(Event::Answered {
            task,
            seq,
            answer: answer.to_owned(),
            by: by.to_owned(),
        });
        if self.prompted == Some((index, seq)) {
            self.prompted = None;
        }
        self.prompt_next();
    }

    /// Show the most urgent waiting question to the person at this
    /// terminal, if there is one and nothing is shown.
    fn prompt_next(&mut self) {
        if !self.interactive || self.prompted.is_some() {
            return;
        }
        let Some(next) = self.pending.first().cloned() else {
            return;
        };
        self.prompted = Some((next.index, next.seq));
        let task = &self.slots[next.index].task;
        let model = task
            .model
            .as_ref()
            .map(|m| format!(" ({})", m.name))
            .unwrap_or_default();
        self.reporters.prompt(&format!(
            "? {}{model} asks: {}\n  Type the answer and press Enter:",
            task.id, next.text
        ));
    }

    /// A line typed at this terminal answers the question shown.
    pub(super) fn typed(&mut self, line: String) {
        let answer = line.trim().to_owned();
        if answer.is_empty() {
            return;
        }
        let Some((index, seq)) = self.prompted else {
            // Never kept for a question not yet shown: its asker would get
            // an answer to something the person never saw.
            self.emit(Event::Warning {
                task: None,
                message: format!(
                    "no question is waiting for an answer, so the line typed was not used: {answer}"
                ),
            });
            return;
        };
        self.prompted = None;
        self.give_answer(index, seq, &answer, "a person");
    }

    /// Questions past their timeout: `on_unanswered` decides.
    pub(super) fn question_deadlines(&mut self) {
        let timeout = self
            .plan
            .questions
            .timeout
            .as_ref()
            .and_then(|t| crate::manifest::duration::parse(&t.0))
            .unwrap_or(DEFAULT_QUESTION_TIMEOUT);
        let explicit = self.plan.questions.on_unanswered;
        let policy = explicit.unwrap_or_else(|| default_policy(self.interactive));
        let now = Instant::now();
        let expired: Vec<Pending> = self
            .pending
            .iter()
            .filter(|p| now.duration_since(p.asked) >= timeout)
            .cloned()
            .collect();
        for question in expired {
            let task = self.slots[question.index].task.id.clone();
            match policy {
                OnUnanswered::Wait => {
                    // Keep waiting, but say so once.
                    if self.warned_waiting.insert((question.index, question.seq)) {
                        self.emit(Event::Warning {
                            task: Some(task),
                            message: format!(
                                "question #{} is still unanswered: {}",
                                question.seq, question.text
                            ),
                        });
                    }
                }
                OnUnanswered::Default => {
                    let answer = self
                        .plan
                        .questions
                        .default_answer
                        .clone()
                        .unwrap_or_default();
                    self.give_answer(question.index, question.seq, &answer, "the default answer");
                }
                OnUnanswered::Block | OnUnanswered::Fail => {
                    self.pending
                        .retain(|p| !(p.index == question.index && p.seq == question.seq));
                    let status = if policy == OnUnanswered::Block {
                        TaskStatus::Blocked
                    } else {
                        TaskStatus::Failed
                    };
                    let mut reason = format!(
                        "question #{} was not answered in time: {}",
                        question.seq, question.text
                    );
                    if explicit.is_none() {
                        reason.push_str(&format!(
                            " (nobody at a terminal to answer; `{}`, then `dispatch resume`)",
                            crate::ipc::questions::answer_command(&task, question.seq)
                        ));
                    }
                    if self.slots[question.index].ended_by.is_none() {
                        self.slots[question.index].ended_by = Some((status, reason));
                        self.stop(question.index);
                    }
                }
            }
        }
    }

    /// Stop a running worker gently (its plan and commits are kept).
    pub(super) fn stop(&mut self, index: usize) {
        if let Some(stop) = &self.slots[index].stop {
            let _ = stop.send(Stop::Graceful);
        }
    }

    /// New findings of a task.
    fn take_findings(&mut self, index: usize, results: Vec<Result<Finding, Malformed>>) {
        let task = self.slots[index].task.clone();
        for result in results {
            match result.map(|finding| self.redactor.scrub(finding)) {
                Ok(finding) => {
                    self.on_finding(index, &task.id, &task.source_id, &task.tags, finding)
                }
                Err(bad) => self.emit(Event::Warning {
                    task: Some(task.id.clone()),
                    message: format!("findings.jsonl line {} skipped: {}", bad.line, bad.error),
                }),
            }
        }
    }

    fn on_finding(
        &mut self,
        index: usize,
        id: &str,
        source: &str,
        tags: &[String],
        finding: Finding,
    ) {
        self.emit(Event::Finding {
            task: id.to_owned(),
            severity: finding.severity,
            title: finding.title.clone(),
            location: finding.location.clone(),
            detail: finding.detail.clone(),
        });
        self.escalate(&Trigger::Finding {
            task: id,
            source_task: source,
            tags,
            finding: &finding,
        });
        self.slots[index].record.findings.push(finding);
        self.save_soon(index);
    }

    /// Offer a task's end to the escalation rules.
    pub(super) fn escalate_end(&mut self, index: usize, status: TaskStatus) {
        let end = match status {
            TaskStatus::Failed | TaskStatus::CheckFailed | TaskStatus::BudgetExceeded => {
                EndStatus::Failed
            }
            TaskStatus::Blocked => EndStatus::Blocked,
            TaskStatus::TimedOut => EndStatus::TimedOut,
            TaskStatus::Stalled => EndStatus::Stalled,
            TaskStatus::Incomplete => EndStatus::Incomplete,
            TaskStatus::Skipped => EndStatus::Skipped,
            _ => return,
        };
        let task = self.slots[index].task.clone();
        self.escalate(&Trigger::TaskEnded {
            task: &task.id,
            source_task: &task.source_id,
            tags: &task.tags,
            status: end,
        });
    }

    /// Apply the first rule that matches: banner, hook, halt, cancel, fail.
    pub(super) fn escalate(&mut self, trigger: &Trigger<'_>) {
        let Some(fired) = escalation::first_match(&self.plan.escalation, trigger) else {
            return;
        };
        let rule = self.plan.escalation.get(fired.rule).cloned();
        self.emit(Event::Escalation {
            rule: fired.name.clone(),
            action: fired.action,
            exit_code: fired.exit_code,
            summary: fired.summary.clone(),
            notify: fired.notify,
        });
        if let Some(command) = rule.and_then(|r| r.run) {
            self.run_hook(
                command,
                escalation::event_json(trigger, &fired),
                escalation::event_env(trigger, &fired),
                &fired.name,
            );
        }
        match fired.action {
            Action::Notify | Action::Fail => {}
            Action::Halt => {
                self.halted.get_or_insert_with(|| fired.name.clone());
            }
            Action::Cancel => {
                self.halted.get_or_insert_with(|| fired.name.clone());
                for index in 0..self.slots.len() {
                    if self.slots[index].stop.is_some() && self.slots[index].ended_by.is_none() {
                        self.slots[index].ended_by = Some((
                            TaskStatus::Cancelled,
                            format!("cancelled by escalation rule {}", fired.name),
                        ));
                        self.stop(index);
                    }
                }
            }
        }
        let (Trigger::Finding { task, .. }
        | Trigger::TaskEnded { task, .. }
        | Trigger::Question { task, .. }) = *trigger;
        if let Some(index) = self.slots.iter().position(|s| s.task.id == task) {
            self.slots[index]
                .record
                .escalations
                .push(crate::record::EscalationMark {
                    rule: fired.name.clone(),
                    summary: fired.summary.clone(),
                    at: crate::util::clock::now(),
                });
            self.save_soon(index);
        }
        self.fired.push(fired);
    }

    /// Run a rule's `run:` command with the event on stdin and in its
    /// environment. It runs on its own: a failing or hanging hook is
    /// reported and the sweep goes on.
    fn run_hook(
        &mut self,
        command: CommandLine,
        event: serde_json::Value,
        env: Vec<(String, String)>,
        rule: &str,
    ) {
        let argv = match command {
            CommandLine::Shell(script) => vec!["sh".to_owned(), "-c".to_owned(), script],
            CommandLine::Argv(argv) => argv,
        };
        let report = self.hook_reports.clone();
        let timeout = self.hook_timeout;
        let grace = self.grace;
        let rule = rule.to_owned();
        let cwd = self.state.root.clone();
        // What the hook starts carries this, so what it leaves running is
        // found and stopped when it ends.
        let marker = Marker::hook(&self.run_id, &format!("{rule}-{}", self.fired.len()));
        self.hook_tasks.retain(|h| !h.is_finished());
        self.hook_tasks.push(tokio::spawn(async move {
            let mut env = env;
            env.extend(marker.env().iter().cloned());
            if let Some(problem) = hook(argv, event, env, &cwd, timeout).await {
                let _ = report.send(format!(
                    "the hook of escalation rule {rule} {problem}; the sweep goes on"
                ));
            }
            let strays = tokio::task::spawn_blocking(move || {
                reaper::stop_marked(&marker, Scope::Ours, grace, "hook end")
            })
            .await
            .unwrap_or_default();
            if !strays.is_empty() {
                let _ = report.send(super::leftovers::hook_strays(&rule, &strays));
            }
        }));
    }
}

/// Run a hook; `Some(problem)` when it failed or hung.
async fn hook(
    argv: Vec<String>,
    event: serde_json::Value,
    env: Vec<(String, String)>,
    cwd: &Path,
    timeout: Duration,
) -> Option<String> {
    use tokio::io::AsyncWriteExt;
    let (program, args) = argv.split_first()?;
    let mut child = match tokio::process::Command::new(program)
        .args(args)
        .envs(env)
        .current_dir(cwd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Some(format!("could not start: {e}")),
    };
    let pid = child.id().unwrap_or(0);
    reaper::own(pid);
    if let Some(mut stdin) = child.stdin.take() {
        let mut text = event.to_string();
        text.push('\n');
        let _ = stdin.write_all(text.as_bytes()).await;
    }
    let problem = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => None,
        Ok(Ok(status)) => Some(format!("failed ({status})")),
        Ok(Err(e)) => Some(format!("failed: {e}")),
        Err(_) => {
            if let Ok(group) = libc::pid_t::try_from(pid) {
                if group > 1 {
                    // SAFETY: only sends a signal to the hook's own group,
                    // whose leader is still unreaped (so the group is its).
                    unsafe {
                        libc::killpg(group, libc::SIGKILL);
                    }
                }
            }
            let _ = child.wait().await;
            Some(format!(
                "did not finish within {} and was killed",
                crate::util::clock::human(timeout)
            ))
        }
    };
    reaper::disown(pid);
    problem
}

/// What an unanswered question does when the manifest does not say. With a
/// person who can answer (a terminal, or `--answer-here`) it waits; without
/// one (stdin not a terminal, or `CI` set) waiting would last until CI's own
/// timeout killed the job and its reports, so the task ends `blocked`, to
/// be resumed once answered.
pub(crate) fn default_policy(interactive: bool) -> OnUnanswered {
    use std::io::IsTerminal;
    static TERMINAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let terminal = *TERMINAL
        .get_or_init(|| std::io::stdin().is_terminal() && std::env::var_os("CI").is_none());
    if interactive || terminal {
        OnUnanswered::Wait
    } else {
        OnUnanswered::Block
    }
}

/// Lines typed at this terminal, read on a thread of their own.
pub(super) fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    let builder = std::thread::Builder::new().name("dispatch-stdin".to_owned());
    // No thread: no answers are typed; the channel closes at once.
    let _ = crate::util::thread::spawn(builder, move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(line.clone()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}
