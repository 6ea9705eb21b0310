//! Cursor's `agent` CLI: its event stream and its exit codes.
//!
//! The command line is the `cursor` entry of the built-in backend table
//! (`manifest::models::builtin_backends`): `agent --print --force
//! --output-format stream-json`, the prompt as the last argument; see
//! [`super::claude`] for why the table is not here.
//!
//! The stream follows the CLI's published output-format reference (the CLI
//! itself is closed source): Claude Code's shapes, read by
//! [`super::claude`], plus `tool_call` events, read here. Its assistant
//! events carry no message id, which the Claude code handles.

use serde_json::{Map, Value};

use super::stream::{str_field, value_text, Tracker};

/// The CLI's name in failure reasons.
pub const NAME: &str = "Cursor's agent CLI";

/// What a Cursor `agent` exit code means. Its documentation says only that
/// a failed run exits non-zero, so no code is explained.
pub fn explain_exit(_code: i32) -> Option<&'static str> {
    None
}

impl Tracker {
    /// Cursor's stream is Claude's shapes plus `tool_call` events.
    pub(super) fn cursor_event(&mut self, kind: &str, event: &Map<String, Value>) {
        match kind {
            // Cursor reports tools as separate events rather than content
            // blocks; they end the current model output like a tool result.
            "tool_call" => {
                self.state.in_model_output = false;
                if str_field(event, "subtype") == Some("completed") {
                    self.cursor_tool_error(event);
                }
            }
            _ => self.claude_event(kind, event),
        }
    }

    /// Cursor's `tool_call` completion nests the result under the tool's own
    /// key (`{"tool_call":{"shellToolCall":{"result":{...}}}}`); success is
    /// `result.success`. Failure shapes are not documented, so `error` and
    /// `rejected` results are both recorded (an assumption).
    fn cursor_tool_error(&mut self, event: &Map<String, Value>) {
        let Some(calls) = event.get("tool_call").and_then(Value::as_object) else {
            return;
        };
        let mut failures = Vec::new();
        for (name, call) in calls {
            let Some(result) = call.get("result").and_then(Value::as_object) else {
                continue;
            };
            for key in ["error", "rejected", "failure"] {
                if let Some(detail) = result.get(key) {
                    failures.push(format!("{name} {key}: {}", value_text(detail)));
                }
            }
        }
        for failure in failures {
            self.push_error(&failure);
        }
    }
}

/// Cursor's rule is Claude Code's (its stream has Claude's shapes), less
/// the token check: Cursor reports no tokens.
pub(super) fn refute(tracker: &Tracker) -> Option<String> {
    super::claude::refute(tracker)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::stream::samples::*;
    use crate::manifest::types::EventFormat;

    #[test]
    fn a_success_claim_without_evidence_is_refuted() {
        assert_eq!(run(EventFormat::Cursor, CURSOR_SUCCESS).refuted(true), None);
        let limited = run(
            EventFormat::Cursor,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"You've hit your usage limit","duration_ms":5}"#,
        );
        assert!(limited
            .refuted(true)
            .is_some_and(|w| w.starts_with("Cursor") && w.contains("usage limit")));
        let silent = run(
            EventFormat::Cursor,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"","duration_ms":5}"#,
        );
        assert!(silent
            .refuted(true)
            .is_some_and(|w| w.ends_with("no turn was taken")));
    }

    #[test]
    fn the_command_line_asks_for_the_stream_read_here() {
        assert_command_line(
            "cursor",
            "agent",
            &["--output-format", "stream-json"],
            EventFormat::Cursor,
        );
    }

    #[test]
    fn a_tool_call_ends_a_run_of_fragments() {
        let mut t = Tracker::new(EventFormat::Cursor);
        let fragment = r#"{"type":"assistant","message":{"content":[{"type":"text","text":"x"}]}}"#;
        t.feed(fragment);
        t.feed(r#"{"type":"tool_call","subtype":"started","tool_call":{}}"#);
        t.feed(fragment);
        assert_eq!(t.usage.turns, 2);
    }

    #[test]
    fn cursor_success_stream() {
        let t = run(EventFormat::Cursor, CURSOR_SUCCESS);
        assert_eq!(t.events, 9);
        assert_eq!(t.usage.turns, 2);
        assert_eq!(t.usage.input_tokens, 0);
        assert_eq!(t.usage.cost_usd, None);
        let outcome = t.outcome.expect("outcome");
        assert!(!outcome.is_error);
        assert_eq!(
            outcome.message.as_deref(),
            Some("I'll read the README first.Added a Usage section to README.md.")
        );
        assert!(t.errors.is_empty());
    }

    #[test]
    fn cursor_stream_cut_short_has_no_outcome() {
        // On failure Cursor exits non-zero and may end the stream without a
        // result event; the caller falls back to the exit status.
        let t = run(EventFormat::Cursor, CURSOR_ERROR);
        assert_eq!(t.outcome, None);
        assert_eq!(t.usage.turns, 1);
        assert_eq!(t.errors.len(), 1);
        assert!(t.errors[0].starts_with("shellToolCall rejected: "));
    }

    #[test]
    fn cursor_partial_output_fragments_are_one_turn() {
        let mut t = Tracker::new(EventFormat::Cursor);
        for piece in ["Hel", "lo", "!"] {
            t.feed(&format!(
                r#"{{"type":"assistant","message":{{"role":"assistant","content":[{{"type":"text","text":"{piece}"}}]}}}}"#
            ));
        }
        assert_eq!(t.usage.turns, 1);
        t.feed(r#"{"type":"result","subtype":"success","is_error":true,"result":"boom","duration_ms":5}"#);
        let outcome = t.outcome.expect("outcome");
        assert!(outcome.is_error);
        assert_eq!(outcome.message.as_deref(), Some("boom"));
    }
}
