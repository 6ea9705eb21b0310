//! Claude Code: its event stream and its exit codes.
//!
//! The command line is the `claude` entry of the built-in backend table
//! (`manifest::models::builtin_backends`): `claude -p --output-format
//! stream-json --verbose`, the prompt on stdin. The table sits in the
//! manifest layer because a manifest is checked against it as it loads; the
//! test at the bottom of this file holds it to the stream read here.
//!
//! The stream's shapes follow the Agent SDK message types (`system`/`init`,
//! `assistant` with `message.id` and `message.usage`, `user`, `result` with
//! `subtype`, `is_error`, `num_turns`, `total_cost_usd`, `usage`,
//! `modelUsage`, `errors`, `api_error_status`). Cursor's stream mirrors
//! these shapes, so [`super::cursor`] reads it with the same code.

use serde_json::{Map, Value};

use super::stream::{
    f64_field, str_field, truncate_chars, u64_any, u64_field, value_text, Tokens, Tracker,
    MAX_MESSAGE_CHARS,
};

/// The CLI's name in failure reasons.
pub const NAME: &str = "Claude Code";

/// Claude message ids remembered for de-duplication before the memory is
/// reset; a long run cannot grow the map without bound.
const MAX_TRACKED_MESSAGE_IDS: usize = 4096;

/// What a Claude Code exit code means. It documents none; it exits 1 on
/// any error it stops on (as the real-CLI tests see). An API error comes
/// with a final `result` event, which decides the task's status first, so
/// a bare 1 is a failure before that event (a refused flag, no login),
/// told on stderr.
pub fn explain_exit(code: i32) -> Option<&'static str> {
    match code {
        1 => Some("stopped on an error before its final event; worker.log has its message"),
        _ => None,
    }
}

impl Tracker {
    pub(super) fn claude_event(&mut self, kind: &str, event: &Map<String, Value>) {
        match kind {
            "assistant" => self.claude_assistant(event),
            "user" => {
                self.state.in_model_output = false;
                self.claude_tool_errors(event);
            }
            "result" => self.claude_result(event),
            "system" if str_field(event, "subtype") == Some("api_retry") => {
                self.note_retry(claude_retry(event));
            }
            _ => {}
        }
    }

    fn claude_assistant(&mut self, event: &Map<String, Value>) {
        let message = event.get("message").and_then(Value::as_object);
        let text = message.map(content_text).unwrap_or_default();
        // Claude Code makes up a `<synthetic>` message for its own errors;
        // only a model's message shows the prompt was answered.
        if message.and_then(|m| str_field(m, "model")) != Some("<synthetic>") {
            self.state.model_replies = self.state.model_replies.saturating_add(1);
        }
        // The SDK surfaces API failures as an `error` code on a synthetic
        // assistant message whose text carries the API's message.
        if let Some(code) = str_field(event, "error") {
            if text.is_empty() {
                self.push_error(code);
            } else {
                self.push_error(&format!("{code}: {text}"));
            }
        }
        if !text.is_empty() {
            self.state.last_text = truncate_chars(&text, MAX_MESSAGE_CHARS);
        }

        let id = message
            .and_then(|m| str_field(m, "id"))
            .filter(|id| !id.is_empty());
        let tokens = message
            .and_then(|m| m.get("usage"))
            .and_then(Value::as_object)
            .map(claude_tokens)
            .unwrap_or_default();
        match id {
            Some(id) => {
                if self.state.counted_messages.len() >= MAX_TRACKED_MESSAGE_IDS
                    && !self.state.counted_messages.contains_key(id)
                {
                    self.state.counted_messages.clear();
                }
                // Count each message once; later blocks of the same message
                // repeat its usage, possibly with a larger output count, so
                // only the growth is added.
                let seen = self.state.counted_messages.get(id).copied();
                if seen.is_none() {
                    self.usage.turns = self.usage.turns.saturating_add(1);
                }
                let before = seen.unwrap_or_default();
                let after = Tokens {
                    input: before.input.max(tokens.input),
                    output: before.output.max(tokens.output),
                    cached: before.cached.max(tokens.cached),
                };
                self.add_tokens(Tokens {
                    input: after.input - before.input,
                    output: after.output - before.output,
                    cached: after.cached - before.cached,
                });
                self.state.counted_messages.insert(id.to_string(), after);
            }
            None => {
                // Cursor's assistant events carry no id (and, with
                // --stream-partial-output, arrive as many fragments), so a
                // turn is a run of assistant events between other events.
                if !self.state.in_model_output {
                    self.usage.turns = self.usage.turns.saturating_add(1);
                }
                self.add_tokens(tokens);
            }
        }
        self.state.in_model_output = true;
    }

    /// Failed tool calls reported back to the model in a `user` message.
    fn claude_tool_errors(&mut self, event: &Map<String, Value>) {
        let Some(blocks) = event
            .get("message")
            .and_then(|m| m.get("content"))
            .and_then(Value::as_array)
        else {
            return;
        };
        let failures: Vec<String> = blocks
            .iter()
            .filter_map(Value::as_object)
            .filter(|b| str_field(b, "type") == Some("tool_result"))
            .filter(|b| b.get("is_error").and_then(Value::as_bool) == Some(true))
            .map(|b| {
                let text = b.get("content").map(value_text).unwrap_or_default();
                format!("tool failed: {text}")
            })
            .collect();
        for failure in failures {
            self.push_error(&failure);
        }
    }

    fn claude_result(&mut self, event: &Map<String, Value>) {
        self.state.in_model_output = false;
        self.state.claude_result_turns = u64_field(event, "num_turns");
        self.state.claude_api_error = match event.get("api_error_status") {
            None | Some(Value::Null) => None,
            Some(status) => Some(value_text(status)),
        };
        if let Some(turns) = u64_field(event, "num_turns") {
            self.usage.turns = self.usage.turns.max(turns);
        }
        // The result carries session totals. `modelUsage` breaks them down
        // per model and may include models missing from `usage`, so the
        // larger of the two (and of the running sum) is kept.
        let mut totals = event
            .get("usage")
            .and_then(Value::as_object)
            .map(claude_tokens)
            .unwrap_or_default();
        let mut model_cost = None;
        if let Some(models) = event.get("modelUsage").and_then(Value::as_object) {
            let mut sum = Tokens::default();
            for model in models.values().filter_map(Value::as_object) {
                let t = claude_tokens(model);
                sum.input = sum.input.saturating_add(t.input);
                sum.output = sum.output.saturating_add(t.output);
                sum.cached = sum.cached.saturating_add(t.cached);
                if let Some(cost) = f64_field(model, &["costUSD", "cost_usd"]) {
                    model_cost = Some(model_cost.unwrap_or(0.0) + cost);
                }
            }
            totals.input = totals.input.max(sum.input);
            totals.output = totals.output.max(sum.output);
            totals.cached = totals.cached.max(sum.cached);
        }
        self.max_tokens(totals);
        // Older CLI versions called the field `cost_usd`.
        if let Some(cost) = f64_field(event, &["total_cost_usd", "cost_usd"]).or(model_cost) {
            self.usage.cost_usd = Some(self.usage.cost_usd.map_or(cost, |c| c.max(cost)));
        }

        let subtype = str_field(event, "subtype").unwrap_or("");
        // An API failure after retries arrives as subtype "success" with
        // is_error true, so both are checked.
        let is_error = event.get("is_error").and_then(Value::as_bool) == Some(true)
            || subtype.starts_with("error");
        let result_text = event
            .get("result")
            .map(value_text)
            .filter(|t| !t.is_empty());
        let errors_text = event
            .get("errors")
            .map(value_text)
            .filter(|t| !t.is_empty());
        let message = if is_error {
            result_text
                .or(errors_text)
                .or_else(|| (!subtype.is_empty()).then(|| subtype.to_string()))
        } else {
            result_text.or_else(|| self.last_text())
        };
        if is_error {
            if let Some(message) = &message {
                self.push_error(message);
            }
        }
        self.set_outcome(is_error, message);
    }
}

/// Claude Code's rule for a `result` that says success: it does not hold
/// when the result carries an API error status or a rate-limit or
/// overload message (`API Error: 529 ...`, `Claude AI usage limit
/// reached`), when no model message came and `num_turns` is 0, or when
/// no token went in or out. Also used for Cursor, whose stream mirrors
/// Claude's but reports no tokens.
pub(super) fn refute(tracker: &Tracker) -> Option<String> {
    if let Some(status) = &tracker.state.claude_api_error {
        return Some(format!("its result carries API error status {status}"));
    }
    let message = tracker
        .outcome
        .as_ref()
        .and_then(|o| o.message.as_deref())
        .unwrap_or("");
    // The CLI's own error texts are short and come instead of an answer;
    // a long answer that mentions rate limits is the agent's work.
    if message.starts_with("API Error")
        || (message.chars().count() <= 300 && super::evidence::says_rate_limited(message))
    {
        return Some(format!("its result is an API error: {message}"));
    }
    if tracker.state.model_replies == 0 && tracker.state.claude_result_turns.unwrap_or(0) == 0 {
        return Some("no turn was taken".to_owned());
    }
    if tracker.format == crate::manifest::types::EventFormat::Claude {
        return super::evidence::no_tokens(tracker);
    }
    None
}

/// Claude Code's `{"type":"system","subtype":"api_retry","attempt":1,
/// "max_retries":10,"retry_delay_ms":500,"error_status":529,
/// "error":"rate_limit"}`; the status is preferred to the category, and
/// both may be missing or null.
fn claude_retry(event: &Map<String, Value>) -> super::evidence::ApiRetry {
    let status = match event.get("error_status") {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let error = status.or_else(|| {
        str_field(event, "error")
            .filter(|e| !e.is_empty() && *e != "unknown")
            .map(|e| truncate_chars(e, 80))
    });
    super::evidence::ApiRetry {
        error,
        attempt: u64_field(event, "attempt"),
        max: u64_field(event, "max_retries"),
    }
}

/// Claude-style usage: `usage` on messages and results (snake_case) and the
/// per-model `modelUsage` entries (camelCase). Both spellings are read
/// wherever either appears, since Cursor's shapes follow Claude's loosely.
fn claude_tokens(usage: &Map<String, Value>) -> Tokens {
    let input = u64_any(usage, &["input_tokens", "inputTokens"]).unwrap_or(0);
    let creation = u64_any(
        usage,
        &[
            "cache_creation_input_tokens",
            "cacheCreationInputTokens",
            "cacheWriteTokens",
        ],
    )
    .unwrap_or(0);
    let output = u64_any(usage, &["output_tokens", "outputTokens"]).unwrap_or(0);
    let cached = u64_any(
        usage,
        &[
            "cache_read_input_tokens",
            "cacheReadInputTokens",
            "cacheReadTokens",
        ],
    )
    .unwrap_or(0);
    Tokens {
        input: input.saturating_add(creation),
        output,
        cached,
    }
}

/// The text blocks of a Claude/Cursor message, joined.
fn content_text(message: &Map<String, Value>) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => {
            let texts: Vec<&str> = blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            texts.join("")
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::stream::samples::*;
    use crate::manifest::types::EventFormat;

    #[test]
    fn the_command_line_asks_for_the_stream_read_here() {
        assert_command_line(
            "claude",
            "claude",
            &["--output-format", "stream-json", "--verbose"],
            EventFormat::Claude,
        );
    }

    #[test]
    fn exit_codes_are_explained_as_documented() {
        assert!(explain_exit(1).is_some_and(|m| m.contains("worker.log")));
        assert_eq!(explain_exit(0), None);
        assert_eq!(explain_exit(3), None);
    }

    #[test]
    fn claude_success_stream() {
        let t = run(EventFormat::Claude, CLAUDE_SUCCESS);
        assert_eq!(t.events, 6);
        assert_eq!(t.unparsed_lines, 0);
        // num_turns (3) exceeds the two distinct assistant messages.
        assert_eq!(t.usage.turns, 3);
        assert_eq!(t.usage.input_tokens, 10 + 5590);
        assert_eq!(t.usage.output_tokens, 170);
        assert_eq!(t.usage.cached_input_tokens, 29278);
        assert_cost(&t.usage, 0.0391452);
        let outcome = t.outcome.expect("outcome");
        assert!(!outcome.is_error);
        assert_eq!(
            outcome.message.as_deref(),
            Some("All 12 tests pass; no changes were needed.")
        );
        assert!(t.errors.is_empty());
    }

    #[test]
    fn claude_usage_mid_run_counts_each_message_once() {
        let mut t = Tracker::new(EventFormat::Claude);
        // init plus both content blocks of the first message, which repeat
        // the same usage.
        for line in CLAUDE_SUCCESS.lines().take(3) {
            t.feed(line);
        }
        assert_eq!(t.usage.turns, 1);
        assert_eq!(t.usage.input_tokens, 4 + 5210);
        assert_eq!(t.usage.output_tokens, 112);
        assert_eq!(t.usage.cached_input_tokens, 12034);
        assert_eq!(t.usage.cost_usd, None);
        assert_eq!(t.outcome, None);
        for line in CLAUDE_SUCCESS.lines().skip(3).take(2) {
            t.feed(line);
        }
        assert_eq!(t.usage.turns, 2);
        assert_eq!(t.usage.input_tokens, 10 + 5590);
        assert_eq!(t.usage.output_tokens, 170);
        assert_eq!(t.usage.cached_input_tokens, 29278);
    }

    #[test]
    fn claude_api_error_reported_as_success_subtype_is_an_error() {
        let t = run(EventFormat::Claude, CLAUDE_ERROR);
        let outcome = t.outcome.expect("outcome");
        assert!(outcome.is_error);
        let message = outcome.message.expect("message");
        assert!(message.starts_with("API Error: 529"), "{message}");
        assert!(message.contains("Overloaded"));
        assert!(t.errors.iter().any(|e| e.starts_with("server_error: ")));
        assert_eq!(t.usage.turns, 1);
        assert_eq!(t.usage.input_tokens, 0);
        assert_eq!(t.usage.cost_usd, Some(0.0));
    }

    #[test]
    fn claude_error_subtype_without_is_error() {
        let mut t = Tracker::new(EventFormat::Claude);
        t.feed(
            r#"{"type":"result","subtype":"error_max_turns","duration_ms":10,"duration_api_ms":9,"num_turns":5,"session_id":"s","total_cost_usd":0.5,"usage":{"input_tokens":100,"output_tokens":20}}"#,
        );
        let outcome = t.outcome.expect("outcome");
        assert!(outcome.is_error);
        assert_eq!(outcome.message.as_deref(), Some("error_max_turns"));
        assert_eq!(t.usage.turns, 5);
        assert_eq!(t.usage.input_tokens, 100);
        assert_cost(&t.usage, 0.5);
    }

    #[test]
    fn claude_error_result_uses_errors_list() {
        let mut t = Tracker::new(EventFormat::Claude);
        t.feed(
            r#"{"type":"result","subtype":"error_during_execution","is_error":true,"num_turns":1,"errors":["Tool permission stream closed"]}"#,
        );
        let outcome = t.outcome.expect("outcome");
        assert!(outcome.is_error);
        assert_eq!(
            outcome.message.as_deref(),
            Some("Tool permission stream closed")
        );
    }

    #[test]
    fn claude_totals_never_lower_running_usage() {
        let mut t = Tracker::new(EventFormat::Claude);
        t.feed(
            r#"{"type":"assistant","message":{"id":"m1","content":[],"usage":{"input_tokens":500,"output_tokens":40,"cache_read_input_tokens":900}}}"#,
        );
        t.feed(
            r#"{"type":"result","subtype":"success","is_error":false,"num_turns":0,"result":"ok","usage":{"input_tokens":100,"output_tokens":50,"cache_read_input_tokens":0}}"#,
        );
        assert_eq!(t.usage.turns, 1);
        assert_eq!(t.usage.input_tokens, 500);
        assert_eq!(t.usage.output_tokens, 50);
        assert_eq!(t.usage.cached_input_tokens, 900);
    }

    /// Recorded shapes of the runs the issue names: a rate-limited run
    /// that ends `subtype: success` with `is_error: false`, one whose
    /// prompt never reached the model, and one with no turn.
    #[test]
    fn a_success_claim_without_evidence_is_refuted() {
        let rate_limited = run(
            EventFormat::Claude,
            r#"{"type":"system","subtype":"init","model":"claude-sonnet-4-5"}
{"type":"assistant","message":{"id":"m0","model":"<synthetic>","role":"assistant","content":[{"type":"text","text":"Claude AI usage limit reached|1760000000"}],"usage":{"input_tokens":0,"output_tokens":0}}}
{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"Claude AI usage limit reached|1760000000","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0}}"#,
        );
        assert!(!rate_limited.outcome.as_ref().expect("outcome").is_error);
        let why = rate_limited.refuted(true).expect("refuted");
        assert!(why.starts_with("Claude Code claimed success, but its result is an API error: Claude AI usage limit"), "{why}");

        let status = run(
            EventFormat::Claude,
            r#"{"type":"result","subtype":"success","is_error":false,"num_turns":2,"result":"Done.","api_error_status":429,"usage":{"input_tokens":5,"output_tokens":5}}"#,
        );
        assert!(status
            .refuted(true)
            .is_some_and(|w| w.contains("API error status 429")));

        let no_turn = run(
            EventFormat::Claude,
            r#"{"type":"result","subtype":"success","is_error":false,"num_turns":0,"result":"","usage":{"input_tokens":0,"output_tokens":0}}"#,
        );
        assert!(no_turn
            .refuted(true)
            .is_some_and(|w| w.ends_with("no turn was taken")));

        let unanswered = run(
            EventFormat::Claude,
            r#"{"type":"assistant","message":{"id":"m1","model":"claude-sonnet-4-5","content":[{"type":"text","text":"ok"}]}}
{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"ok","usage":{"input_tokens":0,"output_tokens":0}}"#,
        );
        assert!(unanswered
            .refuted(true)
            .is_some_and(|w| w.contains("the prompt never reached the model")));

        // A real run, and a long answer about rate limits, stand.
        assert_eq!(run(EventFormat::Claude, CLAUDE_SUCCESS).refuted(true), None);
        let about = format!(
            r#"{{"type":"assistant","message":{{"id":"m1","model":"claude-sonnet-4-5","content":[],"usage":{{"input_tokens":9,"output_tokens":9}}}}}}
{{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"Added a rate limit to the API. {}"}}"#,
            "All tests pass. ".repeat(30)
        );
        assert_eq!(run(EventFormat::Claude, &about).refuted(true), None);
    }

    #[test]
    fn api_retries_are_read_as_retries_not_errors() {
        let t = run(
            EventFormat::Claude,
            r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":549.5,"error_status":529,"error":"rate_limit"}
{"type":"system","subtype":"api_retry","attempt":3,"max_retries":10,"retry_delay_ms":2000,"error_status":null,"error":"unknown"}"#,
        );
        assert_eq!(t.api_retries, 2);
        let retry = t.last_retry.expect("retry");
        assert_eq!(retry.describe(), "retrying, attempt 3/10");
        assert!(t.errors.is_empty());
        assert_eq!(t.outcome, None);
        let first = run(
            EventFormat::Claude,
            r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"error_status":529,"error":"rate_limit"}"#,
        );
        assert_eq!(
            first.last_retry.map(|r| r.describe()).as_deref(),
            Some("retrying: API 529, attempt 1/10")
        );
    }

    #[test]
    fn claude_tool_failures_are_recorded_without_outcome() {
        let mut t = Tracker::new(EventFormat::Claude);
        t.feed(
            r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","is_error":true,"content":"File has not been read yet."}]}}"#,
        );
        assert_eq!(t.errors, vec!["tool failed: File has not been read yet."]);
        assert_eq!(t.outcome, None);
    }
}
