//! Colour on a terminal, decided once per destination: by status, so a
//! failure stands out of a 50-line screen; never in a pipe or a file (a
//! log full of escape codes is unreadable) unless the user forces it.
//!
//! The conventions users already set: `NO_COLOR` (no-color.org) turns
//! colour off and wins over everything, `CLICOLOR_FORCE` turns it on even
//! in a pipe (a CI log viewer that renders ANSI), `CLICOLOR=0` turns it off,
//! and `TERM=dumb` has none. The same order as Rust's `anstream`, so
//! `dispatch` agrees with cargo's own output under the same variables.
//!
//! Colour codes are added after [`super::sanitize::sanitize_for`]: worker
//! text is escaped first, so the only escape codes on screen are ours.

use std::borrow::Cow;
use std::ffi::OsString;

use crate::domain::status::TaskStatus;

/// What a piece of text says, as a colour shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Done, nothing to look at: green.
    Good,
    /// Failed: red.
    Bad,
    /// Needs a look but did not fail (blocked, cancelled, flaky): yellow.
    Warn,
    /// At work: cyan.
    Busy,
    /// Not started or left out: dim.
    Quiet,
}

impl Tone {
    fn sgr(self) -> &'static str {
        match self {
            Tone::Good => "32",
            Tone::Bad => "31",
            Tone::Warn => "33",
            Tone::Busy => "36",
            Tone::Quiet => "2",
        }
    }
}

/// The colour of a status. Exhaustive, so a new status has to get one.
pub fn status_tone(status: TaskStatus) -> Tone {
    match status {
        TaskStatus::Complete => Tone::Good,
        TaskStatus::Failed
        | TaskStatus::CheckFailed
        | TaskStatus::TimedOut
        | TaskStatus::Stalled
        | TaskStatus::Incomplete
        | TaskStatus::BudgetExceeded => Tone::Bad,
        TaskStatus::Blocked | TaskStatus::Cancelled => Tone::Warn,
        TaskStatus::Running => Tone::Busy,
        TaskStatus::Pending | TaskStatus::Skipped => Tone::Quiet,
    }
}

/// Whether one destination gets colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Palette {
    on: bool,
}

impl Palette {
    /// No colour: files, pipes, tests.
    pub const PLAIN: Palette = Palette { on: false };

    /// For stderr, from the environment and whether it is a terminal.
    pub fn for_stderr() -> Palette {
        use std::io::IsTerminal;
        Palette::decide(
            |name| std::env::var_os(name),
            std::io::stderr().is_terminal(),
        )
    }

    /// The rule itself, with the environment as a function (for tests).
    pub fn decide(var: impl Fn(&str) -> Option<OsString>, terminal: bool) -> Palette {
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        let on = if set("NO_COLOR").is_some() {
            false
        } else if set("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
            true
        } else if set("CLICOLOR").is_some_and(|v| v == "0") {
            false
        } else {
            terminal && var("TERM").is_none_or(|t| t != "dumb")
        };
        Palette { on }
    }

    pub fn is_on(self) -> bool {
        self.on
    }

    /// `text` in `tone`'s colour, or as it is without colour. `text` must
    /// already be escaped for its destination.
    pub fn paint<'a>(self, tone: Tone, text: &'a str) -> Cow<'a, str> {
        if self.on && !text.is_empty() {
            Cow::Owned(format!("\u{1b}[{}m{text}\u{1b}[0m", tone.sgr()))
        } else {
            Cow::Borrowed(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(vars: &[(&str, &str)], terminal: bool) -> bool {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        Palette::decide(
            |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            terminal,
        )
        .is_on()
    }

    #[test]
    fn colour_on_a_terminal_only_unless_forced() {
        assert!(decide(&[("TERM", "xterm")], true));
        assert!(decide(&[], true), "no TERM is not a dumb terminal");
        assert!(!decide(&[("TERM", "xterm")], false), "a pipe or a file");
        assert!(!decide(&[("TERM", "dumb")], true));
        assert!(decide(&[("CLICOLOR_FORCE", "1")], false));
        assert!(!decide(&[("CLICOLOR_FORCE", "0")], false));
        assert!(decide(&[("CLICOLOR_FORCE", "1"), ("TERM", "dumb")], true));
    }

    #[test]
    fn no_color_wins_and_clicolor_0_turns_colour_off() {
        assert!(!decide(&[("NO_COLOR", "1")], true));
        assert!(!decide(&[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")], true));
        assert!(decide(&[("NO_COLOR", "")], true), "empty NO_COLOR is unset");
        assert!(!decide(&[("CLICOLOR", "0")], true));
        assert!(decide(&[("CLICOLOR", "1")], true));
    }

    #[test]
    fn paint_wraps_in_one_colour_and_resets() {
        let on = Palette { on: true };
        assert_eq!(on.paint(Tone::Bad, "failed"), "\u{1b}[31mfailed\u{1b}[0m");
        assert_eq!(Palette::PLAIN.paint(Tone::Bad, "failed"), "failed");
        assert_eq!(on.paint(Tone::Good, ""), "");
    }

    #[test]
    fn every_end_state_has_a_colour_that_says_good_or_bad() {
        for status in TaskStatus::ALL {
            let tone = status_tone(status);
            if status.is_failure()
                && status != TaskStatus::Skipped
                && status != TaskStatus::Cancelled
            {
                assert_eq!(tone, Tone::Bad, "{status}");
            }
        }
        assert_eq!(status_tone(TaskStatus::Complete), Tone::Good);
    }
}
