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

    /// [`Checklist::changes_since`], each with how many items were done
    /// once that change (and those above it) had happened: a worker that
    /// ticks two items in one write gets `3/4` beside the third and `4/4`
    /// beside the fourth, not `4/4` twice.
    pub fn progress_since<'a>(&'a self, earlier: &Checklist) -> Vec<(usize, &'a Item, usize)> {
        let changes = self.changes_since(earlier);
        let was_done = |index: usize, item: &Item| {
            earlier
                .items
                .get(index)
                .is_some_and(|b| b.text == item.text && b.state == ItemState::Done)
        };
        let is_done = |item: &Item| item.state == ItemState::Done;
        let gained: usize = changes.iter().filter(|(_, item)| is_done(item)).count();
        let lost: usize = changes
            .iter()
            .filter(|(index, item)| was_done(*index, item))
            .count();
        let mut done = (self.counts().done + lost).saturating_sub(gained);
        changes
            .into_iter()
            .map(|(index, item)| {
                if was_done(index, item) {
                    done = done.saturating_sub(1);
                }
                if is_done(item) {
                    done += 1;
                }
                (index, item, done)
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
#[path = "checklist_tests.rs"]
mod tests;
