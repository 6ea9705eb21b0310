//! Secret values never reach logs, `task.json` or reports. Which variables
//! are secret: the names a manifest lists, and the usual suspects
//! (`*_API_KEY`, `*_TOKEN`, `*_SECRET`, `*_PASSWORD`).

use std::borrow::Cow;

/// Values shorter than this are not redacted: replacing every `1` or `yes`
/// in a log would destroy it and protect nothing.
const MIN_SECRET_LEN: usize = 6;

/// Replaces secret values with `[redacted NAME]`.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    /// (name, value), longest value first so a secret that contains another
    /// is replaced whole.
    secrets: Vec<(String, String)>,
}

/// Whether a variable name looks like it holds a secret.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["_API_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_PASSWD"]
        .iter()
        .any(|suffix| upper.ends_with(suffix))
        || matches!(upper.as_str(), "API_KEY" | "TOKEN" | "SECRET" | "PASSWORD")
}

impl Redactor {
    /// Secrets from `vars` (name, value): those named in `listed`, and those
    /// whose name looks secret.
    pub fn new<I>(vars: I, listed: &[String]) -> Self
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut secrets: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, value)| {
                value.len() >= MIN_SECRET_LEN && (looks_secret(name) || listed.contains(name))
            })
            .collect();
        sort_longest_first(&mut secrets);
        Self { secrets }
    }

    /// Secrets of this process's environment.
    pub fn from_env(listed: &[String]) -> Self {
        Self::new(std::env::vars(), listed)
    }

    /// Add the secret values of extra variables (a task's own `env`).
    pub fn with<'a, I>(&self, vars: I, listed: &[String]) -> Self
    where
        I: IntoIterator<Item = (&'a String, &'a String)>,
    {
        let extra = Redactor::new(
            vars.into_iter().map(|(k, v)| (k.clone(), v.clone())),
            listed,
        );
        let mut secrets = self.secrets.clone();
        secrets.extend(extra.secrets);
        sort_longest_first(&mut secrets);
        Self { secrets }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret value replaced.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self
            .secrets
            .iter()
            .any(|(_, value)| text.contains(value.as_str()))
        {
            return Cow::Borrowed(text);
        }
        let mut out = text.to_owned();
        for (name, value) in &self.secrets {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), &format!("[redacted {name}]"));
            }
        }
        Cow::Owned(out)
    }
}

/// Text a worker could have put a secret in, made safe in place. Every
/// record, event and report type that carries worker text implements it,
/// listing its text fields, so [`Redactor::scrub`] is the one way worker
/// text enters dispatch's records and outputs.
pub trait Redact {
    /// Replace every secret value in this value's text.
    fn redact_with(&mut self, redactor: &Redactor);
}

impl Redactor {
    /// `value` with every secret in its text replaced: the one function
    /// through which questions, answers, findings, plan items, events,
    /// records and reports pass before they are stored or shown.
    pub fn scrub<T: Redact>(&self, mut value: T) -> T {
        self.scrub_in_place(&mut value);
        value
    }

    /// [`Redactor::scrub`] for a value the caller keeps.
    pub fn scrub_in_place<T: Redact + ?Sized>(&self, value: &mut T) {
        if !self.is_empty() {
            value.redact_with(self);
        }
    }
}

impl Redact for String {
    fn redact_with(&mut self, redactor: &Redactor) {
        if let Cow::Owned(clean) = redactor.redact(self) {
            *self = clean;
        }
    }
}

impl<T: Redact> Redact for Option<T> {
    fn redact_with(&mut self, redactor: &Redactor) {
        if let Some(value) = self {
            value.redact_with(redactor);
        }
    }
}

impl<T: Redact> Redact for [T] {
    fn redact_with(&mut self, redactor: &Redactor) {
        for value in self {
            value.redact_with(redactor);
        }
    }
}

impl<T: Redact> Redact for Vec<T> {
    fn redact_with(&mut self, redactor: &Redactor) {
        self.as_mut_slice().redact_with(redactor);
    }
}

impl<A: Redact, B: Redact> Redact for (A, B) {
    fn redact_with(&mut self, redactor: &Redactor) {
        self.0.redact_with(redactor);
        self.1.redact_with(redactor);
    }
}

/// A plan's items and notes are the worker's to write.
impl Redact for crate::domain::checklist::Checklist {
    fn redact_with(&mut self, redactor: &Redactor) {
        self.title.redact_with(redactor);
        for item in &mut self.items {
            item.text.redact_with(redactor);
            item.note.redact_with(redactor);
        }
    }
}

/// The agent's final text and its error messages come from its stream.
impl Redact for crate::agents::stream::Outcome {
    fn redact_with(&mut self, redactor: &Redactor) {
        self.message.redact_with(redactor);
    }
}

fn sort_longest_first(secrets: &mut Vec<(String, String)>) {
    secrets.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    secrets.dedup_by(|a, b| a.1 == b.1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn redacts_listed_and_conventional_names_only() {
        let redactor = Redactor::new(
            vars(&[
                ("ANTHROPIC_API_KEY", "sk-ant-123456"),
                ("GITHUB_TOKEN", "ghp_abcdef"),
                ("DEPLOY_KEY", "deploy-key-value"),
                ("HOME", "/home/someone"),
                ("SHORT_TOKEN", "abc"),
            ]),
            &["DEPLOY_KEY".to_owned()],
        );
        let line = "key sk-ant-123456 tok ghp_abcdef dk deploy-key-value home /home/someone abc";
        assert_eq!(
            redactor.redact(line),
            "key [redacted ANTHROPIC_API_KEY] tok [redacted GITHUB_TOKEN] dk [redacted DEPLOY_KEY] home /home/someone abc"
        );
    }

    #[test]
    fn scrub_reaches_nested_text() {
        let redactor = Redactor::new(vars(&[("MY_API_KEY", "sk-test-123456")]), &[]);
        let plan = crate::domain::checklist::parse(
            "# sk-test-123456\n- [x] use sk-test-123456 — note sk-test-123456\n",
        );
        let plan = redactor.scrub(plan);
        let shown = format!("{plan:?}");
        assert!(!shown.contains("sk-test-123456"), "{shown}");
        assert!(shown.contains("[redacted MY_API_KEY]"), "{shown}");
        let texts = redactor.scrub(vec![Some("a sk-test-123456".to_owned()), None]);
        assert_eq!(
            texts,
            vec![Some("a [redacted MY_API_KEY]".to_owned()), None]
        );
    }

    #[test]
    fn task_env_secrets_join_the_process_ones() {
        let base = Redactor::new(vars(&[("A_TOKEN", "aaaaaaaa")]), &[]);
        let task_env: Vec<(String, String)> =
            vars(&[("B_API_KEY", "bbbbbbbb"), ("PLAIN", "cccccccc")]);
        let both = base.with(task_env.iter().map(|(k, v)| (k, v)), &[]);
        assert_eq!(
            both.redact("aaaaaaaa bbbbbbbb cccccccc"),
            "[redacted A_TOKEN] [redacted B_API_KEY] cccccccc"
        );
    }
}
