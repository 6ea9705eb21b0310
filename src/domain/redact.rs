//! Secret values never reach logs, `task.json` or reports. Which variables
//! are secret: the names a manifest lists, and the usual suspects
//! (`*_API_KEY`, `*_TOKEN`, `*_SECRET`, `*_PASSWORD`).

use std::borrow::Cow;

/// Values shorter than this are not redacted: replacing every `1` or `yes`
/// in a log would destroy it and protect nothing.
const MIN_SECRET_LEN: usize = 6;

/// Replaces secret values with `[redacted NAME]`.
#[derive(Clone, Default)]
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
        Self::new(utf8_vars(), listed)
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

impl<T: Redact + ?Sized> Redact for Box<T> {
    fn redact_with(&mut self, redactor: &Redactor) {
        (**self).redact_with(redactor);
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

/// Names only: a derived `Debug` would print the very values this hides.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field(
                "secrets",
                &self.secrets.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What stands in for a secret value named `name`.
pub fn marker(name: &str) -> String {
    format!("[redacted {name}]")
}

impl Redactor {
    /// Whether `value` is one of the secret values.
    pub fn knows(&self, value: &str) -> bool {
        self.secrets.iter().any(|(_, v)| v == value)
    }

    /// `(name, value)` pairs to keep in a record: the value of a variable
    /// whose name looks secret or is `listed`, or that equals a known secret
    /// value, becomes its marker; other values are redacted as text.
    pub fn mask_vars(&self, vars: &[(String, String)], listed: &[String]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(name, value)| {
                let value = if looks_secret(name) || listed.contains(name) || self.knows(value) {
                    marker(name)
                } else {
                    self.redact(value).into_owned()
                };
                (name.clone(), value)
            })
            .collect()
    }

    /// One line of a manifest, for an error snippet: known secret values
    /// redacted, and the value after `NAME:` or `NAME=` masked where NAME
    /// looks secret or is `listed`, which also covers a file that did not
    /// parse far enough to say what its secrets are.
    pub fn redact_source_line(&self, line: &str, listed: &[String]) -> String {
        let masked = mask_secret_entries(line, listed);
        self.redact(&masked).into_owned()
    }

    fn longest(&self) -> usize {
        self.secrets.iter().map(|(_, v)| v.len()).max().unwrap_or(0)
    }
}

/// `line` with the value after each `NAME:` / `NAME=` whose NAME looks
/// secret or is `listed` replaced by its marker.
fn mask_secret_entries(line: &str, listed: &[String]) -> String {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !is_name_byte(bytes[i]) || (i > 0 && is_name_byte(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_name_byte(bytes[i]) {
            i += 1;
        }
        let name = &line[start..i];
        // `NAME: v`, `"NAME": v`, `NAME=v`.
        let mut j = i;
        if j < bytes.len() && matches!(bytes[j], b'"' | b'\'') {
            j += 1;
        }
        let Some(&sep) = bytes.get(j) else { break };
        if !(sep == b'=' || (sep == b':' && bytes.get(j + 1).is_none_or(|b| *b == b' ')))
            || !(looks_secret(name) || listed.iter().any(|l| l == name))
        {
            continue;
        }
        let value_start = j + 1;
        // In a flow collection (`{A_TOKEN: x, B: y}`) the value ends at
        // the next `,` `}` `]`; otherwise at the end of the line.
        let flow = line[..start].contains(['{', '[']);
        let value_end = if flow {
            line[value_start..]
                .find([',', '}', ']'])
                .map_or(line.len(), |k| value_start + k)
        } else {
            line.len()
        };
        if line[value_start..value_end].trim().is_empty() {
            continue;
        }
        out.push_str(&line[copied..value_start]);
        if sep == b':' {
            out.push(' ');
        }
        out.push_str(&marker(name));
        copied = value_end;
        i = value_end;
    }
    out.push_str(&line[copied..]);
    out
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Redacts text that arrives in pieces: a line longer than a read buffer
/// comes in several, and a secret cut in two by a piece boundary would
/// match in neither. The end of a piece that could start a secret is held
/// back and put in front of the next one. Bytes, not text, are held, so a
/// character cut in two is also whole again.
#[derive(Debug)]
pub struct StreamRedactor<'a> {
    redactor: &'a Redactor,
    held: Vec<u8>,
}

impl<'a> StreamRedactor<'a> {
    pub fn new(redactor: &'a Redactor) -> Self {
        Self {
            redactor,
            held: Vec::new(),
        }
    }

    /// The redacted text that can be let out after `piece`. `line_end`:
    /// the piece ends a line, so nothing is held back.
    pub fn push(&mut self, piece: &[u8], line_end: bool) -> String {
        self.held.extend_from_slice(piece);
        let data = std::mem::take(&mut self.held);
        let cut = if line_end {
            data.len()
        } else {
            self.safe_cut(&data)
        };
        self.held = data[cut..].to_vec();
        self.redactor
            .redact(&String::from_utf8_lossy(&data[..cut]))
            .into_owned()
    }

    /// What is still held back, at the end of the stream.
    pub fn finish(&mut self) -> String {
        self.push(&[], true)
    }

    /// Where `data` can be cut so that no secret, whole or begun, spans
    /// the cut, and no character is split.
    fn safe_cut(&self, data: &[u8]) -> usize {
        let longest = self.redactor.longest();
        let mut cut = data.len().saturating_sub(longest.saturating_sub(1));
        // A whole secret that spans the cut stays whole.
        for (_, value) in &self.redactor.secrets {
            let value = value.as_bytes();
            let from = cut.saturating_sub(value.len().saturating_sub(1));
            if let Some(start) =
                (from..cut).find(|&start| data.get(start..start + value.len()) == Some(value))
            {
                cut = cut.min(start);
            }
        }
        // Back to the start of a UTF-8 character (at most 3 steps).
        let mut steps = 0;
        while cut > 0 && cut < data.len() && steps < 3 && (data[cut] & 0xC0) == 0x80 {
            cut -= 1;
            steps += 1;
        }
        cut
    }
}

fn sort_longest_first(secrets: &mut Vec<(String, String)>) {
    secrets.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    secrets.dedup_by(|a, b| a.1 == b.1);
}

/// This process's environment variables that are text: `env::vars`
/// panics on one that is not UTF-8, and such a value can never appear in
/// the (lossily decoded) text a redactor scrubs.
pub fn utf8_vars() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
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
    fn a_secret_cut_by_a_piece_boundary_is_still_redacted() {
        let redactor = Redactor::new(vars(&[("A_TOKEN", "hunter2hunter2")]), &[]);
        let mut stream = StreamRedactor::new(&redactor);
        let mut out = stream.push(b"aaaa hunt", false);
        out.push_str(&stream.push(b"er2hun", false));
        out.push_str(&stream.push(b"ter2 done \xc3", false));
        out.push_str(&stream.push(b"\xa9\n", true));
        assert_eq!(out, "aaaa [redacted A_TOKEN] done é\n");
        assert_eq!(stream.finish(), "");
        // Whole in one piece, but past the point that would be let out.
        let mut stream = StreamRedactor::new(&redactor);
        let mut out = stream.push(b"xx hunter2hunter2", false);
        out.push_str(&stream.finish());
        assert_eq!(out, "xx [redacted A_TOKEN]");
    }

    #[test]
    fn vars_are_masked_by_name_and_by_value() {
        let known = Redactor::new(vars(&[("OPENAI_API_KEY", "sk-live-999999")]), &[]);
        let masked = known.mask_vars(
            &vars(&[
                ("DEPLOY_TOKEN", "abc"),
                ("listed", "plainvalue"),
                ("copy", "sk-live-999999"),
                ("region", "eu-west-1"),
            ]),
            &["listed".to_owned()],
        );
        assert_eq!(
            masked,
            vars(&[
                ("DEPLOY_TOKEN", "[redacted DEPLOY_TOKEN]"),
                ("listed", "[redacted listed]"),
                ("copy", "[redacted copy]"),
                ("region", "eu-west-1"),
            ])
        );
    }

    #[test]
    fn source_lines_hide_values_of_secret_names() {
        let none = Redactor::default();
        assert_eq!(
            none.redact_source_line("      DEPLOY_TOKEN: \"s3cr3t\" # x", &[]),
            "      DEPLOY_TOKEN: [redacted DEPLOY_TOKEN]"
        );
        assert_eq!(
            none.redact_source_line("    env: {A_TOKEN: s3cr3t, region: eu}", &[]),
            "    env: {A_TOKEN: [redacted A_TOKEN], region: eu}"
        );
        assert_eq!(
            none.redact_source_line("    - DB_PASSWORD=hunter2", &[]),
            "    - DB_PASSWORD=[redacted DB_PASSWORD]"
        );
        assert_eq!(
            none.redact_source_line("  mine: value", &["mine".to_owned()]),
            "  mine: [redacted mine]"
        );
        assert_eq!(
            none.redact_source_line("  model: sonnet", &[]),
            "  model: sonnet"
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
