//! Gemini CLI: its event stream and its exit codes.
//!
//! The command line is the `gemini` entry of the built-in backend table
//! (`manifest::models::builtin_backends`): `gemini --skip-trust
//! --output-format stream-json --prompt <prompt>`; see [`super::claude`]
//! for why the table is not here.
//!
//! The stream's shapes follow `packages/core/src/output/types.ts` (`init`,
//! `message`, `tool_use`, `tool_result`, `error` with `severity`, `result`
//! with `status` and `stats`).

use serde_json::{Map, Value};

use super::stream::{
    error_text, str_field, truncate_chars, u64_any, value_text, Tokens, Tracker, MAX_MESSAGE_CHARS,
};

/// The CLI's name in failure reasons.
pub const NAME: &str = "Gemini CLI";

/// What a Gemini CLI exit code means: its headless-mode documentation
/// lists 1, 42 and 53, and its `FatalError` classes
/// (`packages/core/src/utils/errors.ts`) give the rest.
pub fn explain_exit(code: i32) -> Option<&'static str> {
    match code {
        1 => Some("a general or API error; worker.log has its message"),
        // Named with the variable most setups miss: a key given only to
        // dispatch's shell, or a typo in the manifest's `env:`.
        41 => Some(
            "no usable authentication (FatalAuthenticationError): set GEMINI_API_KEY in the manifest's `env:` or dispatch's environment, or sign in by running `gemini` once",
        ),
        42 => Some("an invalid prompt or argument (FatalInputError)"),
        44 => Some("its sandbox failed (FatalSandboxError)"),
        52 => Some("its settings are invalid (FatalConfigError)"),
        53 => Some("it reached its turn limit (FatalTurnLimitedError)"),
        54 => Some("a tool failed fatally (FatalToolExecutionError)"),
        55 => Some("it does not trust the folder (FatalUntrustedWorkspaceError)"),
        130 => Some("it was cancelled (FatalCancellationError)"),
        _ => None,
    }
}

impl Tracker {
    pub(super) fn gemini_event(&mut self, kind: &str, event: &Map<String, Value>) {
        match kind {
            "message" => {
                if str_field(event, "role") != Some("assistant") {
                    self.state.in_model_output = false;
                    return;
                }
                let content = event.get("content").map(value_text).unwrap_or_default();
                self.gemini_model_output();
                // Assistant text streams as deltas; the current turn's text
                // is accumulated (bounded) for the outcome message.
                if self.state.last_text.chars().count() < MAX_MESSAGE_CHARS {
                    self.state.last_text.push_str(&content);
                    self.state.last_text = truncate_chars(&self.state.last_text, MAX_MESSAGE_CHARS);
                }
            }
            "tool_use" => self.gemini_model_output(),
            "tool_result" => {
                self.state.in_model_output = false;
                if str_field(event, "status") == Some("error") {
                    let tool = str_field(event, "tool_id").unwrap_or("");
                    let detail = event
                        .get("error")
                        .map(error_text)
                        .filter(|d| !d.is_empty())
                        .or_else(|| str_field(event, "output").map(str::to_string))
                        .unwrap_or_default();
                    self.push_error(&format!("tool {tool} failed: {detail}"));
                }
            }
            "error" => {
                let message = str_field(event, "message").unwrap_or("error").to_string();
                if str_field(event, "severity") == Some("warning") {
                    self.push_error(&format!("warning: {message}"));
                } else {
                    self.push_error(&message);
                    // Provisional: the `result` event that normally follows
                    // decides the outcome.
                    self.set_outcome(true, Some(message));
                }
            }
            "result" => {
                self.state.in_model_output = false;
                if let Some(stats) = event.get("stats").and_then(Value::as_object) {
                    let totals = Tokens {
                        input: u64_any(stats, &["input_tokens"]).unwrap_or(0),
                        output: u64_any(stats, &["output_tokens"]).unwrap_or(0),
                        cached: u64_any(stats, &["cached", "cached_tokens"]).unwrap_or(0),
                    };
                    self.max_tokens(totals);
                }
                let is_error = str_field(event, "status") != Some("success");
                let message = if is_error {
                    event
                        .get("error")
                        .map(error_text)
                        .filter(|m| !m.is_empty())
                        .or_else(|| self.outcome.as_ref().and_then(|o| o.message.clone()))
                        .or_else(|| self.errors.last().cloned())
                } else {
                    self.last_text()
                };
                self.set_outcome(is_error, message);
            }
            _ => {}
        }
    }

    /// Gemini's stats have no turn count, so a turn is counted each time the
    /// model starts producing output (text or tool calls) after the prompt or
    /// after tool results.
    fn gemini_model_output(&mut self) {
        self.state.model_replies = self.state.model_replies.saturating_add(1);
        if !self.state.in_model_output {
            self.usage.turns = self.usage.turns.saturating_add(1);
            self.state.last_text.clear();
        }
        self.state.in_model_output = true;
    }
}

/// Gemini CLI's rule for a `result` with `status: success`: it does not
/// hold when the model produced nothing (no turn), when it produced
/// nothing and the stream's last error (its quota and 429 warnings) is a
/// rate limit, or when its stats count no token in or out.
pub(super) fn refute(tracker: &Tracker) -> Option<String> {
    if tracker.state.model_replies == 0 {
        if let Some(error) = tracker
            .errors
            .last()
            .filter(|e| super::evidence::says_rate_limited(e))
        {
            return Some(format!(
                "the model said nothing and the last error was: {error}"
            ));
        }
    }
    super::evidence::no_turn(tracker).or_else(|| super::evidence::no_tokens(tracker))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::stream::samples::*;
    use crate::manifest::types::EventFormat;

    #[test]
    fn a_success_claim_without_evidence_is_refuted() {
        assert_eq!(run(EventFormat::Gemini, GEMINI_SUCCESS).refuted(true), None);
        let quota = run(
            EventFormat::Gemini,
            r#"{"type":"init","session_id":"s","model":"gemini-2.5-pro"}
{"type":"error","severity":"warning","message":"Quota exceeded for quota metric 'Generate Content API requests per minute'"}
{"type":"result","status":"success","stats":{"total_tokens":0,"input_tokens":0,"output_tokens":0}}"#,
        );
        assert!(quota.refuted(true).is_some_and(
            |w| w.starts_with("Gemini CLI claimed success, but the model said nothing")
        ));
        let silent = run(
            EventFormat::Gemini,
            r#"{"type":"result","status":"success","stats":{"input_tokens":0,"output_tokens":0}}"#,
        );
        assert!(silent
            .refuted(true)
            .is_some_and(|w| w.ends_with("no turn was taken")));
    }

    #[test]
    fn the_command_line_asks_for_the_stream_read_here() {
        assert_command_line(
            "gemini",
            "gemini",
            &["--output-format", "stream-json"],
            EventFormat::Gemini,
        );
        // Without it Gemini CLI exits 55 in a folder it does not trust.
        assert_command_line("gemini", "gemini", &["--skip-trust"], EventFormat::Gemini);
    }

    #[test]
    fn exit_codes_are_explained_as_documented() {
        let explained = |code| explain_exit(code).unwrap_or_default();
        assert!(explained(41).contains("no usable authentication"));
        assert!(
            explained(41).contains("GEMINI_API_KEY"),
            "names the credential"
        );
        assert!(explained(42).contains("FatalInputError"));
        assert!(explained(44).contains("sandbox"));
        assert!(explained(52).contains("settings"));
        assert!(explained(53).contains("turn limit"));
        assert!(explained(55).contains("trust"));
        assert_eq!(explain_exit(0), None);
        assert_eq!(explain_exit(43), None);
    }

    #[test]
    fn gemini_success_stream() {
        let t = run(EventFormat::Gemini, GEMINI_SUCCESS);
        assert_eq!(t.events, 13);
        // Four model round trips: text+read, replace, replace, final text.
        assert_eq!(t.usage.turns, 4);
        assert_eq!(t.usage.input_tokens, 17892);
        assert_eq!(t.usage.output_tokens, 651);
        assert_eq!(t.usage.cached_input_tokens, 9120);
        assert_eq!(t.usage.cost_usd, None);
        let outcome = t.outcome.expect("outcome");
        assert!(!outcome.is_error);
        assert_eq!(
            outcome.message.as_deref(),
            Some("Added the `--verbose` flag to `Args`.")
        );
        assert_eq!(t.errors.len(), 1);
        assert!(t.errors[0].contains("0 occurrences found"));
    }

    #[test]
    fn gemini_error_stream() {
        let t = run(EventFormat::Gemini, GEMINI_ERROR);
        assert_eq!(t.usage.turns, 1);
        assert_eq!(t.usage.input_tokens, 8904);
        assert_eq!(t.usage.output_tokens, 216);
        let outcome = t.outcome.expect("outcome");
        assert!(outcome.is_error);
        assert!(outcome
            .message
            .as_deref()
            .unwrap()
            .starts_with("The model returned an empty text response."));
        assert_eq!(t.errors.len(), 2);
        assert!(t.errors[0].starts_with("warning: "));
    }

    #[test]
    fn gemini_result_error_field() {
        let mut t = Tracker::new(EventFormat::Gemini);
        t.feed(r#"{"type":"result","status":"error","error":{"type":"FatalAuthenticationError","message":"auth failed"}}"#);
        let outcome = t.outcome.expect("outcome");
        assert!(outcome.is_error);
        assert_eq!(outcome.message.as_deref(), Some("auth failed"));
    }
}
