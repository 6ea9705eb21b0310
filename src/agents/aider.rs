//! aider: the lines it prints for people, read as a stream, and its exit
//! codes.
//!
//! The command line is the `aider` entry of the built-in backend table
//! (`manifest::models::builtin_backends`): `aider --no-pretty --no-stream
//! --message-file <prompt file>`, so its output is plain lines; see
//! [`super::claude`] for why the table is not here.
//!
//! aider prints no events. It prints a `Tokens:` line per model call and,
//! when the API fails, a LiteLLM error, after which it still exits 0; those
//! are what is read.
//!
//! It runs with `--no-git`, because in a git repository aider (0.86) can
//! deliver neither the plan nor the output: it refuses to edit a file git
//! ignores unless the file is in its chat, and `.dispatch/` is in
//! `.git/info/exclude`; a file put in its chat (`--file`,
//! `--add-gitignore-files`) it then fails to commit (`git add` refuses an
//! ignored path), and that failed commit takes the task's code edits down
//! with it; and in a worktree the plan is outside its repository, whose
//! root it edits only beneath. Without git aider edits any path the model
//! names, consults no ignore rule (nothing of the user's is changed), makes
//! no commits and no repository map, so it leaves no
//! `.aider.tags.cache.v4/` behind. Its edits stay uncommitted (the other
//! CLIs commit only when the model runs git); a worktree task's are
//! committed by `commit: auto`.

use super::stream::{truncate_chars, Outcome, Tracker, MAX_MESSAGE_CHARS};

/// The CLI's name in failure reasons.
pub const NAME: &str = "aider";

/// The variable holding the API key of each provider aider knows by a
/// model's `provider/` prefix (aider's own table in `models.py`, with the
/// `xai` of its `grok3` alias).
const PROVIDER_KEYS: &[(&str, &str)] = &[
    ("openai", "OPENAI_API_KEY"),
    ("anthropic", "ANTHROPIC_API_KEY"),
    ("gemini", "GEMINI_API_KEY"),
    ("openrouter", "OPENROUTER_API_KEY"),
    ("deepseek", "DEEPSEEK_API_KEY"),
    ("groq", "GROQ_API_KEY"),
    ("fireworks_ai", "FIREWORKS_API_KEY"),
    ("xai", "XAI_API_KEY"),
];

/// aider's short model names and the provider each stands for.
const ALIASES: &[(&str, &str)] = &[
    ("sonnet", "anthropic"),
    ("haiku", "anthropic"),
    ("opus", "anthropic"),
    ("4", "openai"),
    ("4o", "openai"),
    ("4-turbo", "openai"),
    ("35turbo", "openai"),
    ("35-turbo", "openai"),
    ("3", "openai"),
    ("deepseek", "deepseek"),
    ("r1", "deepseek"),
    ("flash", "gemini"),
    ("flash-lite", "gemini"),
    ("gemini", "gemini"),
    ("gemini-exp", "gemini"),
    ("quasar", "openrouter"),
    ("optimus", "openrouter"),
    ("grok3", "xai"),
];

/// The provider of an aider model and the variable its key must be in,
/// where the model's name tells: a `provider/` prefix aider knows, one of
/// its aliases, or a bare OpenAI (`gpt-…`, `o1…`) or Anthropic
/// (`claude-…`) name. `None` for any other model (a provider LiteLLM reads
/// other settings for, such as `ollama/` or `bedrock/`), whose credentials
/// dispatch cannot judge. A wrong guess costs a warning; a missing one, a
/// worker that fails on its first call.
pub fn provider_key(model: &str) -> Option<&'static (&'static str, &'static str)> {
    let model = model.trim();
    let provider = match model.split_once('/') {
        Some((prefix, _)) => prefix,
        None => ALIASES
            .iter()
            .find(|(alias, _)| *alias == model)
            .map(|(_, provider)| *provider)
            .or_else(|| bare_provider(model))?,
    };
    PROVIDER_KEYS.iter().find(|(name, _)| *name == provider)
}

/// The provider LiteLLM gives a model named without a prefix.
fn bare_provider(model: &str) -> Option<&'static str> {
    let openai = ["gpt-", "chatgpt-", "o1", "o3", "o4"];
    if openai.iter().any(|p| model.starts_with(p)) {
        Some("openai")
    } else if model.starts_with("claude-") {
        Some("anthropic")
    } else {
        None
    }
}

/// What an aider exit code means. It documents none; it exits 1 when it
/// cannot start or stops on an error, and 2 when its argument parser
/// (Python's argparse) refuses the command line. An API failure is not
/// one of them: it exits 0 after it.
pub fn explain_exit(code: i32) -> Option<&'static str> {
    match code {
        1 => Some("could not start or stopped on an error; worker.log has its message"),
        2 => Some("refused its command line: an option this version of aider does not know"),
        _ => None,
    }
}

impl Tracker {
    /// aider prints no events, only lines for people: a `Tokens:` line
    /// per model call, and a LiteLLM error (wrapped over several lines)
    /// when the API fails, after which it still exits 0.
    pub(super) fn aider_line(&mut self, line: &str) {
        let text = line.trim();
        if text.is_empty() {
            self.state.aider_error_open = false;
            return;
        }
        if let Some(rest) = text.strip_prefix("Tokens:") {
            self.state.aider_error_open = false;
            self.events += 1;
            self.usage.turns += 1;
            self.usage.input_tokens += aider_count(rest, "sent");
            self.usage.output_tokens += aider_count(rest, "received");
            self.usage.cached_input_tokens += aider_count(rest, "cache hit");
            if let Some(cost) = aider_session_cost(rest) {
                self.usage.cost_usd = Some(cost);
            }
            // A call that answered: an earlier error was retried.
            if self.outcome.as_ref().is_some_and(|o| o.is_error) {
                self.outcome = None;
            }
            return;
        }
        if text.starts_with("litellm.") && text.contains("Error") {
            self.events += 1;
            self.state.aider_error_open = true;
            self.push_error(text);
            self.outcome = Some(Outcome {
                is_error: true,
                message: Some(truncate_chars(text, MAX_MESSAGE_CHARS)),
            });
            return;
        }
        if self.state.aider_error_open {
            // The rest of a wrapped error message.
            if let Some(outcome) = self.outcome.as_mut() {
                let message = outcome.message.get_or_insert_with(String::new);
                message.push(' ');
                message.push_str(text);
                *message = truncate_chars(message, MAX_MESSAGE_CHARS);
            }
            return;
        }
        self.unparsed_lines += 1;
    }
}

/// aider's rule for a clean exit: it prints a `Tokens:` line for every
/// model call, so without one the prompt never reached the model (aider
/// exits 0 when its API is unreachable or refuses it).
pub(super) fn refute(tracker: &Tracker) -> Option<String> {
    if tracker.usage.turns > 0 {
        return None;
    }
    Some(match tracker.errors.last() {
        Some(error) => format!("the prompt never reached the model; its last error: {error}"),
        None => "the prompt never reached the model (no `Tokens:` line)".to_owned(),
    })
}

/// The number before `what` in an aider `Tokens:` line (`1.2k sent`),
/// with its `k`/`M` suffix applied; 0 when absent.
fn aider_count(line: &str, what: &str) -> u64 {
    let Some(end) = line.find(what) else {
        return 0;
    };
    let before = line[..end].trim_end();
    let number = before.rsplit([' ', ',']).next().unwrap_or("");
    let (digits, scale) = match number.chars().last() {
        Some('k') => (&number[..number.len() - 1], 1_000.0),
        Some('M') => (&number[..number.len() - 1], 1_000_000.0),
        _ => (number, 1.0),
    };
    digits
        .parse::<f64>()
        .map(|n| (n * scale).round() as u64)
        .unwrap_or(0)
}

/// The session total of an aider `Cost: $0.01 message, $0.02 session.`
fn aider_session_cost(line: &str) -> Option<f64> {
    let end = line.find("session")?;
    let before = line[..end].trim_end();
    let amount = before.rsplit(' ').next()?.trim_start_matches('$');
    amount.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::stream::samples::*;
    use crate::manifest::types::EventFormat;

    #[test]
    fn a_clean_exit_without_a_model_call_is_refuted() {
        let mut t = Tracker::new(EventFormat::Aider);
        t.feed("Aider v0.86.1");
        t.feed("Main model: gpt-4o with diff edit format");
        assert_eq!(
            t.refuted(true).as_deref(),
            Some(
                "aider claimed success, but the prompt never reached the model (no `Tokens:` line)"
            )
        );
        t.feed("Tokens: 2.1k sent, 120 received. Cost: $0.01 message, $0.01 session.");
        assert_eq!(t.refuted(true), None);
    }

    #[test]
    fn the_command_line_asks_for_the_lines_read_here() {
        assert_command_line(
            "aider",
            "aider",
            &["--no-pretty", "--no-stream"],
            EventFormat::Aider,
        );
    }

    #[test]
    fn the_command_line_keeps_aider_out_of_git() {
        // In a repository aider cannot tick a plan git ignores, nor edit
        // outside a worktree; see the module's doc.
        assert_command_line("aider", "aider", &["--no-git"], EventFormat::Aider);
    }

    #[test]
    fn a_models_provider_names_the_key_it_needs() {
        let key = |model: &str| provider_key(model).map(|(_, var)| *var);
        assert_eq!(key("openai/scripted-model"), Some("OPENAI_API_KEY"));
        assert_eq!(
            key("anthropic/claude-sonnet-4-5"),
            Some("ANTHROPIC_API_KEY")
        );
        assert_eq!(key("gemini/gemini-2.5-pro"), Some("GEMINI_API_KEY"));
        assert_eq!(key("openrouter/x/y"), Some("OPENROUTER_API_KEY"));
        assert_eq!(key("sonnet"), Some("ANTHROPIC_API_KEY"));
        assert_eq!(key("4o"), Some("OPENAI_API_KEY"));
        assert_eq!(key("flash"), Some("GEMINI_API_KEY"));
        assert_eq!(key("r1"), Some("DEEPSEEK_API_KEY"));
        assert_eq!(key("gpt-4.1"), Some("OPENAI_API_KEY"));
        assert_eq!(key("o3-mini"), Some("OPENAI_API_KEY"));
        assert_eq!(key("claude-opus-4-1"), Some("ANTHROPIC_API_KEY"));
        // Providers whose credentials are not one key, and names that say
        // nothing: not judged.
        assert_eq!(key("ollama/llama3"), None);
        assert_eq!(key("bedrock/anthropic.claude-v2"), None);
        assert_eq!(key("my-local-model"), None);
    }

    #[test]
    fn exit_codes_are_explained_as_documented() {
        assert!(explain_exit(1).is_some_and(|m| m.contains("worker.log")));
        assert!(explain_exit(2).is_some_and(|m| m.contains("command line")));
        assert_eq!(explain_exit(0), None);
    }

    #[test]
    fn aider_lines_give_tokens_cost_and_api_errors() {
        let mut t = Tracker::new(EventFormat::Aider);
        t.feed("Applied edit to plan.md");
        t.feed("Tokens: 1.0k sent, 50 received.");
        t.feed("Tokens: 2.3k sent, 1.2k cache hit, 120 received. Cost: $0.0012 message, $0.0034 session.");
        assert_eq!(t.usage.turns, 2);
        assert_eq!(t.usage.input_tokens, 3300);
        assert_eq!(t.usage.output_tokens, 170);
        assert_eq!(t.usage.cached_input_tokens, 1200);
        assert_eq!(t.usage.cost_usd, Some(0.0034));
        assert!(t.outcome.is_none(), "no verdict from aider on success");

        let mut t = Tracker::new(EventFormat::Aider);
        t.feed("litellm.BadRequestError: OpenAIException - scripted endpoint");
        t.feed("refuses this request");
        t.feed("");
        let outcome = t.outcome.clone().expect("an error outcome");
        assert!(outcome.is_error);
        assert_eq!(
            outcome.message.as_deref(),
            Some(
                "litellm.BadRequestError: OpenAIException - scripted endpoint refuses this request"
            )
        );
        // A retry that got an answer clears it.
        t.feed("Tokens: 10 sent, 5 received.");
        assert!(t.outcome.is_none());
    }
}
