//! Talking with workers through files, as the dispatch skill's protocol
//! does: questions and answers in a task's `ipc/` folder ([`questions`]),
//! findings as JSON lines ([`findings`]), and the rules that answer
//! questions without a person ([`answer_for`]).
//!
//! Everything a worker writes is untrusted: files are opened without
//! following symlinks, read only up to a bound, decoded lossily, and names
//! that are not sequence numbers are ignored rather than trusted.

pub mod findings;
pub mod questions;

use std::io::{self, Read};
use std::path::Path;

use regex::{Regex, RegexBuilder};

use crate::manifest::types::AnswerRule;

/// Questions and answers longer than this are read only this far: a worker
/// that writes a gigabyte into a question does not take the runner's memory
/// (or a person's terminal) with it.
pub const MAX_MESSAGE_BYTES: u64 = 64 * 1024;

/// The most memory one compiled rule regex may take, the same limit the
/// manifest validator compiles with, so a pattern it accepted compiles here.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Read a question or answer file: at most [`MAX_MESSAGE_BYTES`], never
/// through a symlink, only a regular file (a FIFO would block the runner),
/// lossy UTF-8 and trimmed, because a worker may write any bytes at all.
pub(crate) fn read_message(path: &Path) -> io::Result<String> {
    read_text(open_regular(path)?)
}

/// The bounded, lossy, trimmed text of a file already opened with
/// [`open_regular`] (so its metadata can be read from the same handle).
pub(crate) fn read_text(file: std::fs::File) -> io::Result<String> {
    let mut bytes = Vec::new();
    file.take(MAX_MESSAGE_BYTES).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).trim().to_owned())
}

pub(crate) use crate::state::open_regular;

/// Compile a rule's pattern the way the manifest validator checks it
/// (case-insensitive, bounded size), so the two never disagree. `None` for
/// an invalid pattern: the validator already reported it, and a broken rule
/// must not answer (or escalate) everything.
pub(crate) fn compile_rule_regex(pattern: &str) -> Option<Regex> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .ok()
}

/// The first rule that answers `question`, so the runner can reply at once
/// instead of waiting for a person. Rules are tried in order (a task's own
/// rules go before the manifest's, by the caller's concatenation).
///
/// - `match` is a regular expression searched for anywhere in the text,
///   case-insensitively.
/// - `keywords` must all appear, case-insensitively, as substrings (not
///   whole words: `deploy` also matches "deployment", which is what people
///   writing keyword lists expect, and it needs no word-boundary rules for
///   paths, identifiers and non-Latin scripts).
/// - A rule with both needs both.
/// - A rule with neither never matches (the validator rejects it; answering
///   every question with it would be worse than answering none), and a rule
///   with an invalid regex never matches either.
pub fn answer_for<'a>(rules: &'a [AnswerRule], question: &str) -> Option<&'a AnswerRule> {
    let lowered = question.to_lowercase();
    rules
        .iter()
        .find(|rule| rule_matches(rule, question, &lowered))
}

/// Whether one answer rule matches; `lowered` is the question in lower case,
/// computed once for all rules.
fn rule_matches(rule: &AnswerRule, question: &str, lowered: &str) -> bool {
    if rule.pattern.is_none() && rule.keywords.is_empty() {
        return false;
    }
    let keywords_ok = rule
        .keywords
        .iter()
        .all(|word| lowered.contains(&word.to_lowercase()));
    if !keywords_ok {
        return false;
    }
    match &rule.pattern {
        None => true,
        Some(pattern) => compile_rule_regex(pattern).is_some_and(|re| re.is_match(question)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(pattern: Option<&str>, keywords: &[&str], answer: &str) -> AnswerRule {
        AnswerRule {
            pattern: pattern.map(str::to_owned),
            keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
            answer: answer.to_owned(),
        }
    }

    #[test]
    fn a_regex_is_searched_anywhere() {
        let rules = [rule(Some(r"which (db|database)"), &[], "postgres")];
        let hit = answer_for(&rules, "Quick one: which database should I use?");
        assert_eq!(hit.map(|r| r.answer.as_str()), Some("postgres"));
        assert!(answer_for(&rules, "which framework?").is_none());
    }

    #[test]
    fn keywords_must_all_appear_as_substrings() {
        let rules = [rule(None, &["deploy", "staging"], "yes")];
        assert!(answer_for(&rules, "May I deploy to staging?").is_some());
        assert!(
            answer_for(&rules, "Is the deployment on staging-2 ok?").is_some(),
            "substrings, not whole words"
        );
        assert!(answer_for(&rules, "May I deploy to production?").is_none());
    }

    #[test]
    fn a_rule_with_both_needs_both() {
        let rules = [rule(Some("^may i"), &["tests"], "go ahead")];
        assert!(answer_for(&rules, "May I skip the flaky tests?").is_some());
        assert!(answer_for(&rules, "May I skip the lint?").is_none());
        assert!(answer_for(&rules, "Should I skip the tests?").is_none());
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let rules = [
            rule(None, &["nothing-matches-this"], "zero"),
            rule(Some("database"), &[], "first"),
            rule(None, &["database"], "second"),
        ];
        let hit = answer_for(&rules, "which database?");
        assert_eq!(hit.map(|r| r.answer.as_str()), Some("first"));
    }

    #[test]
    fn matching_ignores_case_both_ways() {
        let rules = [rule(Some("POSTGRES"), &["VERSION"], "16")];
        assert!(answer_for(&rules, "which postgres version?").is_some());
        let rules = [rule(None, &["straße"], "ok")];
        assert!(answer_for(&rules, "STRAßE name?").is_some());
    }

    #[test]
    fn an_invalid_regex_never_matches() {
        let rules = [
            rule(Some("(unclosed"), &[], "bad"),
            rule(None, &["x"], "good"),
        ];
        assert_eq!(
            answer_for(&rules, "(unclosed x").map(|r| r.answer.as_str()),
            Some("good")
        );
        let huge = [rule(Some(r"\w{1000}\w{1000}\w{1000}"), &[], "too big")];
        assert!(answer_for(&huge, &"a".repeat(3000)).is_none());
    }

    #[test]
    fn a_rule_with_no_condition_never_matches() {
        let rules = [rule(None, &[], "everything")];
        assert!(answer_for(&rules, "anything").is_none());
        assert!(answer_for(&[], "anything").is_none());
    }

    #[test]
    fn messages_are_bounded_and_never_read_through_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 200_000]).expect("write");
        let text = read_message(&big).expect("read");
        assert_eq!(text.len() as u64, MAX_MESSAGE_BYTES);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&big, &link).expect("symlink");
        assert!(read_message(&link).is_err());
        assert!(
            read_message(dir.path()).is_err(),
            "a folder is not a message"
        );
        let odd = dir.path().join("odd");
        std::fs::write(&odd, b"  \xff\xfe hi \n").expect("write");
        assert_eq!(read_message(&odd).expect("read"), "\u{fffd}\u{fffd} hi");
    }

    proptest! {
        #[test]
        fn never_panics_on_any_question(text in "\\PC{0,200}", word in "\\PC{0,5}") {
            let rules = [
                rule(Some("(?i)é|ß|[a-z]+"), &[], "a"),
                rule(None, &[word.as_str()], "b"),
                rule(Some(&word), &[], "c"),
            ];
            let _ = answer_for(&rules, &text);
        }

        #[test]
        fn keyword_rules_match_their_own_text(text in "\\PC{1,40}") {
            let rules = [rule(None, &[text.as_str()], "echo")];
            prop_assert!(answer_for(&rules, &text).is_some());
        }
    }
}
