//! Findings: what workers report as they go (a disabled signature check, a
//! leaked key), one JSON object per line in an append-only file, so the
//! runner can escalate a critical one while the worker is still running.
//!
//! Writers append whole lines with one `write(2)` on an `O_APPEND` file;
//! the reader ([`FindingsReader`]) tails the file, takes only complete
//! lines, and reports a malformed line without losing the ones around it.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manifest::types::Severity;

/// The most [`FindingsReader::poll`] reads in one call, so one huge burst
/// of findings cannot stall the runner's loop: the rest comes next poll.
pub const MAX_READ_PER_POLL: u64 = 1024 * 1024;

/// The longest line the reader accepts. A longer one is reported as
/// malformed and skipped up to its newline, so a worker that never writes a
/// newline cannot make the reader buffer without end.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// One finding, as a line of the findings file holds it. Unknown fields are
/// ignored, so a worker adding its own (`"cwe": …`) does not lose the line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// How bad it is; escalation rules compare against it.
    pub severity: Severity,
    /// One line saying what was found.
    pub title: String,
    /// Where: usually `path:line`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Evidence and reasoning, for the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When it was found (RFC 3339 text, as the writer formats it).
    #[serde(default)]
    pub ts: Option<String>,
}

/// Every text field of a finding is the worker's.
impl crate::domain::redact::Redact for Finding {
    fn redact_with(&mut self, redactor: &crate::domain::redact::Redactor) {
        self.title.redact_with(redactor);
        self.location.redact_with(redactor);
        self.detail.redact_with(redactor);
        self.ts.redact_with(redactor);
    }
}

/// A line of the findings file that is not a finding: reported (so a
/// worker's mistake is visible) and skipped (so nothing else is lost).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {error}")]
pub struct Malformed {
    /// The 1-based line number in the file (since the last restart).
    pub line: usize,
    /// What is wrong with it, e.g. serde's "missing field `title`".
    pub error: String,
}

/// Append one finding to the file at `path` (for `dispatch worker finding`
/// and the runner's own records), creating it if needed.
///
/// The whole line, newline included, goes out in a single `write_all` on a
/// file opened `O_APPEND`: on a local file system each `write(2)` to a
/// regular file in append mode moves to the end and writes as one step, so
/// lines from concurrent appenders never interleave, whatever their size (a
/// short write only happens when the disk is full, and then the line is
/// incomplete, which the reader reports as malformed). NFS gives no such
/// promise. The file is opened with `O_NOFOLLOW` (a worker cannot redirect
/// the write through a symlink) and `O_NONBLOCK` (a FIFO put in its place
/// cannot hang the caller), and anything but a regular file is refused.
pub fn append(path: &Path, finding: &Finding) -> io::Result<()> {
    let mut line = serde_json::to_vec(finding)?;
    line.push(b'\n');
    crate::state::open_append_regular(path)?.write_all(&line)
}

/// Tails one findings file across polls, so the runner sees each finding
/// once, as soon as its line is complete.
#[derive(Debug)]
pub struct FindingsReader {
    /// The findings file.
    path: PathBuf,
    /// How far the file has been read.
    offset: u64,
    /// The start of a line whose newline has not been written yet.
    partial: Vec<u8>,
    /// How many lines have been completed so far (for line numbers).
    line: usize,
    /// The file's device and inode when last read: a different one means
    /// the file was replaced (renamed over, or deleted and created again),
    /// and is read again from its start.
    identity: Option<(u64, u64)>,
    /// The current line was too long and was reported; its bytes are
    /// dropped until its newline.
    skipping: bool,
}

impl FindingsReader {
    /// A reader at the start of `path`, which need not exist yet (a worker
    /// creates it with its first finding).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            partial: Vec::new(),
            line: 0,
            identity: None,
            skipping: false,
        }
    }

    /// The file this reader tails, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// New complete lines since the last call: parsed findings and, for
    /// malformed lines, a [`Malformed`] with the line number and why (the
    /// line is skipped; nothing else is lost). Blank lines are skipped
    /// silently but counted.
    ///
    /// Reads at most [`MAX_READ_PER_POLL`] per call; an unterminated last
    /// line waits for its newline. A file that shrank (truncated) or was
    /// replaced by another file is read again from the start, with line
    /// numbers from 1: what it holds now is all there is. (A truncation
    /// followed by writes past the old length before the next poll cannot
    /// be told from growth; writers only ever append, so this does not
    /// arise in practice.) A missing file, a symlink or anything but a
    /// regular file yields nothing.
    pub fn poll(&mut self) -> Vec<Result<Finding, Malformed>> {
        let mut out = Vec::new();
        let Ok(mut file) = super::open_regular(&self.path) else {
            return out;
        };
        let Ok(meta) = file.metadata() else {
            return out;
        };
        let identity = (meta.dev(), meta.ino());
        if meta.len() < self.offset || self.identity.is_some_and(|known| known != identity) {
            self.restart();
        }
        self.identity = Some(identity);
        if meta.len() == self.offset {
            return out;
        }
        let mut chunk = Vec::new();
        // On a read error `chunk` still holds what was read before it, and
        // the offset counts only those bytes, so nothing is lost or seen
        // twice: the rest is tried again next poll.
        let _ = file
            .seek(SeekFrom::Start(self.offset))
            .and_then(|_| (&mut file).take(MAX_READ_PER_POLL).read_to_end(&mut chunk));
        self.offset += chunk.len() as u64;
        self.consume(&chunk, &mut out);
        out
    }

    /// Forget everything read so far, for a file that was truncated or
    /// replaced.
    fn restart(&mut self) {
        self.offset = 0;
        self.partial.clear();
        self.line = 0;
        self.skipping = false;
    }

    /// Split newly read bytes into lines, finishing the pending partial
    /// line first, and keep the unterminated rest for the next poll.
    fn consume(&mut self, mut bytes: &[u8], out: &mut Vec<Result<Finding, Malformed>>) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            let (head, tail) = bytes.split_at(end);
            bytes = &tail[1..];
            self.line += 1;
            if self.skipping {
                self.skipping = false;
                self.partial.clear();
                continue;
            }
            self.partial.extend_from_slice(head);
            let line = std::mem::take(&mut self.partial);
            if let Some(result) = parse_line(self.line, &line) {
                out.push(result);
            }
        }
        if self.skipping {
            return;
        }
        self.partial.extend_from_slice(bytes);
        if self.partial.len() > MAX_LINE_BYTES {
            self.partial = Vec::new();
            self.skipping = true;
            out.push(Err(too_long(self.line + 1)));
        }
    }
}

/// The report for a line longer than [`MAX_LINE_BYTES`].
fn too_long(line: usize) -> Malformed {
    Malformed {
        line,
        error: format!("line longer than {MAX_LINE_BYTES} bytes; skipped"),
    }
}

/// One complete line (without its newline): `None` for a blank line, else
/// the finding or why it is not one.
fn parse_line(line: usize, bytes: &[u8]) -> Option<Result<Finding, Malformed>> {
    if bytes.len() > MAX_LINE_BYTES {
        return Some(Err(too_long(line)));
    }
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return None;
    }
    Some(
        serde_json::from_slice::<Finding>(trimmed).map_err(|e| Malformed {
            line,
            error: e.to_string(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use std::fs;
    use std::sync::{Arc, Barrier};

    fn finding(severity: Severity, title: &str) -> Finding {
        Finding {
            severity,
            title: title.to_owned(),
            location: None,
            detail: None,
            ts: None,
        }
    }

    fn append_raw(path: &Path, bytes: &[u8]) {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .expect("open");
        file.write_all(bytes).expect("write");
    }

    fn titles(results: &[Result<Finding, Malformed>]) -> Vec<String> {
        results
            .iter()
            .map(|r| match r {
                Ok(f) => f.title.clone(),
                Err(m) => format!("!{}", m.line),
            })
            .collect()
    }

    #[test]
    fn serializes_as_one_compact_line() {
        let mut f = finding(Severity::Critical, "webhook\nsignature off");
        f.location = Some("config/stripe.ts:31".to_owned());
        let text = serde_json::to_string(&f).expect("json");
        assert!(!text.contains('\n'));
        assert_eq!(
            text,
            r#"{"severity":"critical","title":"webhook\nsignature off","location":"config/stripe.ts:31","ts":null}"#
        );
        let back: Finding = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, f);
        let minimal: Finding =
            serde_json::from_str(r#"{"severity":"info","title":"t","extra":[1]}"#).expect("parse");
        assert_eq!(minimal, finding(Severity::Info, "t"));
    }

    #[test]
    fn concurrent_appends_never_interleave() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = Arc::new(dir.path().join("findings.jsonl"));
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let path = Arc::clone(&path);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    for i in 0..200 {
                        let mut f = finding(Severity::Medium, &format!("{t}-{i}"));
                        // Lines of varied, sometimes large, size.
                        f.detail = Some("d".repeat((t * 997 + i * 131) % 9000));
                        append(&path, &f).expect("append");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("join");
        }
        let text = fs::read_to_string(&*path).expect("read");
        assert_eq!(text.lines().count(), 1600);
        let mut reader = FindingsReader::new(path.to_path_buf());
        let mut seen = HashSet::new();
        loop {
            let batch = reader.poll();
            if batch.is_empty() {
                break;
            }
            for r in batch {
                let f = r.expect("every line is valid");
                assert!(seen.insert(f.title), "no duplicates");
            }
        }
        assert_eq!(seen.len(), 1600);
    }

    #[test]
    fn the_reader_sees_new_lines_incrementally() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("findings.jsonl");
        let mut reader = FindingsReader::new(path.clone());
        assert!(reader.poll().is_empty(), "no file yet");
        append(&path, &finding(Severity::High, "one")).expect("append");
        append(&path, &finding(Severity::Low, "two")).expect("append");
        assert_eq!(titles(&reader.poll()), ["one", "two"]);
        assert!(reader.poll().is_empty(), "nothing new");
        append(&path, &finding(Severity::Critical, "three")).expect("append");
        let batch = reader.poll();
        assert_eq!(titles(&batch), ["three"]);
        assert_eq!(
            batch[0].as_ref().map(|f| f.severity).ok(),
            Some(Severity::Critical)
        );
    }

    #[test]
    fn an_unterminated_line_waits_for_its_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("findings.jsonl");
        let mut reader = FindingsReader::new(path.clone());
        append_raw(&path, br#"{"severity":"high","#);
        assert!(reader.poll().is_empty());
        append_raw(&path, br#""title":"split across writes"}"#);
        assert!(reader.poll().is_empty(), "still no newline");
        append_raw(&path, b"\n{\"severity\":\"low\",");
        assert_eq!(titles(&reader.poll()), ["split across writes"]);
        append_raw(&path, b"\"title\":\"next\"}\r\n");
        assert_eq!(titles(&reader.poll()), ["next"]);
    }

    #[test]
    fn malformed_lines_are_reported_and_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("findings.jsonl");
        let lines = [
            r#"{"severity":"high","title":"good 1"}"#,
            r#"{"severity":"high","title": oops}"#,
            r#"{"severity":"apocalyptic","title":"wrong severity"}"#,
            "",
            r#"{"severity":"low"}"#,
            r#"{"severity":"CRITICAL","title":"shouting is wrong too"}"#,
            "\u{0}\u{1}not json at all",
            r#"[1,2,3]"#,
            r#"{"severity":"info","title":"good 9"}"#,
        ];
        append_raw(&path, format!("{}\n", lines.join("\n")).as_bytes());
        append_raw(&path, b"\xff\xfe\n");
        let batch = FindingsReader::new(path).poll();
        assert_eq!(
            titles(&batch),
            ["good 1", "!2", "!3", "!5", "!6", "!7", "!8", "good 9", "!10"]
        );
        let errors: Vec<&Malformed> = batch.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(
            errors[1].error.contains("unknown variant"),
            "{}",
            errors[1].error
        );
        assert!(
            errors[2].error.contains("missing field `title`"),
            "{}",
            errors[2].error
        );
        assert_eq!(errors[0].to_string().split(':').next(), Some("line 2"));
    }

    #[test]
    fn a_truncated_file_is_read_again_from_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("findings.jsonl");
        let mut reader = FindingsReader::new(path.clone());
        for t in ["a", "b", "c"] {
            append(&path, &finding(Severity::Info, t)).expect("append");
        }
        append_raw(&path, b"{\"sev");
        assert_eq!(titles(&reader.poll()), ["a", "b", "c"]);
        fs::write(&path, b"").expect("truncate");
        assert!(reader.poll().is_empty());
        append_raw(&path, b"garbage\n");
        append(&path, &finding(Severity::Info, "fresh")).expect("append");
        assert_eq!(
            titles(&reader.poll()),
            ["!1", "fresh"],
            "line numbers restart"
        );
    }

    #[test]
    fn a_replaced_file_is_read_from_its_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("findings.jsonl");
        let mut reader = FindingsReader::new(path.clone());
        append(&path, &finding(Severity::Info, "old")).expect("append");
        assert_eq!(titles(&reader.poll()), ["old"]);
        let other = dir.path().join("other.jsonl");
        for t in ["new 1", "new 2"] {
            append(&other, &finding(Severity::Info, t)).expect("append");
        }
        fs::rename(&other, &path).expect("rename");
        assert_eq!(titles(&reader.poll()), ["new 1", "new 2"]);
    }

    #[test]
    fn a_poll_reads_at_most_one_mebibyte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("findings.jsonl");
        let mut f = finding(Severity::Low, "");
        f.detail = Some("x".repeat(1000));
        let mut bytes = Vec::new();
        for i in 0..3000 {
            f.title = i.to_string();
            bytes.extend(serde_json::to_vec(&f).expect("json"));
            bytes.push(b'\n');
        }
        append_raw(&path, &bytes);
        let mut reader = FindingsReader::new(path);
        let first = reader.poll();
        assert!(!first.is_empty() && first.len() < 3000);
        assert!(first.len() as u64 * 1000 <= MAX_READ_PER_POLL);
        let mut all = first;
        for _ in 0..10 {
            all.extend(reader.poll());
        }
        let expected: Vec<String> = (0..3000).map(|i| i.to_string()).collect();
        assert_eq!(titles(&all), expected);
    }

    #[test]
    fn an_overlong_line_is_reported_once_and_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("findings.jsonl");
        let mut reader = FindingsReader::new(path.clone());
        append(&path, &finding(Severity::Info, "before")).expect("append");
        append_raw(&path, &vec![b'z'; MAX_LINE_BYTES + 10]);
        let mut all = reader.poll();
        all.extend(reader.poll());
        append_raw(&path, &vec![b'z'; 3 * MAX_LINE_BYTES]);
        for _ in 0..5 {
            all.extend(reader.poll());
        }
        append_raw(&path, b"zzz\n");
        append(&path, &finding(Severity::Info, "after")).expect("append");
        all.extend(reader.poll());
        assert_eq!(titles(&all), ["before", "!2", "after"]);
        assert!(reader.partial.capacity() <= 2 * MAX_LINE_BYTES + 1024);
    }

    #[test]
    fn symlinks_are_never_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real.jsonl");
        append(&real, &finding(Severity::High, "real")).expect("append");
        let link = dir.path().join("findings.jsonl");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        assert!(FindingsReader::new(link.clone()).poll().is_empty());
        assert!(append(&link, &finding(Severity::High, "through")).is_err());
        assert_eq!(fs::read_to_string(&real).expect("read").lines().count(), 1);
        assert!(append(dir.path(), &finding(Severity::High, "dir")).is_err());
    }

    proptest! {
        #[test]
        fn results_do_not_depend_on_how_writes_are_split(
            lines in prop::collection::vec(
                prop_oneof![
                    "[a-z ]{0,12}".prop_map(|t| format!(r#"{{"severity":"low","title":"{t}"}}"#)),
                    "\\PC{0,20}",
                ],
                0..12,
            ),
            cuts in prop::collection::vec(0usize..400, 0..6),
        ) {
            let text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
            let bytes = text.as_bytes();
            let dir = tempfile::tempdir().expect("tempdir");
            let whole_path = dir.path().join("whole");
            append_raw(&whole_path, bytes);
            let whole = FindingsReader::new(whole_path).poll();

            let path = dir.path().join("pieces");
            let mut reader = FindingsReader::new(path.clone());
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            points.sort_unstable();
            points.push(bytes.len());
            let mut pieces = Vec::new();
            let mut start = 0;
            for end in points {
                append_raw(&path, &bytes[start..end]);
                start = end;
                pieces.extend(reader.poll());
            }
            prop_assert_eq!(whole, pieces);
        }
    }
}
