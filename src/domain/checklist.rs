//! The Markdown checklist a worker ticks off as it goes.
//!
//! dispatch hands every worker a plan file of `- [ ]` items and watches that
//! file to learn how far the worker has got. The file is written by a
//! language model, not by a program, so this parser accepts what such agents
//! really write (other bullets, `[X]`, numbered lists, CRLF, notes on the
//! next line, ...) and never panics, whatever the file holds: a monitor that
//! crashes on a bad plan would lose track of every worker, not just one.

use serde::{Deserialize, Serialize};

/// How far a worker has got with one item; dispatch reports progress and
/// decides whether a worker needs a human from these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemState {
    /// Not started yet (`[ ]`): the work still ahead of the worker.
    Pending,
    /// Started but not finished (`[~]`, `[-]`, `[/]`, `[>]`, or `[ ]` with
    /// `(in progress)`), so the monitor can show what a worker is doing now.
    InProgress,
    /// Finished (`[x]` or `[X]`); the note usually says what was found.
    Done,
    /// Waiting for an answer (`[?]`); the note is the question, which
    /// dispatch must put to a human because the worker cannot go on.
    Blocked,
    /// Gave up with an error (`[!]`); the note is the error, so a human can
    /// tell a failed sweep from a slow one.
    Failed,
}

impl ItemState {
    /// The state a box character stands for, or `None` when the box is not
    /// one we know, so a typo never turns a line into a fake item.
    fn from_marker(marker: u8) -> Option<ItemState> {
        match marker {
            b' ' => Some(ItemState::Pending),
            b'x' | b'X' => Some(ItemState::Done),
            b'?' => Some(ItemState::Blocked),
            b'!' => Some(ItemState::Failed),
            b'~' | b'-' | b'/' | b'>' => Some(ItemState::InProgress),
            _ => None,
        }
    }

    /// The box character [`set_state`] writes. In-progress is written as a
    /// plain `[ ]` plus an `(in progress)` suffix, which every Markdown
    /// renderer still shows as an unticked box.
    fn marker(self) -> u8 {
        match self {
            ItemState::Pending | ItemState::InProgress => b' ',
            ItemState::Done => b'x',
            ItemState::Blocked => b'?',
            ItemState::Failed => b'!',
        }
    }
}

/// One checkbox line of a plan, with what dispatch needs to report on it and
/// to find it again in the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// What the item asks for, without the note or an `(in progress)`
    /// suffix, so the same item keeps the same text as its state changes.
    pub text: String,
    /// How far the worker has got with it.
    pub state: ItemState,
    /// The worker's finding, question or error: whatever follows the note
    /// separator (` — `, ` – ` or ` -- `), joined with the indented lines
    /// under the item. `None` when the worker wrote nothing.
    pub note: Option<String>,
    /// The 1-based line number in the file, so [`set_state`] can change this
    /// very item and messages can point a human at it.
    pub line: usize,
    /// How deeply the item is nested under other list entries (0 at the top),
    /// so sub-steps can be shown under the step they belong to.
    pub depth: usize,
}

/// A whole plan as last read from disk; the monitor compares successive
/// snapshots to report progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checklist {
    /// The first `# ` heading, which names the task in status output.
    pub title: Option<String>,
    /// Every item in file order, nested ones included.
    pub items: Vec<Item>,
}

/// How many items are in each state, for one-line progress summaries such as
/// `3/5 done, 1 blocked`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// All items, so a summary can say "of N".
    pub total: usize,
    /// Items ticked off.
    pub done: usize,
    /// Items not started.
    pub pending: usize,
    /// Items the worker says it is on.
    pub in_progress: usize,
    /// Items waiting for a human's answer.
    pub blocked: usize,
    /// Items that ended in an error.
    pub failed: usize,
}

impl Checklist {
    /// Tally the items by state, so callers need not walk the items to
    /// print a summary or decide whether a worker needs attention.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts {
            total: self.items.len(),
            ..Counts::default()
        };
        for item in &self.items {
            match item.state {
                ItemState::Pending => counts.pending += 1,
                ItemState::InProgress => counts.in_progress += 1,
                ItemState::Done => counts.done += 1,
                ItemState::Blocked => counts.blocked += 1,
                ItemState::Failed => counts.failed += 1,
            }
        }
        counts
    }

    /// The item a worker is on: the first in-progress item, else the first
    /// blocked, else the first pending.
    pub fn current(&self) -> Option<&Item> {
        let first = |state: ItemState| self.items.iter().find(|item| item.state == state);
        first(ItemState::InProgress)
            .or_else(|| first(ItemState::Blocked))
            .or_else(|| first(ItemState::Pending))
    }

    /// True when there is at least one item and every item is Done.
    ///
    /// An empty plan is not complete: it more likely means the worker
    /// clobbered the file than that there was nothing to do.
    pub fn is_complete(&self) -> bool {
        !self.items.is_empty() && self.items.iter().all(|item| item.state == ItemState::Done)
    }

    /// Items whose state differs from `earlier`'s item at the same position
    /// with the same text — used to print "one line per checked item" as a
    /// plan changes. Returns (index, &Item) for items that changed state or
    /// are new (no item at that position before, or one with other text).
    pub fn changes_since<'a>(&'a self, earlier: &Checklist) -> Vec<(usize, &'a Item)> {
        self.items
            .iter()
            .enumerate()
            .filter(|(index, item)| match earlier.items.get(*index) {
                Some(before) if before.text == item.text => before.state != item.state,
                _ => true,
            })
            .collect()
    }
}

/// Read a plan, keeping whatever items can be recognised and ignoring the
/// rest, because a monitor must keep going on any file a worker leaves.
pub fn parse(text: &str) -> Checklist {
    let mut checklist = Checklist::default();
    // Open code fence: its character and length.
    let mut fence: Option<(u8, usize)> = None;
    // Indents of the list entries enclosing the current line, to give depths.
    let mut open_lists: Vec<usize> = Vec::new();
    // The item that indented lines below it add to: (index, bullet indent).
    let mut noted: Option<(usize, usize)> = None;

    for line in lines(text) {
        let body = line.body;
        if let Some((fence_char, fence_len)) = fence {
            if closes_fence(body, fence_char, fence_len) {
                fence = None;
            }
            continue;
        }
        if let Some(opened) = opens_fence(body) {
            fence = Some(opened);
            noted = None;
            continue;
        }
        if body.trim().is_empty() {
            noted = None;
            continue;
        }
        if let Some(raw) = parse_item_line(body) {
            let depth = nest(&mut open_lists, raw.indent);
            let parts = split_content(raw.content);
            let state = if raw.state == ItemState::Pending && parts.in_progress {
                ItemState::InProgress
            } else {
                raw.state
            };
            noted = Some((checklist.items.len(), raw.indent));
            checklist.items.push(Item {
                text: parts.text.to_string(),
                state,
                note: parts.note.map(str::to_string),
                line: line.number,
                depth,
            });
            continue;
        }
        let (indent, rest) = measure_indent(body);
        if let Some(title) = heading(indent, rest) {
            noted = None;
            open_lists.clear();
            if checklist.title.is_none() && !title.is_empty() {
                checklist.title = Some(title.to_string());
            }
            continue;
        }
        let is_list_entry = list_marker_len(rest).is_some();
        match noted {
            Some((index, bullet_indent)) if indent > bullet_indent => {
                let item = &mut checklist.items[index];
                let extra = rest.trim();
                item.note = Some(match item.note.take() {
                    Some(note) => format!("{note} {extra}"),
                    None => extra.to_string(),
                });
            }
            _ => noted = None,
        }
        if is_list_entry {
            nest(&mut open_lists, indent);
        } else if indent == 0 && noted.is_none() {
            // Unindented prose ends any list above it.
            open_lists.clear();
        }
    }
    checklist
}

/// Replace the state marker of the item at `line` (1-based) keeping
/// everything else byte for byte; used by dispatch to mark an item `[?]` when
/// a worker asks. Returns None if that line is not an item.
///
/// The file is the worker's as much as dispatch's, so only the box changes,
/// plus what the new state needs: an `(in progress)` suffix is added or
/// dropped to match the state, and with `note` the note after the separator
/// is replaced by ` — NOTE` (an empty note removes it). Notes on the lines
/// below the item are left alone rather than deleting a worker's writing.
/// Line endings, CRLF included, are kept.
pub fn set_state(text: &str, line: usize, state: ItemState, note: Option<&str>) -> Option<String> {
    if !parse(text).items.iter().any(|item| item.line == line) {
        return None;
    }
    let target = lines(text).nth(line.checked_sub(1)?)?;
    let raw = parse_item_line(target.body)?;
    let body = target.body;
    let mut new_body = String::with_capacity(body.len() + note.map_or(0, str::len) + 20);
    new_body.push_str(&body[..raw.marker_at]);
    new_body.push(char::from(state.marker()));

    let parts = split_content(raw.content);
    let wants_suffix = state == ItemState::InProgress;
    let new_note = note.map(clean_note);
    if new_note.is_none() && parts.in_progress == wants_suffix {
        new_body.push_str(&body[raw.marker_at + 1..]);
    } else {
        let content_at = body.len() - raw.content.len();
        new_body.push_str(&body[raw.marker_at + 1..content_at]);
        let content = raw.content;
        let lead = &content[..content.len() - content.trim_start().len()];
        new_body.push_str(if lead.is_empty() { " " } else { lead });
        new_body.push_str(parts.text);
        if wants_suffix {
            new_body.push_str(" (in progress)");
        }
        let kept_note = match &new_note {
            Some(cleaned) => Some(cleaned.as_str()).filter(|n| !n.is_empty()),
            None => parts.note,
        };
        if let Some(kept) = kept_note {
            new_body.push_str(" — ");
            new_body.push_str(kept);
        }
    }

    let start = target.start;
    let end = start + body.len();
    let mut out = String::with_capacity(text.len() + new_body.len());
    out.push_str(&text[..start]);
    out.push_str(&new_body);
    out.push_str(&text[end..]);
    Some(out)
}

/// One line of the file without its line ending.
struct Line<'a> {
    /// 1-based, as editors and [`Item::line`] count.
    number: usize,
    /// Byte offset of `body` in the whole text.
    start: usize,
    body: &'a str,
}

/// Split into lines on `\n`, dropping a `\r` before it and a leading BOM,
/// while keeping byte offsets so [`set_state`] can splice the original text.
fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    let bom = if text.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let mut start = bom;
    text[bom..]
        .split_inclusive('\n')
        .enumerate()
        .map(move |(index, piece)| {
            let body = piece.strip_suffix('\n').unwrap_or(piece);
            let body = body.strip_suffix('\r').unwrap_or(body);
            let line = Line {
                number: index + 1,
                start,
                body,
            };
            start += piece.len();
            line
        })
}

/// A line recognised as a checkbox item, before its content is split.
struct RawItem<'a> {
    /// Columns before the bullet (a tab counts to the next multiple of 4).
    indent: usize,
    /// Byte offset of the box character within the line.
    marker_at: usize,
    /// The state the box alone says.
    state: ItemState,
    /// Everything after the closing `]`.
    content: &'a str,
}

/// Recognise `<indent><bullet> [<c>] <text>` where the bullet is `-`, `*`,
/// `+`, `1.` or `1)`. Anything else, such as `[xx]`, `[]`, an empty text or a
/// `>` quote, is not an item.
fn parse_item_line(body: &str) -> Option<RawItem<'_>> {
    let (indent, rest) = measure_indent(body);
    let offset = body.len() - rest.len();
    let bullet = list_marker_len(rest)?;
    let after_bullet = &rest[bullet..];
    let boxed = after_bullet.trim_start_matches([' ', '\t']);
    let bytes = boxed.as_bytes();
    if bytes.len() < 3 || bytes[0] != b'[' || bytes[2] != b']' {
        return None;
    }
    let state = ItemState::from_marker(bytes[1])?;
    let content = &boxed[3..];
    if !(content.is_empty() || content.starts_with([' ', '\t'])) {
        return None;
    }
    if split_content(content).text.is_empty() {
        return None;
    }
    Some(RawItem {
        indent,
        marker_at: offset + bullet + (after_bullet.len() - boxed.len()) + 1,
        state,
        content,
    })
}

/// Length of a list bullet and the whitespace that must follow it, or `None`
/// when `rest` does not start a list entry.
fn list_marker_len(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    let bullet = match bytes.first()? {
        b'-' | b'*' | b'+' => 1,
        _ => {
            let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || digits > 9 || !matches!(bytes.get(digits), Some(b'.' | b')')) {
                return None;
            }
            digits + 1
        }
    };
    matches!(bytes.get(bullet), Some(b' ' | b'\t')).then_some(bullet)
}

/// Columns of leading indentation and the rest of the line.
fn measure_indent(body: &str) -> (usize, &str) {
    let mut columns = 0usize;
    for (at, byte) in body.bytes().enumerate() {
        match byte {
            b' ' => columns += 1,
            b'\t' => columns += 4 - columns % 4,
            _ => return (columns, &body[at..]),
        }
    }
    (columns, "")
}

/// Depth of a list entry at `indent`, updating the stack of enclosing
/// entries; deeper indentation than the entry above means nested, whatever
/// the width, since agents indent by 2, 3 or 4.
fn nest(open_lists: &mut Vec<usize>, indent: usize) -> usize {
    while open_lists.last().is_some_and(|&top| top >= indent) {
        open_lists.pop();
    }
    let depth = open_lists.len();
    open_lists.push(indent);
    depth
}

/// The text of a level-one ATX heading (`# Title`, optionally closed with
/// `#`s), which names the plan.
fn heading(indent: usize, rest: &str) -> Option<&str> {
    if indent > 3 {
        return None;
    }
    let after = rest.strip_prefix('#')?;
    if !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return None;
    }
    let title = after.trim();
    let closed = title.trim_end_matches('#');
    if closed.is_empty() {
        return Some("");
    }
    if closed.len() < title.len() && closed.ends_with([' ', '\t']) {
        return Some(closed.trim_end());
    }
    Some(title)
}

/// A line that opens a fenced code block: three or more backticks or tildes
/// after any indentation (a backtick fence's info string has no backtick).
fn opens_fence(body: &str) -> Option<(u8, usize)> {
    let rest = body.trim_start_matches([' ', '\t']);
    let fence_char = match rest.as_bytes().first()? {
        c @ (b'`' | b'~') => *c,
        _ => return None,
    };
    let len = rest.bytes().take_while(|&b| b == fence_char).count();
    if len < 3 || (fence_char == b'`' && rest[len..].contains('`')) {
        return None;
    }
    Some((fence_char, len))
}

/// A line that closes the open fence: the same character at least as many
/// times and nothing else.
fn closes_fence(body: &str, fence_char: u8, fence_len: usize) -> bool {
    let trimmed = body.trim_matches([' ', '\t']);
    trimmed.len() >= fence_len && trimmed.bytes().all(|b| b == fence_char)
}

/// An item's content split into its parts, all slices of the line.
struct Parts<'a> {
    text: &'a str,
    note: Option<&'a str>,
    /// Whether `(in progress)` ended the text or the note.
    in_progress: bool,
}

/// Note separators, most specific first: an em dash is what dispatch writes
/// and what agents use most, while ` -- ` also appears inside commands such
/// as `cargo test -- --ignored`, so it only counts when no dash does.
const SEPARATORS: [&str; 3] = [" — ", " – ", " -- "];

/// Split content after the box into text and note and find an
/// `(in progress)` suffix on either.
fn split_content(content: &str) -> Parts<'_> {
    let trimmed = content.trim();
    let split = SEPARATORS
        .iter()
        .find_map(|sep| trimmed.find(sep).map(|at| (at, sep.len())));
    let (mut text, mut note) = match split {
        Some((at, len)) => (trimmed[..at].trim_end(), Some(trimmed[at + len..].trim())),
        None => (trimmed, None),
    };
    // A separator left dangling at the end, as in "Scan code —".
    for sep in SEPARATORS {
        if let Some(kept) = text.strip_suffix(sep.trim_end()) {
            text = kept.trim_end();
            break;
        }
    }
    let mut in_progress = false;
    if let Some(kept) = strip_in_progress(text) {
        text = kept;
        in_progress = true;
    } else if let Some(kept) = note.and_then(strip_in_progress) {
        note = Some(kept);
        in_progress = true;
    }
    Parts {
        text,
        note: note.filter(|n| !n.is_empty()),
        in_progress,
    }
}

/// `s` without a trailing `(in progress)` (any case, or `(in-progress)`).
fn strip_in_progress(s: &str) -> Option<&str> {
    const SUFFIX_LEN: usize = "(in progress)".len();
    let at = s.len().checked_sub(SUFFIX_LEN)?;
    if !s.is_char_boundary(at) {
        return None;
    }
    let (kept, suffix) = s.split_at(at);
    let matches = suffix.eq_ignore_ascii_case("(in progress)")
        || suffix.eq_ignore_ascii_case("(in-progress)");
    (matches && (kept.is_empty() || kept.ends_with(char::is_whitespace))).then(|| kept.trim_end())
}

/// A note as it can be written on one line: line breaks and other control
/// characters become spaces so the note cannot break the file's structure.
fn clean_note(note: &str) -> String {
    note.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn states(checklist: &Checklist) -> Vec<ItemState> {
        checklist.items.iter().map(|item| item.state).collect()
    }

    fn texts(checklist: &Checklist) -> Vec<&str> {
        checklist
            .items
            .iter()
            .map(|item| item.text.as_str())
            .collect()
    }

    const SEED: &str = "# Security Audit\n\
        \n\
        - [ ] Scan codebase for hardcoded secrets\n\
        - [ ] Review authentication and authorization logic\n\
        - [ ] Write findings report to .dispatch/tasks/security-audit/output.md\n";

    #[test]
    fn seed_plan_is_all_pending() {
        let plan = parse(SEED);
        assert_eq!(plan.title.as_deref(), Some("Security Audit"));
        assert_eq!(
            texts(&plan),
            [
                "Scan codebase for hardcoded secrets",
                "Review authentication and authorization logic",
                "Write findings report to .dispatch/tasks/security-audit/output.md",
            ]
        );
        assert_eq!(states(&plan), [ItemState::Pending; 3]);
        assert_eq!(
            plan.items.iter().map(|i| i.line).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert!(plan.items.iter().all(|i| i.depth == 0 && i.note.is_none()));
        assert_eq!(plan.current().map(|i| i.line), Some(3));
        assert!(!plan.is_complete());
    }

    #[test]
    fn security_audit_partly_done_with_notes() {
        let text = "# Security Audit\n\
            \n\
            - [x] Scan codebase for hardcoded secrets — found 2 instances in config.ts:14\n\
            \x20 and one more in scripts/deploy.sh:3\n\
            - [?] Review authentication and authorization logic — should admin tokens expire?\n\
            - [ ] Write findings report to .dispatch/tasks/security-audit/output.md\n";
        let plan = parse(text);
        assert_eq!(
            states(&plan),
            [ItemState::Done, ItemState::Blocked, ItemState::Pending]
        );
        assert_eq!(plan.items[0].text, "Scan codebase for hardcoded secrets");
        assert_eq!(
            plan.items[0].note.as_deref(),
            Some("found 2 instances in config.ts:14 and one more in scripts/deploy.sh:3")
        );
        assert_eq!(
            plan.items[1].note.as_deref(),
            Some("should admin tokens expire?")
        );
        assert_eq!(plan.items[2].line, 6);
        assert_eq!(plan.current().map(|i| i.line), Some(5));
        let counts = plan.counts();
        assert_eq!(
            counts,
            Counts {
                total: 3,
                done: 1,
                pending: 1,
                in_progress: 0,
                blocked: 1,
                failed: 0
            }
        );
    }

    #[test]
    fn agent_rewrite_with_star_bullets_and_capital_x() {
        let text = "# Security Audit\n\
            \n\
            Progress so far:\n\
            \n\
            * [X] Scan codebase for hardcoded secrets -- none found\n\
            * [X] Review authentication and authorization logic – JWT expiry is 30 days\n\
            \x20   * [x] Check token refresh\n\
            \x20   * [!] Check SSO callback — could not start the IdP mock\n\
            * [~] Write findings report to .dispatch/tasks/security-audit/output.md\n";
        let plan = parse(text);
        assert_eq!(
            states(&plan),
            [
                ItemState::Done,
                ItemState::Done,
                ItemState::Done,
                ItemState::Failed,
                ItemState::InProgress
            ]
        );
        assert_eq!(plan.items[0].note.as_deref(), Some("none found"));
        assert_eq!(
            plan.items[1].text,
            "Review authentication and authorization logic"
        );
        assert_eq!(plan.items[1].note.as_deref(), Some("JWT expiry is 30 days"));
        assert_eq!(
            plan.items.iter().map(|i| i.depth).collect::<Vec<_>>(),
            [0, 0, 1, 1, 0]
        );
        assert_eq!(
            plan.items[3].note.as_deref(),
            Some("could not start the IdP mock")
        );
        assert_eq!(plan.current().map(|i| i.depth), Some(0));
        assert_eq!(plan.current().map(|i| i.line), Some(9));
    }

    #[test]
    fn numbered_list() {
        let text = "# Refactor parser\n\
            1. [x] Read the existing parser — 400 lines, no tests\n\
            2. [x] Add tests first\n\
            3) [ ] Split tokenizer out (in progress)\n\
            10. [ ] Delete dead code\n";
        let plan = parse(text);
        assert_eq!(
            texts(&plan),
            [
                "Read the existing parser",
                "Add tests first",
                "Split tokenizer out",
                "Delete dead code"
            ]
        );
        assert_eq!(
            states(&plan),
            [
                ItemState::Done,
                ItemState::Done,
                ItemState::InProgress,
                ItemState::Pending
            ]
        );
        assert_eq!(plan.current().map(|i| i.line), Some(4));
    }

    #[test]
    fn crlf_plan() {
        let text = "# Docs\r\n\r\n- [x] Write README \u{2014} done\r\n- [ ] Write CHANGELOG\r\n";
        let plan = parse(text);
        assert_eq!(plan.title.as_deref(), Some("Docs"));
        assert_eq!(texts(&plan), ["Write README", "Write CHANGELOG"]);
        assert_eq!(plan.items[0].note.as_deref(), Some("done"));
        assert_eq!(plan.items[1].line, 4);
    }

    #[test]
    fn bom_and_missing_trailing_newline() {
        let plan = parse("\u{feff}# Title\n- [x] last item");
        assert_eq!(plan.title.as_deref(), Some("Title"));
        assert_eq!(texts(&plan), ["last item"]);
        assert_eq!(plan.items[0].line, 2);
        assert!(plan.is_complete());
        let plan = parse("\u{feff}- [ ] first");
        assert_eq!(plan.items[0].line, 1);
    }

    #[test]
    fn all_bullets_and_markers() {
        let text =
            "- [ ] a\n* [x] b\n+ [X] c\n1. [?] d\n2) [!] e\n- [~] f\n- [-] g\n- [/] h\n- [>] i\n";
        assert_eq!(
            states(&parse(text)),
            [
                ItemState::Pending,
                ItemState::Done,
                ItemState::Done,
                ItemState::Blocked,
                ItemState::Failed,
                ItemState::InProgress,
                ItemState::InProgress,
                ItemState::InProgress,
                ItemState::InProgress,
            ]
        );
    }

    #[test]
    fn in_progress_suffix_is_not_text() {
        let plan = parse(
            "- [ ] Build it (in progress)\n- [ ] Ship it (In-Progress)\n- [ ] Test it — started (in progress)\n- [ ] Plan (in progress) — halfway\n",
        );
        assert_eq!(texts(&plan), ["Build it", "Ship it", "Test it", "Plan"]);
        assert_eq!(states(&plan), [ItemState::InProgress; 4]);
        assert_eq!(plan.items[2].note.as_deref(), Some("started"));
        assert_eq!(plan.items[3].note.as_deref(), Some("halfway"));
        // A word merely ending in the suffix is not one.
        assert_eq!(
            parse("- [ ] Track work(in progress)\n").items[0].state,
            ItemState::Pending
        );
    }

    #[test]
    fn note_separators() {
        let plan = parse(
            "- [x] a — em\n- [x] b – en\n- [x] c -- double\n- [x] d—no spaces\n- [x] run cargo test -- --ignored — all pass\n- [x] e —\n",
        );
        let notes: Vec<_> = plan.items.iter().map(|i| i.note.as_deref()).collect();
        assert_eq!(
            notes,
            [
                Some("em"),
                Some("en"),
                Some("double"),
                None,
                Some("all pass"),
                None
            ]
        );
        assert_eq!(plan.items[3].text, "d—no spaces");
        assert_eq!(plan.items[4].text, "run cargo test -- --ignored");
        assert_eq!(plan.items[5].text, "e");
    }

    #[test]
    fn nested_items_record_depth() {
        let text = "- [ ] top\n  - [ ] two spaces\n      - [ ] deeper\n  - [ ] back\n- [ ] top again\n\t- [ ] tab\n";
        let plan = parse(text);
        assert_eq!(
            plan.items.iter().map(|i| i.depth).collect::<Vec<_>>(),
            [0, 1, 2, 1, 0, 1]
        );
        // A plain bullet counts as a parent too.
        let plan = parse("- Phase 1\n  - [ ] step\n## Phase 2\n  - [ ] other\n");
        assert_eq!(
            plan.items.iter().map(|i| i.depth).collect::<Vec<_>>(),
            [1, 0]
        );
    }

    #[test]
    fn notes_on_following_lines() {
        let text = "- [x] Scan — found 2\n  config.ts:14\n    db.ts:3\n  - [ ] nested item is not a note\n- [?] Ask\n  Should I delete it?\n\n  after blank is not a note\n- [x] Flat\nnot indented is not a note\n";
        let plan = parse(text);
        assert_eq!(
            plan.items[0].note.as_deref(),
            Some("found 2 config.ts:14 db.ts:3")
        );
        assert_eq!(plan.items[1].note, None);
        assert_eq!(plan.items[1].depth, 1);
        assert_eq!(plan.items[2].note.as_deref(), Some("Should I delete it?"));
        assert_eq!(plan.items[3].note, None);
        // Continuation lines also follow a nested item, deeper than its bullet.
        let plan = parse("- [ ] a\n  - [x] b\n    note for b\n  not for b\n");
        assert_eq!(plan.items[1].note.as_deref(), Some("note for b"));
        assert_eq!(plan.items[0].note, None);
    }

    #[test]
    fn fenced_code_is_never_items() {
        let text = "# Plan\n```markdown\n# Not the title\n- [ ] example\n```\n~~~~\n- [x] also example\n~~~\n- [ ] still inside\n~~~~\n  ```\n  - [ ] indented fence\n  ```\n- [ ] real\n";
        let plan = parse(text);
        assert_eq!(plan.title.as_deref(), Some("Plan"));
        assert_eq!(texts(&plan), ["real"]);
        // An unclosed fence runs to the end of the file.
        assert!(parse("```\n- [ ] hidden\n").items.is_empty());
        // Inline code with backticks does not open a fence.
        assert_eq!(parse("```a``` b\n- [ ] seen\n").items.len(), 1);
    }

    #[test]
    fn blockquotes_and_invalid_boxes_are_not_items() {
        let text = "> - [x] quoted\n>- [ ] quoted too\n- [xx] two\n- [] empty\n- [ ]\n- [x]done\n-[x] no space\n- [ x ] spaced\n- [y] unknown\n[x] no bullet\n- [x] ok\n";
        let plan = parse(text);
        assert_eq!(texts(&plan), ["ok"]);
    }

    #[test]
    fn title_is_first_h1_only() {
        let plan = parse("Intro\n## Sub\n#hashtag\n# First #\n# Second\n- [ ] a\n");
        assert_eq!(plan.title.as_deref(), Some("First"));
        assert_eq!(parse("- [ ] a\n").title, None);
        assert_eq!(parse("#\n# Named\n").title.as_deref(), Some("Named"));
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let long = "- [x] ".to_string() + &"é—".repeat(200_000);
        assert_eq!(parse(&long).items.len(), 1);
        let junk =
            String::from_utf8_lossy(&[0xff, 0xfe, b'-', b' ', b'[', 0x80, b']', b'\r', 0, b'\n']);
        let _ = parse(&junk);
        assert_eq!(parse(""), Checklist::default());
        assert_eq!(parse("\u{feff}"), Checklist::default());
        assert_eq!(set_state("- [ ] a\n", 0, ItemState::Done, None), None);
        assert_eq!(set_state("- [ ] a\n", 9, ItemState::Done, None), None);
        let _ = set_state(&junk, 1, ItemState::Done, Some("\u{0}"));
    }

    #[test]
    fn counts_current_and_completion() {
        assert!(!parse("# Empty\n").is_complete());
        assert_eq!(parse("# Empty\n").current(), None);
        let plan = parse("- [x] a\n- [ ] b\n- [?] c\n- [~] d\n- [!] e\n");
        assert_eq!(plan.current().map(|i| i.text.as_str()), Some("d"));
        let plan = parse("- [x] a\n- [ ] b\n- [?] c\n");
        assert_eq!(plan.current().map(|i| i.text.as_str()), Some("c"));
        let plan = parse("- [x] a\n- [!] e\n");
        assert_eq!(plan.current(), None);
        assert!(!plan.is_complete());
        assert!(parse("- [x] a\n  - [X] b\n").is_complete());
    }

    #[test]
    fn changes_since_reports_changed_and_new_items() {
        let before = parse(SEED);
        assert!(before.changes_since(&before).is_empty());
        let after = parse(
            "# Security Audit\n\n- [x] Scan codebase for hardcoded secrets — none\n- [ ] Review authentication and authorization logic\n- [ ] Write findings report to .dispatch/tasks/security-audit/output.md\n- [ ] Extra step the agent added\n",
        );
        let changed: Vec<_> = after
            .changes_since(&before)
            .into_iter()
            .map(|(index, item)| (index, item.text.as_str()))
            .collect();
        assert_eq!(
            changed,
            [
                (0, "Scan codebase for hardcoded secrets"),
                (3, "Extra step the agent added")
            ]
        );
        // A note alone is not a change of state.
        let noted = parse(&after_text_with_note());
        assert!(noted.changes_since(&after).is_empty());
        // Other text at the same position counts as new.
        let reworded = parse("- [x] Scan everything\n");
        assert_eq!(reworded.changes_since(&before).len(), 1);
        // Everything is new against an empty plan.
        assert_eq!(before.changes_since(&Checklist::default()).len(), 3);
    }

    fn after_text_with_note() -> String {
        "- [x] Scan codebase for hardcoded secrets — none at all\n- [ ] Review authentication and authorization logic — looked\n- [ ] Write findings report to .dispatch/tasks/security-audit/output.md\n- [ ] Extra step the agent added\n".to_string()
    }

    #[test]
    fn set_state_marks_a_question_and_keeps_the_rest() {
        let asked = set_state(
            SEED,
            4,
            ItemState::Blocked,
            Some("Which auth provider is in scope?"),
        )
        .expect("line 4 is an item");
        assert_eq!(
            asked,
            SEED.replace(
                "- [ ] Review authentication and authorization logic",
                "- [?] Review authentication and authorization logic — Which auth provider is in scope?"
            )
        );
        let plan = parse(&asked);
        assert_eq!(plan.items[1].state, ItemState::Blocked);
        assert_eq!(
            plan.items[1].note.as_deref(),
            Some("Which auth provider is in scope?")
        );
        // Answered: back to pending, the question removed with an empty note.
        let answered = set_state(&asked, 4, ItemState::Pending, Some("")).expect("item");
        assert_eq!(answered, SEED);
        // Not an item: the title, a blank line, past the end, inside a fence.
        assert_eq!(set_state(SEED, 1, ItemState::Done, None), None);
        assert_eq!(set_state(SEED, 2, ItemState::Done, None), None);
        assert_eq!(set_state(SEED, 6, ItemState::Done, None), None);
        assert_eq!(
            set_state("```\n- [ ] x\n```\n", 2, ItemState::Done, None),
            None
        );
    }

    #[test]
    fn set_state_replaces_only_what_it_must() {
        let text = "\u{feff}  * [X]   Keep   spacing -- old note  \r\n    more\r\n1) [~] Going\r\n- [ ] Started (in progress)\r\n";
        let done = set_state(text, 1, ItemState::Failed, None).expect("item");
        assert_eq!(done, text.replacen("[X]", "[!]", 1));
        let renoted = set_state(text, 1, ItemState::Done, Some("new\nnote")).expect("item");
        assert_eq!(
            renoted,
            text.replacen(
                "[X]   Keep   spacing -- old note  ",
                "[x]   Keep   spacing — new note",
                1
            )
        );
        // Notes on lines below are the worker's and stay.
        assert_eq!(
            parse(&renoted).items[0].note.as_deref(),
            Some("new note more")
        );
        // In progress is written as `[ ]` plus the suffix, and the suffix goes
        // again when the item moves on.
        let going = set_state(text, 3, ItemState::InProgress, None).expect("item");
        assert_eq!(
            going,
            text.replacen("[~] Going", "[ ] Going (in progress)", 1)
        );
        let started = set_state(text, 4, ItemState::Done, None).expect("item");
        assert_eq!(
            started,
            text.replacen("[ ] Started (in progress)", "[x] Started", 1)
        );
        assert_eq!(parse(&started).items[2].state, ItemState::Done);
        assert!(!started.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn serde_names_are_kebab_case() {
        let plan = parse("# T\n- [~] a — b\n");
        let item = &plan.items[0];
        assert_eq!(item.state, ItemState::InProgress);
        // Only serde itself is a dependency of this module, so check the
        // derive through serde's own string deserializer.
        use serde::de::value::{Error, StrDeserializer};
        use serde::de::IntoDeserializer;
        let from: StrDeserializer<'_, Error> = "in-progress".into_deserializer();
        assert_eq!(ItemState::deserialize(from), Ok(ItemState::InProgress));
    }

    // ---- properties ----

    /// Text that survives the canonical format unchanged: no separators, no
    /// surrounding space, no `(in progress)` suffix.
    fn item_text() -> impl Strategy<Value = String> {
        "[A-Za-z0-9][A-Za-z0-9 ,.:/_'`#*]{0,30}[A-Za-z0-9.]"
    }

    fn note_text() -> impl Strategy<Value = String> {
        "[A-Za-z0-9?][A-Za-z0-9 ,.:/_?]{0,20}"
            .prop_map(|n| n.trim().to_string())
            .prop_filter("note", |n| !n.is_empty())
    }

    fn any_state() -> impl Strategy<Value = ItemState> {
        prop_oneof![
            Just(ItemState::Pending),
            Just(ItemState::InProgress),
            Just(ItemState::Done),
            Just(ItemState::Blocked),
            Just(ItemState::Failed),
        ]
    }

    #[derive(Clone, Debug)]
    struct Planned {
        text: String,
        state: ItemState,
        note: Option<String>,
        depth: usize,
    }

    fn plan_strategy() -> impl Strategy<Value = (Vec<Planned>, bool)> {
        let item = (
            item_text(),
            any_state(),
            proptest::option::of(note_text()),
            0usize..4,
        );
        (proptest::collection::vec(item, 0..20), any::<bool>()).prop_map(|(raw, crlf)| {
            let mut previous: Option<usize> = None;
            let items = raw
                .into_iter()
                .map(|(text, state, note, wanted)| {
                    let depth = previous.map_or(0, |p| wanted.min(p + 1));
                    previous = Some(depth);
                    Planned {
                        text,
                        state,
                        note,
                        depth,
                    }
                })
                .collect();
            (items, crlf)
        })
    }

    fn render(items: &[Planned], crlf: bool) -> String {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut out = format!("# Generated plan{eol}{eol}");
        for item in items {
            out.push_str(&"  ".repeat(item.depth));
            out.push_str("- [");
            out.push(char::from(item.state.marker()));
            out.push_str("] ");
            out.push_str(&item.text);
            if item.state == ItemState::InProgress {
                out.push_str(" (in progress)");
            }
            if let Some(note) = &item.note {
                out.push_str(" — ");
                out.push_str(note);
            }
            out.push_str(eol);
        }
        out
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let plan = parse(&text);
            let _ = plan.counts();
            let _ = plan.current();
            for item in &plan.items {
                let _ = set_state(&text, item.line, ItemState::Blocked, Some("q"));
            }
        }

        #[test]
        fn parse_never_panics_on_markdownish_text(
            text in "[-*+0-9.)\\[\\]xX?!~/> \t\r\n#`a—–(in progress)\u{feff}é]{0,300}",
            line in 0usize..40,
            state in any_state(),
        ) {
            let plan = parse(&text);
            let counts = plan.counts();
            prop_assert_eq!(counts.total, plan.items.len());
            if let Some(changed) = set_state(&text, line, state, Some("n")) {
                let after = parse(&changed);
                let item = after.items.iter().find(|i| i.line == line);
                prop_assert_eq!(item.map(|i| i.state), Some(state));
            }
        }

        #[test]
        fn counts_add_up(text in "[-*+1. \\[\\]xX?!~ \na-z]{0,200}") {
            let plan = parse(&text);
            let c = plan.counts();
            prop_assert_eq!(c.total, plan.items.len());
            prop_assert_eq!(c.done + c.pending + c.in_progress + c.blocked + c.failed, c.total);
            for state in [ItemState::Pending, ItemState::InProgress, ItemState::Done, ItemState::Blocked, ItemState::Failed] {
                let n = plan.items.iter().filter(|i| i.state == state).count();
                let counted = match state {
                    ItemState::Pending => c.pending,
                    ItemState::InProgress => c.in_progress,
                    ItemState::Done => c.done,
                    ItemState::Blocked => c.blocked,
                    ItemState::Failed => c.failed,
                };
                prop_assert_eq!(n, counted);
            }
        }

        #[test]
        fn canonical_plans_parse_exactly((items, crlf) in plan_strategy()) {
            let text = render(&items, crlf);
            let plan = parse(&text);
            prop_assert_eq!(plan.title.as_deref(), Some("Generated plan"));
            prop_assert_eq!(plan.items.len(), items.len());
            for (index, (got, want)) in plan.items.iter().zip(&items).enumerate() {
                prop_assert_eq!(&got.text, &want.text);
                prop_assert_eq!(got.state, want.state);
                prop_assert_eq!(&got.note, &want.note);
                prop_assert_eq!(got.depth, want.depth);
                prop_assert_eq!(got.line, index + 3);
            }
            prop_assert_eq!(plan.is_complete(), !items.is_empty() && items.iter().all(|i| i.state == ItemState::Done));
        }

        #[test]
        fn set_state_then_parse(
            (items, crlf) in plan_strategy().prop_filter("non-empty", |(items, _)| !items.is_empty()),
            pick in any::<prop::sample::Index>(),
            state in any_state(),
            note in proptest::option::of(note_text()),
        ) {
            let text = render(&items, crlf);
            let before = parse(&text);
            let index = pick.index(before.items.len());
            let line = before.items[index].line;
            let changed = set_state(&text, line, state, note.as_deref()).expect("an item line");
            let after = parse(&changed);
            prop_assert_eq!(after.items.len(), before.items.len());
            prop_assert_eq!(changed.lines().count(), text.lines().count());
            if crlf {
                prop_assert_eq!(changed.matches('\n').count(), changed.matches("\r\n").count());
            }
            for (i, (new, old)) in after.items.iter().zip(&before.items).enumerate() {
                if i == index {
                    prop_assert_eq!(new.state, state);
                    prop_assert_eq!(&new.text, &old.text);
                    prop_assert_eq!(new.line, old.line);
                    prop_assert_eq!(new.depth, old.depth);
                    let want_note = note.clone().or_else(|| old.note.clone());
                    prop_assert_eq!(&new.note, &want_note);
                } else {
                    prop_assert_eq!(new, old);
                }
            }
            let reported = after.changes_since(&before);
            let expected: Vec<usize> = if state == before.items[index].state { vec![] } else { vec![index] };
            prop_assert_eq!(reported.iter().map(|(i, _)| *i).collect::<Vec<_>>(), expected);
            // Setting the state an item already has, with no note, is a no-op.
            let same = set_state(&text, line, before.items[index].state, None);
            prop_assert_eq!(same.as_deref(), Some(text.as_str()));
        }
    }
}
