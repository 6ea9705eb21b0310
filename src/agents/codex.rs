//! Codex (`codex exec`): its event stream and its exit codes.
//!
//! The command line is the `codex` entry of the built-in backend table
//! (`manifest::models::builtin_backends`): `codex exec --json -`, the
//! prompt on stdin; see [`super::claude`] for why the table is not here.
//!
//! The stream's shapes follow `codex-rs/exec/src/exec_events.rs`
//! (`thread.started`, `turn.started`, `turn.completed` with `usage`,
//! `turn.failed` with `error.message`, `item.*` with item types, top-level
//! `error`).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::stream::{
    error_text, str_field, truncate_chars, u64_any, Tokens, Tracker, MAX_MESSAGE_CHARS,
};

/// The CLI's name in failure reasons.
pub const NAME: &str = "Codex";

/// What a `codex exec` exit code means, from its source: every error it
/// stops on (its configuration, its login, a failed turn) exits 1, and its
/// argument parser (clap) exits 2 on a command line it does not accept.
pub fn explain_exit(code: i32) -> Option<&'static str> {
    match code {
        1 => Some("stopped on an error (configuration, login or a failed turn); worker.log has its message"),
        2 => Some("refused its command line: a flag this version of Codex does not know"),
        _ => None,
    }
}

impl Tracker {
    pub(super) fn codex_event(&mut self, kind: &str, event: &Map<String, Value>) {
        match kind {
            "turn.started" => {
                if !self.state.codex_turn_open {
                    self.usage.turns = self.usage.turns.saturating_add(1);
                }
                self.state.codex_turn_open = true;
            }
            "turn.completed" => {
                self.close_codex_turn();
                // Codex fills this from the thread's running total
                // (`usage_from_last_total` in the exec JSONL processor), not
                // from the turn alone, so it is taken as a total. `codex exec`
                // ends after one turn, where both readings agree.
                if let Some(usage) = event.get("usage").and_then(Value::as_object) {
                    let input = u64_any(usage, &["input_tokens"]).unwrap_or(0);
                    let cached = u64_any(usage, &["cached_input_tokens"]).unwrap_or(0);
                    let output = u64_any(usage, &["output_tokens"]).unwrap_or(0);
                    self.max_tokens(Tokens {
                        input,
                        output,
                        cached,
                    });
                }
                // A completed turn does not clear an error seen earlier.
                if !self.outcome.as_ref().is_some_and(|o| o.is_error) {
                    let text = self.last_text();
                    self.set_outcome(false, text);
                }
            }
            "turn.failed" => {
                self.close_codex_turn();
                // `error` is `{"message": ...}` in exec_events.rs; a bare
                // string is accepted too.
                let message = event
                    .get("error")
                    .map(error_text)
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "turn failed".to_string());
                self.push_error(&message);
                self.set_outcome(true, Some(message));
            }
            "error" => {
                let message = str_field(event, "message")
                    .map(str::to_string)
                    .or_else(|| event.get("error").map(error_text))
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "error".to_string());
                self.push_error(&message);
                // Codex reports stream retries as top-level errors
                // ("Reconnecting... 1/5 ...") while the turn carries on; only
                // other errors decide the outcome.
                match reconnecting(&message) {
                    Some(retry) => self.note_retry(retry),
                    None => self.set_outcome(true, Some(message)),
                }
            }
            "item.completed" => {
                if let Some(item) = event.get("item").and_then(Value::as_object) {
                    self.codex_item(item);
                }
            }
            _ => {}
        }
    }

    fn close_codex_turn(&mut self) {
        if !self.state.codex_turn_open {
            self.usage.turns = self.usage.turns.saturating_add(1);
        }
        self.state.codex_turn_open = false;
    }

    fn codex_item(&mut self, item: &Map<String, Value>) {
        let status = str_field(item, "status").unwrap_or("");
        let kind = str_field(item, "type").unwrap_or("");
        // Every item but a notice is the model's doing.
        if kind != "error" {
            self.state.model_replies = self.state.model_replies.saturating_add(1);
        }
        match kind {
            "agent_message" => {
                if let Some(text) = str_field(item, "text").filter(|t| !t.is_empty()) {
                    self.state.last_text = truncate_chars(text, MAX_MESSAGE_CHARS);
                }
            }
            // A failing command is normal agent work (a red test run), so it
            // is recorded but does not decide the outcome.
            "command_execution" => {
                let exit = item.get("exit_code").and_then(Value::as_i64);
                if exit.is_some_and(|code| code != 0) || matches!(status, "failed" | "declined") {
                    let command = truncate_chars(str_field(item, "command").unwrap_or(""), 200);
                    let message = match exit {
                        Some(code) => format!("command exited {code}: {command}"),
                        None => format!("command {status}: {command}"),
                    };
                    self.push_error(&message);
                }
            }
            "file_change" if status == "failed" => {
                let paths: Vec<&str> = item
                    .get("changes")
                    .and_then(Value::as_array)
                    .map(|changes| {
                        changes
                            .iter()
                            .filter_map(|c| c.get("path").and_then(Value::as_str))
                            .collect()
                    })
                    .unwrap_or_default();
                self.push_error(&format!("file change failed: {}", paths.join(", ")));
            }
            "mcp_tool_call" if status == "failed" => {
                let server = str_field(item, "server").unwrap_or("");
                let tool = str_field(item, "tool").unwrap_or("");
                let detail = item.get("error").map(error_text).unwrap_or_default();
                self.push_error(&format!("tool {server}/{tool} failed: {detail}"));
            }
            // Non-fatal notices (config warnings, model reroutes).
            "error" => {
                if let Some(message) = str_field(item, "message") {
                    self.push_error(message);
                }
            }
            _ => {}
        }
    }
}

/// Give a Codex worker in a git worktree write access to what `git
/// commit` writes there, as `--add-dir` options after `exec` in its
/// command line `argv`.
///
/// Codex's `workspace-write` sandbox mounts the `.git` of each writable
/// root read-only, and follows a worktree's `.git` file to its admin
/// folder (`<repo>/.git/worktrees/<name>`: its index, HEAD and logs), so
/// without this a worker cannot commit its work. The objects, refs and
/// logs of the repository's common folder take the commit and the branch
/// update. Nothing else of the repository (its config, its hooks) is
/// granted, and no configuration shared with other workers changes: the
/// grant is this worker's command line. A worktree whose `.git` file
/// cannot be read gets nothing, and git's own error says why.
pub fn grant_git_writes(argv: &mut Vec<String>, worktree: &Path) {
    let Some(at) = argv.iter().position(|a| a == "exec") else {
        return;
    };
    let mut extra = Vec::new();
    for dir in git_write_dirs(worktree) {
        let dir = dir.display().to_string();
        // Granted already (an earlier attempt's command line).
        if argv.windows(2).any(|w| w[0] == "--add-dir" && w[1] == dir) {
            continue;
        }
        extra.push("--add-dir".to_owned());
        extra.push(dir);
    }
    argv.splice(at + 1..at + 1, extra);
}

/// The folders `git commit` writes in worktree `worktree`: its admin
/// folder, and the common folder's `objects`, `refs` and `logs` (those
/// that exist).
fn git_write_dirs(worktree: &Path) -> Vec<PathBuf> {
    let Ok(pointer) = std::fs::read_to_string(worktree.join(".git")) else {
        return Vec::new();
    };
    let Some(admin) = pointer.trim().strip_prefix("gitdir:").map(str::trim) else {
        return Vec::new();
    };
    let admin = worktree.join(admin);
    let common = std::fs::read_to_string(admin.join("commondir"))
        .map(|c| admin.join(c.trim()))
        .unwrap_or_else(|_| admin.join("../.."));
    let common = std::fs::canonicalize(&common).unwrap_or(common);
    let mut dirs = vec![std::fs::canonicalize(&admin).unwrap_or(admin)];
    dirs.extend(
        ["objects", "refs", "logs"]
            .iter()
            .map(|part| common.join(part))
            .filter(|dir| dir.is_dir()),
    );
    dirs
}

/// Codex's rule for a turn that completed: it does not hold when no turn
/// was taken, when the model did nothing (no message, no command) and the
/// stream's last error is a rate limit or overload (Codex completes a
/// turn after its stream retries run out on some versions), or when no
/// token went in or out.
pub(super) fn refute(tracker: &Tracker) -> Option<String> {
    if let Some(why) = super::evidence::no_turn(tracker) {
        return Some(why);
    }
    if tracker.state.model_replies == 0 {
        if let Some(error) = tracker
            .errors
            .last()
            .filter(|e| super::evidence::says_rate_limited(e))
        {
            return Some(format!(
                "the model did nothing and the last error was: {error}"
            ));
        }
    }
    super::evidence::no_tokens(tracker)
}

/// `Reconnecting... 2/5 (stream disconnected before completion: ...)`:
/// the attempt, the most Codex makes, and what went wrong.
fn reconnecting(message: &str) -> Option<super::evidence::ApiRetry> {
    let rest = message.trim_start().strip_prefix("Reconnecting")?;
    let rest = rest.trim_start_matches('.').trim_start();
    let counts = rest.split_whitespace().next().unwrap_or("");
    let (attempt, max) = match counts.split_once('/') {
        Some((a, m)) => (a.parse().ok(), m.parse().ok()),
        None => (None, None),
    };
    let error = rest
        .split_once('(')
        .map(|(_, why)| truncate_chars(why.trim_end_matches(')').trim(), 80))
        .filter(|why| !why.is_empty());
    Some(super::evidence::ApiRetry {
        error,
        attempt,
        max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::stream::samples::*;
    use crate::manifest::types::EventFormat;

    #[test]
    fn the_command_line_asks_for_the_stream_read_here() {
        assert_command_line("codex", "codex", &["exec"], EventFormat::Codex);
        assert_command_line("codex", "codex", &["--json", "-"], EventFormat::Codex);
    }

    #[test]
    fn exit_codes_are_explained_as_documented() {
        assert!(explain_exit(1).is_some_and(|m| m.contains("worker.log")));
        assert!(explain_exit(2).is_some_and(|m| m.contains("command line")));
        assert_eq!(explain_exit(0), None);
        assert_eq!(explain_exit(41), None);
    }

    #[test]
    fn codex_success_stream_with_failed_command() {
        let t = run(EventFormat::Codex, CODEX_SUCCESS);
        assert_eq!(t.events, 12);
        assert_eq!(t.usage.turns, 1);
        assert_eq!(t.usage.input_tokens, 24763);
        assert_eq!(t.usage.cached_input_tokens, 24448);
        assert_eq!(t.usage.output_tokens, 1122);
        assert_eq!(t.usage.cost_usd, None);
        // The red test run is recorded but the run itself succeeded.
        assert_eq!(
            t.errors,
            vec!["command exited 101: bash -lc 'cargo test --quiet'"]
        );
        let outcome = t.outcome.expect("outcome");
        assert!(!outcome.is_error);
        assert_eq!(
            outcome.message.as_deref(),
            Some("Fixed trailing-comma handling in the parser; all 4 tests pass now.")
        );
    }

    #[test]
    fn codex_error_stream() {
        let t = run(EventFormat::Codex, CODEX_ERROR);
        assert_eq!(t.usage.turns, 1);
        assert_eq!(t.usage.input_tokens, 0);
        let outcome = t.outcome.expect("outcome");
        assert!(outcome.is_error);
        assert_eq!(
            outcome.message.as_deref(),
            Some("stream disconnected before completion: error sending request for url")
        );
        // Reroute notice, two retries, the fatal error once (turn.failed
        // repeats it).
        assert_eq!(t.errors.len(), 4, "{:?}", t.errors);
        assert!(t.errors[1].starts_with("Reconnecting... 1/5"));
    }

    #[test]
    fn codex_retry_then_completion_succeeds() {
        let mut t = Tracker::new(EventFormat::Codex);
        t.feed(r#"{"type":"turn.started"}"#);
        t.feed(r#"{"type":"error","message":"Reconnecting... 1/5 (stream disconnected)"}"#);
        t.feed(r#"{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"done"}}"#);
        t.feed(r#"{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":0,"output_tokens":5}}"#);
        assert_eq!(t.errors.len(), 1);
        let outcome = t.outcome.expect("outcome");
        assert!(!outcome.is_error);
        assert_eq!(outcome.message.as_deref(), Some("done"));
    }

    #[test]
    fn a_worktree_worker_may_write_what_git_commit_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        let admin = repo.join(".git/worktrees/task-a");
        for sub in ["objects", "refs", "logs"] {
            std::fs::create_dir_all(repo.join(".git").join(sub)).expect("mkdir");
        }
        std::fs::create_dir_all(&admin).expect("mkdir");
        std::fs::write(admin.join("commondir"), "../..\n").expect("commondir");
        let worktree = dir.path().join("wt/task-a");
        std::fs::create_dir_all(&worktree).expect("mkdir");
        std::fs::write(
            worktree.join(".git"),
            format!("gitdir: {}\n", admin.display()),
        )
        .expect(".git");
        let mut argv: Vec<String> = ["codex", "exec", "--json", "-"].map(String::from).to_vec();
        grant_git_writes(&mut argv, &worktree);
        let git = std::fs::canonicalize(repo.join(".git")).expect("canonical");
        let expected: Vec<String> = [
            "codex".to_owned(),
            "exec".to_owned(),
            "--add-dir".to_owned(),
            git.join("worktrees/task-a").display().to_string(),
            "--add-dir".to_owned(),
            git.join("objects").display().to_string(),
            "--add-dir".to_owned(),
            git.join("refs").display().to_string(),
            "--add-dir".to_owned(),
            git.join("logs").display().to_string(),
            "--json".to_owned(),
            "-".to_owned(),
        ]
        .to_vec();
        assert_eq!(argv, expected);
        grant_git_writes(&mut argv, &worktree);
        assert_eq!(argv, expected, "granted once");
        // Not a worktree: nothing is granted.
        let mut plain: Vec<String> = ["codex", "exec", "-"].map(String::from).to_vec();
        grant_git_writes(&mut plain, dir.path());
        assert_eq!(plain, ["codex", "exec", "-"]);
    }

    #[test]
    fn reconnects_are_retries() {
        let t = run(EventFormat::Codex, CODEX_ERROR);
        assert_eq!(t.api_retries, 2, "{:?}", t.errors);
        let retry = t.last_retry.expect("retry");
        assert_eq!(retry.attempt, Some(2));
        assert_eq!(retry.max, Some(5));
        assert!(
            retry.describe().starts_with("retrying: API "),
            "{}",
            retry.describe()
        );
    }

    #[test]
    fn a_success_claim_without_evidence_is_refuted() {
        assert_eq!(run(EventFormat::Codex, CODEX_SUCCESS).refuted(true), None);
        // A stream cut short after the thread started claims nothing: the
        // exit code and the plan decide.
        let cut = run(
            EventFormat::Codex,
            r#"{"type":"thread.started","thread_id":"t"}"#,
        );
        assert_eq!(cut.refuted(true), None);
        // Retries ran out on a rate limit, and the turn still "completed".
        let limited = run(
            EventFormat::Codex,
            r#"{"type":"thread.started","thread_id":"t"}
{"type":"turn.started"}
{"type":"error","message":"Reconnecting... 5/5 (exceeded retry limit, last status: 429 Too Many Requests)"}
{"type":"item.completed","item":{"id":"i0","type":"error","message":"Rate limit reached for gpt-5-codex"}}
{"type":"turn.completed","usage":{"input_tokens":0,"cached_input_tokens":0,"output_tokens":0}}"#,
        );
        assert!(!limited.outcome.as_ref().expect("outcome").is_error);
        let why = limited.refuted(true).expect("refuted");
        assert!(
            why.contains("the model did nothing") && why.contains("Rate limit"),
            "{why}"
        );
        // A turn with no tokens at all: the prompt never got there.
        let empty = run(
            EventFormat::Codex,
            r#"{"type":"turn.started"}
{"type":"item.completed","item":{"id":"i0","type":"agent_message","text":"ok"}}
{"type":"turn.completed","usage":{"input_tokens":0,"cached_input_tokens":0,"output_tokens":0}}"#,
        );
        assert!(empty
            .refuted(true)
            .is_some_and(|w| w.contains("the prompt never reached the model")));
    }

    #[test]
    fn codex_completion_after_error_keeps_the_error() {
        let mut t = Tracker::new(EventFormat::Codex);
        t.feed(r#"{"type":"turn.started"}"#);
        t.feed(r#"{"type":"error","message":"quota exceeded"}"#);
        t.feed(r#"{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":0,"output_tokens":5}}"#);
        assert_eq!(t.errors, vec!["quota exceeded"]);
        let outcome = t.outcome.expect("outcome");
        assert!(outcome.is_error);
        assert_eq!(outcome.message.as_deref(), Some("quota exceeded"));
        assert_eq!(t.usage.turns, 1);
        assert_eq!(t.usage.input_tokens, 10);
    }

    #[test]
    fn codex_turn_failed_with_string_error() {
        let mut t = Tracker::new(EventFormat::Codex);
        t.feed(r#"{"type":"turn.failed","error":"Provider quota exceeded"}"#);
        assert_eq!(t.usage.turns, 1);
        let outcome = t.outcome.expect("outcome");
        assert!(outcome.is_error);
        assert_eq!(outcome.message.as_deref(), Some("Provider quota exceeded"));
    }

    #[test]
    fn codex_usage_totals_do_not_double_count() {
        // turn.completed carries the thread's running total.
        let mut t = Tracker::new(EventFormat::Codex);
        t.feed(r#"{"type":"turn.started"}"#);
        t.feed(r#"{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":50,"output_tokens":10}}"#);
        t.feed(r#"{"type":"turn.started"}"#);
        t.feed(r#"{"type":"turn.completed","usage":{"input_tokens":250,"cached_input_tokens":120,"output_tokens":30}}"#);
        assert_eq!(t.usage.turns, 2);
        assert_eq!(t.usage.input_tokens, 250);
        assert_eq!(t.usage.cached_input_tokens, 120);
        assert_eq!(t.usage.output_tokens, 30);
    }
}
