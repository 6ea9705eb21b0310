//! A CLI's claim of success, checked against what its stream showed, and
//! the API retries it reports on the way.
//!
//! An agent CLI can end with a clean exit and a final event that says
//! `success` when nothing was done: Claude Code has ended a rate-limited
//! run with `subtype: success` and exit 0, and runs whose prompt never
//! reached a model went unnoticed for days. So a claim is taken only with
//! evidence: a turn taken, tokens spent, no rate-limit or overload message
//! in place of an answer. What counts as evidence differs per stream, so
//! each CLI's rule is in its own file (`refute` in `claude.rs`,
//! `codex.rs`, ...); this file holds what they share.
//!
//! The same streams say when the CLI retries an API call (Claude Code's
//! `api_retry` events, Codex's `Reconnecting... 2/5`): a worker that is
//! retrying is alive, not stalled, and people watching want to see why it
//! is slow.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::stream::Tracker;
use crate::manifest::types::EventFormat;

/// An API call the CLI is retrying, as its stream said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApiRetry {
    /// The HTTP status or the API's error name (`529`, `rate_limit`), when
    /// the CLI says.
    pub error: Option<String>,
    /// Which retry this is.
    pub attempt: Option<u64>,
    /// How many the CLI makes before it gives up.
    pub max: Option<u64>,
}

impl ApiRetry {
    /// `retrying: API 529, attempt 3/10`.
    pub fn describe(&self) -> String {
        let mut text = String::from("retrying");
        if let Some(error) = &self.error {
            text.push_str(&format!(": API {error}"));
        }
        match (self.attempt, self.max) {
            (Some(attempt), Some(max)) => text.push_str(&format!(", attempt {attempt}/{max}")),
            (Some(attempt), None) => text.push_str(&format!(", attempt {attempt}")),
            _ => {}
        }
        text
    }
}

impl Tracker {
    /// Why the CLI's claim of success does not hold, by its CLI's rule;
    /// `None` when the evidence bears it out, or when it claims nothing.
    /// The claim is the CLI's final event saying success; aider, which
    /// prints none, claims it with a clean exit. A reported error, or a
    /// stream cut short without its final event, is no claim: the error,
    /// the exit code and the plan decide those.
    pub fn refuted(&self, exited_cleanly: bool) -> Option<String> {
        let claimed = match &self.outcome {
            Some(outcome) => !outcome.is_error,
            None => exited_cleanly && self.format == EventFormat::Aider,
        };
        if !claimed {
            return None;
        }
        let (name, why) = match self.format {
            EventFormat::Claude => (super::claude::NAME, super::claude::refute(self)),
            EventFormat::Codex => (super::codex::NAME, super::codex::refute(self)),
            EventFormat::Gemini => (super::gemini::NAME, super::gemini::refute(self)),
            EventFormat::Opencode => (super::opencode::NAME, super::opencode::refute(self)),
            EventFormat::Cursor => (super::cursor::NAME, super::cursor::refute(self)),
            EventFormat::Aider => (super::aider::NAME, super::aider::refute(self)),
            EventFormat::None => return None,
        };
        why.map(|why| format!("{name} claimed success, but {why}"))
    }

    /// A retry the stream reported: counted, kept as the latest.
    pub(super) fn note_retry(&mut self, retry: ApiRetry) {
        self.api_retries = self.api_retries.saturating_add(1);
        self.last_retry = Some(retry);
    }
}

/// Whether an API's or CLI's message says the request was refused for a
/// rate limit, a quota or an overload: the words the APIs and CLIs use,
/// never a bare number (an agent's answer may well mention 429).
pub(super) fn says_rate_limited(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    [
        "rate limit",
        "rate_limit",
        "ratelimit",
        "overloaded",
        "usage limit",
        "hit your limit",
        "quota",
        "resource_exhausted",
        "too many requests",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// The rule every stream with token counts shares: a run that claims
/// success with no tokens in or out never had its prompt answered.
pub(super) fn no_tokens(tracker: &Tracker) -> Option<String> {
    let usage = &tracker.usage;
    (usage.input_tokens == 0 && usage.cached_input_tokens == 0 && usage.output_tokens == 0)
        .then(|| "the prompt never reached the model (no tokens in or out)".to_owned())
}

/// The rule for a run with no turn at all.
pub(super) fn no_turn(tracker: &Tracker) -> Option<String> {
    (tracker.usage.turns == 0 && tracker.state.model_replies == 0)
        .then(|| "no turn was taken".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_reads_as_people_say_it() {
        let retry = ApiRetry {
            error: Some("529".into()),
            attempt: Some(3),
            max: Some(10),
        };
        assert_eq!(retry.describe(), "retrying: API 529, attempt 3/10");
        let bare = ApiRetry {
            error: None,
            attempt: Some(2),
            max: None,
        };
        assert_eq!(bare.describe(), "retrying, attempt 2");
    }

    #[test]
    fn rate_limit_words_are_found_and_numbers_alone_are_not() {
        assert!(says_rate_limited(
            "API Error: 529 {\"type\":\"overloaded_error\"}"
        ));
        assert!(says_rate_limited(
            "Claude AI usage limit reached|1760000000"
        ));
        assert!(says_rate_limited("You've hit your limit · resets 5pm"));
        assert!(says_rate_limited("RESOURCE_EXHAUSTED: Quota exceeded"));
        assert!(!says_rate_limited("Fixed the 429 handler; all tests pass."));
    }

    #[test]
    fn no_claim_is_nothing_to_refute() {
        let mut t = Tracker::new(EventFormat::Claude);
        // No final event: the exit code and the plan speak.
        assert_eq!(t.refuted(false), None);
        assert_eq!(t.refuted(true), None);
        // A final event saying success is a claim, and with nothing
        // before it, it does not hold.
        t.set_outcome(false, None);
        assert!(t.refuted(true).is_some_and(|w| w.contains("no turn")));
        assert!(t.refuted(false).is_some_and(|w| w.contains("no turn")));
        t.set_outcome(true, Some("API Error".into()));
        assert_eq!(t.refuted(true), None, "an error is no claim of success");
        let none = Tracker::new(EventFormat::None);
        assert_eq!(none.refuted(true), None, "no stream, no claim to check");
    }
}
