//! The one place where text leaves dispatch for a reader: every reporter
//! passes what it writes through [`sanitize_for`] with its destination, so
//! the escaping a worker's text gets is decided here and nowhere else.
//! Workers are untrusted: one newline in a finding title could start a
//! forged `::error::` line in a CI log, one ESC could clear the terminal.

use std::borrow::Cow;

use crate::util::escape;

/// Where a piece of text goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// One line of a terminal or CI log: no line breaks, no control
    /// characters obeyed.
    Line,
    /// The data part of a GitHub workflow command (after the last `::`).
    GithubData,
    /// A property value of a workflow command (`file=`, `title=`).
    GithubProperty,
    /// A line of JSON for a terminal or a pipe (`--json`): serde escapes
    /// the C0 controls; DEL, C1 and the Unicode line separators get `\u`
    /// escapes too, which every JSON reader reads back the same.
    Json,
}

/// `text` made safe for `dest`, by the escaping `util::escape` defines for
/// it; borrowed when nothing had to change (most text, most of the time).
pub fn sanitize_for(dest: Destination, text: &str) -> Cow<'_, str> {
    let special = |c: char| match dest {
        Destination::Json => (escape::is_control(c) || is_line_break_like(c)) && c != '\n',
        Destination::Line => escape::is_control(c) || is_line_break_like(c),
        Destination::GithubData => escape::is_control(c) || c == '%' || is_line_break_like(c),
        Destination::GithubProperty => {
            escape::is_control(c) || matches!(c, '%' | ':' | ',') || is_line_break_like(c)
        }
    };
    if !text.chars().any(special) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(match dest {
        Destination::Json => escape::json_for_terminal(text),
        Destination::Line => escape::one_line(text),
        Destination::GithubData => escape::github_data(text),
        Destination::GithubProperty => escape::github_property(text),
    })
}

/// Separators some viewers break lines at, though not control characters.
fn is_line_break_like(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_never_breaks_nor_obeys_escapes() {
        let text = "title\n::error::forged\u{1b}[2J\u{2028}x\tend";
        let line = sanitize_for(Destination::Line, text);
        assert_eq!(line, "title\\n::error::forged\\x1b[2J\\u{2028}x end");
        assert!(!line.chars().any(char::is_control));
    }

    #[test]
    fn github_commands_keep_worker_text_inside_one_command() {
        assert_eq!(
            sanitize_for(Destination::GithubProperty, "a:b,c%\nd"),
            "a%3Ab%2Cc%25%0Ad"
        );
        assert_eq!(
            sanitize_for(Destination::GithubData, "x\r\n::stop-commands::y\u{7}"),
            "x%0D%0A::stop-commands::y\\x07"
        );
    }

    #[test]
    fn clean_text_is_not_copied() {
        assert!(matches!(
            sanitize_for(Destination::Line, "plain text"),
            Cow::Borrowed(_)
        ));
    }
}
