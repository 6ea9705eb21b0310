//! User-facing diagnostics: `file:line:column: path: message`, the offending
//! source line with a caret under it, and a hint on what to do.
//!
//! The format is the one compilers use, so editors and CI log viewers turn the
//! first line into a link, and a person sees the context without opening the
//! file.

use std::fmt;

use crate::domain::redact::Redactor;

/// A place in a source file. Lines and columns are 1-based and count
/// characters, as editors show them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    /// How many characters to underline (at least one caret is drawn).
    pub len: usize,
}

impl Location {
    pub fn new(line: usize, column: usize, len: usize) -> Self {
        Self { line, column, len }
    }
}

/// The text of a file that diagnostics point into.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The name shown to the user (the path as given on the command line).
    pub name: String,
    pub text: String,
    /// Secret values a snippet must not show: the environment's from the
    /// start, the file's own once it is loaded ([`SourceFile::add_secrets`]).
    /// Error output lands in CI logs.
    redactor: Redactor,
    /// The names the file lists under `secrets:`.
    secret_names: Vec<String>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
            redactor: Redactor::from_env(&[]),
            secret_names: Vec::new(),
        }
    }

    /// Keep these out of snippets too: `(name, value)` pairs of the file
    /// (secret by name or by `listed`), and the names it lists.
    pub fn add_secrets(&mut self, pairs: &[(String, String)], listed: &[String]) {
        self.redactor = self
            .redactor
            .with(pairs.iter().map(|(k, v)| (k, v)), listed);
        self.secret_names.extend(listed.iter().cloned());
    }

    /// A line as a snippet may show it.
    fn shown_line(&self, line: usize) -> Option<String> {
        self.line(line)
            .map(|l| self.redactor.redact_source_line(l, &self.secret_names))
    }

    /// The text of a 1-based line, without its line ending.
    pub fn line(&self, line: usize) -> Option<&str> {
        let raw = self.text.split('\n').nth(line.checked_sub(1)?)?;
        Some(raw.strip_suffix('\r').unwrap_or(raw))
    }
}

/// One problem found in a user's input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in, as the user named it.
    pub file: String,
    /// Where in the file; `None` when the problem is the file as a whole.
    pub location: Option<Location>,
    /// The dotted path of the value in the manifest (`tasks.audit.model`).
    pub path: Option<String>,
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
    /// The source line the location points at, kept so the diagnostic can be
    /// rendered without the file at hand.
    pub snippet: Option<String>,
}

impl Diagnostic {
    pub fn new(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            location: None,
            path: None,
            message: message.into(),
            help: None,
            snippet: None,
        }
    }

    /// Point the diagnostic at a place in `source`, keeping the line's text.
    /// A place past the end of the file (the parser's "unexpected end")
    /// moves to the end of the last line.
    pub fn at(mut self, source: &SourceFile, location: Location) -> Self {
        let lines = source.text.split('\n').count();
        let location = if location.line > lines {
            let last = source.line(lines).unwrap_or("");
            Location::new(lines, last.chars().count() + 1, 1)
        } else {
            location
        };
        self.snippet = source.shown_line(location.line);
        self.location = Some(location);
        self
    }

    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.path = (!path.is_empty()).then_some(path);
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The one-line form: `file:line:column: path: message`.
    pub fn headline(&self) -> String {
        let mut out = self.file.clone();
        if let Some(loc) = self.location {
            out.push_str(&format!(":{}:{}", loc.line, loc.column));
        }
        out.push_str(": ");
        if let Some(path) = &self.path {
            out.push_str(path);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.headline())?;
        if let (Some(loc), Some(line)) = (self.location, &self.snippet) {
            let number = loc.line.to_string();
            let gutter = " ".repeat(number.len());
            let shown = printable_line(line);
            let shown_len = shown.chars().count();
            let start = loc.column.saturating_sub(1).min(shown_len);
            let width = loc.len.max(1).min(shown_len.saturating_sub(start).max(1));
            writeln!(f, "{gutter} |")?;
            writeln!(f, "{number} | {shown}")?;
            writeln!(f, "{gutter} | {}{}", " ".repeat(start), "^".repeat(width))?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "  = help: {help}")?;
        }
        Ok(())
    }
}

/// Tabs and control characters would shift the caret; show them as one
/// visible character each so columns stay aligned.
fn printable_line(line: &str) -> String {
    line.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Several diagnostics, rendered one after another with a count at the end.
pub fn render_all(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        out.push_str(&diagnostic.to_string());
        out.push('\n');
    }
    let n = diagnostics.len();
    if n > 1 {
        out.push_str(&format!("{n} errors\n"));
    }
    out
}

/// "did you mean `x`?" for a misspelt name, when one known name is close.
pub fn did_you_mean<'a>(given: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(given, candidate), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// A short list of names for a message: `a, b, c, …` past `limit`.
pub fn list_names<'a>(names: impl IntoIterator<Item = &'a str>, limit: usize) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    if names.is_empty() {
        return "none".to_owned();
    }
    let mut out = names
        .iter()
        .take(limit)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > limit {
        out.push_str(", …");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_headline_snippet_and_help() {
        let source = SourceFile::new("sweep.yaml", "tasks:\n  a:\n    model: gpt9\n");
        let d = Diagnostic::new("sweep.yaml", "unknown model \"gpt9\"")
            .at(&source, Location::new(3, 12, 4))
            .with_path("tasks.a.model")
            .with_help("define it under `models:`");
        assert_eq!(
            d.to_string(),
            "error: sweep.yaml:3:12: tasks.a.model: unknown model \"gpt9\"\n  |\n3 |     model: gpt9\n  |            ^^^^\n  = help: define it under `models:`\n"
        );
    }

    #[test]
    fn snippets_hide_secret_values() {
        let text = "tasks:\n  a:\n    env: {DEPLOY_TOKEN: tok-123456789, region: eu}\n    model: \"key-987654321\"\n";
        let mut source = SourceFile::new("sweep.yaml", text);
        source.add_secrets(&[("mine".into(), "key-987654321".into())], &["mine".into()]);
        let rendered = [3, 4]
            .map(|line| Diagnostic::new("sweep.yaml", "bad").at(&source, Location::new(line, 5, 3)))
            .map(|d| d.to_string())
            .join("");
        assert!(!rendered.contains("tok-123456789"), "{rendered}");
        assert!(!rendered.contains("key-987654321"), "{rendered}");
        assert!(rendered.contains("[redacted DEPLOY_TOKEN]"), "{rendered}");
        assert!(rendered.contains("\"[redacted mine]\""), "{rendered}");
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("neds", ["needs", "tags"]), Some("needs"));
        assert_eq!(did_you_mean("zzzz", ["needs", "tags"]), None);
    }
}
