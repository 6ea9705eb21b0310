//! Worker-supplied text (questions, findings, plan notes, output excerpts)
//! is hostile: one newline can start a forged GitHub workflow command
//! (`::error::`, `::stop-commands::`), one ESC can clear the user's screen
//! or set the terminal title, and raw control characters corrupt a Markdown
//! report. Each destination gets its own escaping here, as pure functions,
//! so every writer (reports, console, CI reporters) makes the same promise.

/// Whether `c` is a control character: C0 (including ESC), DEL, C1.
pub fn is_control(c: char) -> bool {
    c.is_control()
}

/// Line and paragraph separators that some viewers (and GitHub's log)
/// treat as a new line, although they are not control characters.
fn is_line_break_like(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}')
}

/// Data of a GitHub workflow command (the part after the last `::`).
///
/// `%`, `\r` and `\n` become `%25`, `%0D`, `%0A`, as the runner decodes
/// them, so the text stays one command and no line can start with `::`.
/// Other control characters are shown visibly: the runner would pass them
/// raw to the log viewer.
pub fn github_data(text: &str) -> String {
    github_escaped(text, false)
}

/// A property value of a GitHub workflow command (`file=`, `title=`…):
/// the data escaping plus `:` and `,`, which would end the value.
pub fn github_property(text: &str) -> String {
    github_escaped(text, true)
}

fn github_escaped(text: &str, property: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            ':' if property => out.push_str("%3A"),
            ',' if property => out.push_str("%2C"),
            _ => push_visible(&mut out, c),
        }
    }
    out
}

/// Text for a terminal or a log, newlines kept: every other control
/// character (ESC, BEL, DEL, C1, a lone `\r` that would overwrite the
/// line) is shown as `\xNN` / `\u{NN}` instead of being obeyed.
pub fn terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            _ => push_visible(&mut out, c),
        }
    }
    out
}

/// One line of plain text for a console or CI log: newlines and other
/// line breaks are shown as `\n`, so worker text can never start a line
/// of its own (a forged `::error::` or a fake status line), and control
/// characters are shown visibly.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push(' '),
            _ => push_visible(&mut out, c),
        }
    }
    out
}

/// Text for a Markdown body (a fenced block, a paragraph): control
/// characters removed, newlines and tabs kept, `\r\n` made `\n`. A
/// report is often printed into a CI log (`dispatch report`), so a line
/// that would read as a workflow command (`::error::`, `##[error]`) gets a
/// zero-width space after its first character: it looks the same, and the
/// runner no longer obeys it.
pub fn markdown_text(text: &str) -> String {
    let kept: String = text
        .chars()
        .filter_map(|c| match c {
            '\n' | '\t' => Some(c),
            c if is_line_break_like(c) => Some('\n'),
            c if is_control(c) => None,
            c => Some(c),
        })
        .collect();
    log_safe(&kept)
}

/// Multi-line text that may be printed into a CI log (a report on stdout,
/// a JUnit file shown by `cat`): every line that would read as a workflow
/// command gets a zero-width space after its first non-blank character.
/// Everything else is left as it is.
pub fn log_safe(text: &str) -> String {
    // The runner reads lines as .NET does: `\r` alone ends one too.
    text.split_inclusive(['\n', '\r'])
        .map(log_safe_line)
        .collect()
}

/// One line of [`log_safe`] (ending at `\n` or `\r`, or at the end of
/// the text): a zero-width space after its first non-blank character when
/// it would start a workflow command (`::` now, `##[` in the older syntax
/// the runner still reads); borrowed when it would not, as almost no line
/// does.
pub fn log_safe_line(line: &str) -> std::borrow::Cow<'_, str> {
    let body = line.trim_start();
    if body.starts_with("::") || body.starts_with("##[") {
        let at = line.len() - body.len() + 1;
        std::borrow::Cow::Owned(format!("{}\u{200b}{}", &line[..at], &line[at..]))
    } else {
        std::borrow::Cow::Borrowed(line)
    }
}

/// Text inside one Markdown line (a table cell, a list item, a heading):
/// control characters removed, line breaks and tabs made spaces, and the
/// characters Markdown or its HTML would interpret escaped (`|` too, so a
/// cell cannot split the table).
pub fn markdown_inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if is_line_break_like(c) => out.push(' '),
            c if is_control(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// A JSON text made safe for a terminal: JSON already escapes C0 controls
/// inside strings, but not DEL or the C1 controls (CSI is U+009B), which
/// some terminals obey, nor the line separators U+2028 and U+2029 that
/// some log viewers break lines at; they are written as `\u007f`,
/// `\u009b`, `\u2028`, … too.
/// They can only appear inside JSON strings, so the JSON means the same.
pub fn json_for_terminal(json: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if (is_control(c) || is_line_break_like(c)) && c != '\n' {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Push `c`, or a visible stand-in when it is a control character or a
/// line break a viewer could obey.
fn push_visible(out: &mut String, c: char) {
    use std::fmt::Write as _;
    if is_control(c) || is_line_break_like(c) {
        let code = u32::from(c);
        // Writing to a String cannot fail.
        let _ = if code <= 0xff {
            write!(out, "\\x{code:02x}")
        } else {
            write!(out, "\\u{{{code:04x}}}")
        };
    } else {
        out.push(c);
    }
}

/// A JSON text made safe inside an HTML `<script>` element: `<`, `>` and
/// `&` become `\u003c`, `\u003e`, `\u0026`, so no `</script>` or `<!--`
/// in a worker's text can end the element or open a comment, and U+2028
/// and U+2029 are escaped as older JavaScript parsers read them as line
/// breaks. They can only appear inside JSON strings, so the JSON means the
/// same.
///
/// The text between two such characters is copied whole: a page of a
/// thousand tasks is a few MB of JSON, and a push per character was an
/// eighth of the page's time.
pub fn json_for_script(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 16);
    let mut copied = 0;
    for (at, found) in json.match_indices(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        out.push_str(&json[copied..at]);
        out.push_str(match found {
            "<" => "\\u003c",
            ">" => "\\u003e",
            "&" => "\\u0026",
            "\u{2028}" => "\\u2028",
            _ => "\\u2029",
        });
        copied = at + found.len();
    }
    out.push_str(&json[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// No line of `s` (split on anything a viewer treats as a line break)
    /// begins with `::`, after leading whitespace.
    fn no_forged_command(s: &str) -> bool {
        s.split(['\n', '\r', '\u{2028}', '\u{2029}', '\u{85}'])
            .skip(1)
            .all(|line| {
                let line = line.trim_start();
                !line.starts_with("::") && !line.starts_with("##[")
            })
    }

    fn has_raw_control(s: &str, allowed: &[char]) -> bool {
        s.chars()
            .any(|c| (is_control(c) || is_line_break_like(c)) && !allowed.contains(&c))
    }

    #[test]
    fn github_data_cannot_start_a_command() {
        assert_eq!(
            github_data("ok\n::error::forged\r\n::stop-commands::x 100%"),
            "ok%0A::error::forged%0D%0A::stop-commands::x 100%25"
        );
        assert_eq!(github_data("\x1b[2J"), "\\x1b[2J");
    }

    #[test]
    fn github_property_escapes_separators() {
        assert_eq!(
            github_property("src/a.rs,line=9::x\n%"),
            "src/a.rs%2Cline=9%3A%3Ax%0A%25"
        );
    }

    #[test]
    fn terminal_shows_escapes_keeps_newlines() {
        assert_eq!(
            terminal("a\x1b[2J\x1b]0;title\x07b\nc\rd\u{9b}e\u{7f}"),
            "a\\x1b[2J\\x1b]0;title\\x07b\nc\\x0dd\\x9be\\x7f"
        );
    }

    #[test]
    fn one_line_has_no_line_break() {
        assert_eq!(
            one_line("q?\n::error::forged\u{2028}x\ty"),
            "q?\\n::error::forged\\u{2028}x y"
        );
    }

    #[test]
    fn markdown_strips_controls() {
        assert_eq!(markdown_text("a\x1b[2Jb\r\nc\td\x00"), "a[2Jb\nc\td");
        assert_eq!(
            markdown_text("x\n  ::error::f\n##[error]g"),
            "x\n  :\u{200b}:error::f\n#\u{200b}#[error]g"
        );
        assert_eq!(log_safe("a\r::error::x"), "a\r:\u{200b}:error::x");
        assert_eq!(markdown_inline("a|b\nc\x1b<x>*"), "a\\|b c&lt;x&gt;\\*");
    }

    #[test]
    fn json_for_terminal_is_the_same_json() {
        let value = serde_json::json!({"t": "a\u{7f}b\u{9b}2Jc\u{1b}"});
        let text = json_for_terminal(&serde_json::to_string(&value).unwrap_or_default());
        assert_eq!(text, r#"{"t":"a\u007fb\u009b2Jc\u001b"}"#);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, value);
    }

    proptest! {
        #[test]
        fn github_data_is_one_line(s in any::<String>()) {
            let out = github_data(&s);
            prop_assert!(!has_raw_control(&out, &[]), "{out:?}");
            prop_assert!(no_forged_command(&out));
        }

        #[test]
        fn github_property_is_one_value(s in any::<String>()) {
            let out = github_property(&s);
            prop_assert!(!has_raw_control(&out, &[]), "{out:?}");
            prop_assert!(!out.contains(':') && !out.contains(','), "{out:?}");
        }

        #[test]
        fn terminal_obeys_nothing(s in any::<String>()) {
            let out = terminal(&s);
            prop_assert!(!has_raw_control(&out, &['\n', '\t']), "{out:?}");
        }

        #[test]
        fn one_line_is_one_line(s in any::<String>()) {
            let out = one_line(&s);
            prop_assert!(!has_raw_control(&out, &[]), "{out:?}");
            prop_assert!(no_forged_command(&out));
        }

        #[test]
        fn markdown_has_no_controls(s in any::<String>()) {
            let text = markdown_text(&s);
            prop_assert!(!has_raw_control(&text, &['\n', '\t']), "{text:?}");
            prop_assert!(no_forged_command(&format!("\n{text}")), "{text:?}");
            let inline = markdown_inline(&s);
            prop_assert!(!has_raw_control(&inline, &[]), "{inline:?}");
            // Every `|` is escaped, so a cell cannot split the table.
            prop_assert!(inline.match_indices('|').all(|(i, _)| inline[..i].ends_with('\\')));
        }

        #[test]
        fn json_for_terminal_keeps_the_value(s in any::<String>()) {
            let json = serde_json::to_string_pretty(&serde_json::json!({ "s": s }))
                .unwrap_or_default();
            let safe = json_for_terminal(&json);
            prop_assert!(!has_raw_control(&safe, &['\n']), "{safe:?}");
            let back: serde_json::Value = serde_json::from_str(&safe).unwrap_or_default();
            prop_assert_eq!(back["s"].as_str(), Some(s.as_str()));
        }

        #[test]
        fn log_safe_text_starts_no_command(s in any::<String>()) {
            let out = log_safe(&s);
            prop_assert!(no_forged_command(&format!("\n{out}").replace('\r', "\n")), "{out:?}");
            prop_assert_eq!(out.replace('\u{200b}', ""), s.replace('\u{200b}', ""));
        }

        #[test]
        fn forged_lines_are_caught_in_any_text(
            prefix in ".*",
            cmd in "(error|warning|stop-commands|add-mask)",
            rest in ".*",
        ) {
            let s = format!("{prefix}\n::{cmd}::{rest}");
            prop_assert!(no_forged_command(&github_data(&s)));
            prop_assert!(no_forged_command(&one_line(&s)));
            prop_assert!(no_forged_command(&markdown_inline(&s)));
            prop_assert!(no_forged_command(&markdown_text(&s)));
        }
    }

    proptest! {
        /// Whatever a worker writes, the JSON in a `<script>` element has
        /// no character that could end the element or open a comment, and
        /// still reads back as what was written.
        #[test]
        fn json_for_script_cannot_end_the_element(text in "(</?[sS]cript>|<!--|[<>&\u{2028}\u{2029}]|.){0,40}") {
            let json = json_for_script(&serde_json::to_string(&text).unwrap_or_default());
            prop_assert!(!json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']), "{}", json);
            let back: String = serde_json::from_str(&json).unwrap_or_default();
            prop_assert_eq!(back, text);
        }

        /// Copying the text between escapes whole changes nothing: the
        /// page is what escaping one character at a time made.
        #[test]
        fn json_for_script_escapes_each_character_as_one_at_a_time_would(text in "([<>&\u{2028}\u{2029}]|.){0,60}") {
            let mut expected = String::new();
            for c in text.chars() {
                match c {
                    '<' => expected.push_str("\\u003c"),
                    '>' => expected.push_str("\\u003e"),
                    '&' => expected.push_str("\\u0026"),
                    '\u{2028}' => expected.push_str("\\u2028"),
                    '\u{2029}' => expected.push_str("\\u2029"),
                    c => expected.push(c),
                }
            }
            prop_assert_eq!(json_for_script(&text), expected);
        }
    }
}
