//! opencode (`opencode run`): its event stream and its exit codes.
//!
//! The command line is the `opencode` entry of the built-in backend table
//! (`manifest::models::builtin_backends`): `opencode run --format json
//! --auto <prompt>`; see [`super::claude`] for why the table is not here.
//!
//! The stream's shapes follow `packages/opencode/src/cli/cmd/run.ts` and the
//! SDK's `StepFinishPart` (`step_start`, `text`, `tool_use`, `step_finish`
//! with `part.tokens` and `part.cost`, `error` with
//! `error.name`/`error.data`).

use serde_json::{Map, Value};

use super::stream::{
    error_text, f64_field, str_field, truncate_chars, u64_any, Tokens, Tracker, MAX_MESSAGE_CHARS,
};

/// The CLI's name in failure reasons.
pub const NAME: &str = "opencode";

/// What an `opencode run` exit code means. It documents none; it exits 1
/// on an error it stops on, such as an API error once it gives up
/// retrying (as the real-CLI tests see).
pub fn explain_exit(code: i32) -> Option<&'static str> {
    match code {
        1 => Some("stopped on an error; worker.log has its message"),
        _ => None,
    }
}

impl Tracker {
    pub(super) fn opencode_event(&mut self, kind: &str, event: &Map<String, Value>) {
        let part = event.get("part").and_then(Value::as_object);
        match kind {
            "text" => {
                self.state.model_replies = self.state.model_replies.saturating_add(1);
                if let Some(text) = part
                    .and_then(|p| str_field(p, "text"))
                    .filter(|t| !t.is_empty())
                {
                    self.state.last_text = truncate_chars(text, MAX_MESSAGE_CHARS);
                }
            }
            "tool_use" => {
                self.state.model_replies = self.state.model_replies.saturating_add(1);
                if let Some(part) = part {
                    self.opencode_tool(part);
                }
            }
            "step_finish" => {
                let Some(part) = part else { return };
                self.usage.turns = self.usage.turns.saturating_add(1);
                if let Some(tokens) = part.get("tokens").and_then(Value::as_object) {
                    // opencode's `input` excludes cache reads and writes and
                    // its `output` excludes reasoning (session usage code), so
                    // writes are added to input and reasoning to output.
                    let cache = tokens.get("cache").and_then(Value::as_object);
                    let read = cache.and_then(|c| u64_any(c, &["read"])).unwrap_or(0);
                    let write = cache.and_then(|c| u64_any(c, &["write"])).unwrap_or(0);
                    let input = u64_any(tokens, &["input"]).unwrap_or(0);
                    let output = u64_any(tokens, &["output"]).unwrap_or(0);
                    let reasoning = u64_any(tokens, &["reasoning"]).unwrap_or(0);
                    self.add_tokens(Tokens {
                        input: input.saturating_add(write),
                        output: output.saturating_add(reasoning),
                        cached: read,
                    });
                }
                if let Some(cost) = f64_field(part, &["cost"]) {
                    self.usage.cost_usd = Some(self.usage.cost_usd.unwrap_or(0.0) + cost);
                }
                // "stop" ends the agent's work; other reasons ("tool-calls")
                // mean another step follows.
                if str_field(part, "reason") == Some("stop") {
                    self.opencode_finished();
                }
            }
            // Emitted when the session goes idle (newer versions).
            "done" => self.opencode_finished(),
            "error" => {
                // `{"error":{"name":..., "data":{"message":...}}}`, as
                // forwarded from the session.error event.
                let message = event
                    .get("error")
                    .map(error_text)
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "error".to_string());
                self.push_error(&message);
                self.set_outcome(true, Some(message));
            }
            _ => {}
        }
    }

    fn opencode_tool(&mut self, part: &Map<String, Value>) {
        let tool = str_field(part, "tool").unwrap_or("");
        let Some(state) = part.get("state").and_then(Value::as_object) else {
            return;
        };
        match str_field(state, "status") {
            Some("error") => {
                let detail = state.get("error").map(error_text).unwrap_or_default();
                self.push_error(&format!("tool {tool} failed: {detail}"));
            }
            Some("completed") => {
                // The bash tool reports the command's exit status in
                // metadata; like Codex's, a failing command is recorded only.
                let exit = state
                    .get("metadata")
                    .and_then(|m| m.get("exit"))
                    .and_then(Value::as_i64);
                if let Some(code) = exit.filter(|code| *code != 0) {
                    let input = state.get("input").and_then(Value::as_object);
                    let command = input.and_then(|i| str_field(i, "command")).unwrap_or("");
                    let command = truncate_chars(command, 200);
                    self.push_error(&format!("command exited {code}: {command}"));
                }
            }
            _ => {}
        }
    }

    fn opencode_finished(&mut self) {
        if !self.outcome.as_ref().is_some_and(|o| o.is_error) {
            let text = self.last_text();
            self.set_outcome(false, text);
        }
    }
}

/// opencode's rule for a run that finished without an error: it does not
/// hold when no step finished and the model said nothing (no turn), or
/// when its steps count no token in or out.
pub(super) fn refute(tracker: &Tracker) -> Option<String> {
    super::evidence::no_turn(tracker).or_else(|| super::evidence::no_tokens(tracker))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::stream::samples::*;
    use crate::agents::stream::Usage;
    use crate::manifest::types::EventFormat;

    #[test]
    fn a_success_claim_without_evidence_is_refuted() {
        assert_eq!(
            run(EventFormat::Opencode, OPENCODE_SUCCESS).refuted(true),
            None
        );
        let nothing = run(EventFormat::Opencode, r#"{"type":"done"}"#);
        assert_eq!(
            nothing.refuted(true).as_deref(),
            Some("opencode claimed success, but no turn was taken")
        );
        let empty = run(
            EventFormat::Opencode,
            r#"{"type":"step_finish","part":{"reason":"stop","tokens":{"input":0,"output":0,"reasoning":0,"cache":{"read":0,"write":0}},"cost":0}}"#,
        );
        assert!(!empty.outcome.as_ref().expect("outcome").is_error);
        assert!(empty
            .refuted(true)
            .is_some_and(|w| w.contains("the prompt never reached the model")));
    }

    #[test]
    fn the_command_line_asks_for_the_stream_read_here() {
        assert_command_line(
            "opencode",
            "opencode",
            &["--format", "json"],
            EventFormat::Opencode,
        );
    }

    #[test]
    fn exit_codes_are_explained_as_documented() {
        assert!(explain_exit(1).is_some_and(|m| m.contains("worker.log")));
        assert_eq!(explain_exit(2), None);
    }

    #[test]
    fn opencode_success_stream() {
        let t = run(EventFormat::Opencode, OPENCODE_SUCCESS);
        assert_eq!(t.events, 9);
        assert_eq!(t.usage.turns, 3);
        assert_eq!(t.usage.input_tokens, (1520 + 830) + 310 + 120);
        assert_eq!(t.usage.output_tokens, (210 + 64) + 95 + 48);
        assert_eq!(t.usage.cached_input_tokens, 10240 + 11904 + 12210);
        assert_cost(&t.usage, 0.0123 + 0.0071 + 0.0042);
        let outcome = t.outcome.expect("outcome");
        assert!(!outcome.is_error);
        assert_eq!(
            outcome.message.as_deref(),
            Some("Tests pass; `parse` was already public, so no edit was needed.")
        );
        assert_eq!(
            t.errors,
            vec!["tool edit failed: oldString not found in content"]
        );
    }

    #[test]
    fn opencode_error_stream() {
        let t = run(EventFormat::Opencode, OPENCODE_ERROR);
        assert_eq!(t.usage, Usage::default());
        let outcome = t.outcome.expect("outcome");
        assert!(outcome.is_error);
        assert_eq!(
            outcome.message.as_deref(),
            Some("Insufficient balance. Please top up your account to continue.")
        );
        assert_eq!(t.errors.len(), 1);
    }

    #[test]
    fn opencode_error_then_stop_stays_an_error() {
        let mut t = Tracker::new(EventFormat::Opencode);
        t.feed(r#"{"type":"error","error":{"name":"ProviderAuthError"}}"#);
        t.feed(r#"{"type":"step_finish","part":{"type":"step-finish","reason":"stop","cost":0,"tokens":{"input":1,"output":1,"reasoning":0,"cache":{"read":0,"write":0}}}}"#);
        let outcome = t.outcome.expect("outcome");
        assert!(outcome.is_error);
        assert_eq!(outcome.message.as_deref(), Some("ProviderAuthError"));
        assert_eq!(t.usage.turns, 1);
    }
}
