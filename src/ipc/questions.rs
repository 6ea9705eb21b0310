//! Questions and answers in a task's `ipc/` folder, as the dispatch skill's
//! workers write them.
//!
//! A worker asks by writing `NNN.question` (`001`, `002`, …; past 999 the
//! number simply grows: `1000`) atomically, through a temporary file in the
//! same folder and a rename. The runner, or a person, writes `NNN.answer`
//! the same way; the worker reads it and writes `NNN.done`. `ipc/.done`
//! says the worker finished its whole plan.
//!
//! The folder is shared with an untrusted worker, so: names that are not
//! sequence numbers are ignored, symlinks are never followed, messages are
//! read only up to [`super::MAX_MESSAGE_BYTES`], and files this module
//! creates are linked into place with `hard_link`, which fails rather than
//! replace a file that is already there (two answerers racing cannot both
//! win, two askers cannot take the same number).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::{open_regular, read_message, read_text};

/// How many times [`ask`] tries the next free number when other askers keep
/// taking it first, before it gives up instead of spinning forever.
const ASK_ATTEMPTS: usize = 1000;

/// The shortest pause between two looks in [`wait_for_answer`], so a zero
/// poll interval cannot turn the wait into a busy loop.
const MIN_POLL: Duration = Duration::from_millis(1);

/// One question in the folder and how far it got, so the runner can show
/// it, answer it, or tell it was already dealt with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// The sequence number (`001.question` → 1).
    pub seq: u32,
    /// The question, lossy UTF-8, trimmed, at most 64 KiB.
    pub text: String,
    /// When it was asked: the question file's modification time, for
    /// `questions.timeout`. `None` when the file system does not say.
    pub asked_at: Option<SystemTime>,
    /// The answer, once `NNN.answer` exists (lossy, trimmed, at most 64 KiB).
    pub answer: Option<String>,
    /// Whether the worker wrote `NNN.done`: it has read the answer, or has
    /// moved on without one.
    pub done: bool,
}

impl Question {
    /// Whether this question still needs an answer: none was written, and
    /// the worker has not marked it done. (A `NNN.done` without an answer
    /// means the worker gave up waiting; answering it would reach nobody.)
    pub fn is_waiting(&self) -> bool {
        self.answer.is_none() && !self.done
    }
}

/// The question is the worker's; an answer may quote a secret a rule or a
/// person gave it, which the worker may see but the records may not.
impl crate::domain::redact::Redact for Question {
    fn redact_with(&mut self, redactor: &crate::domain::redact::Redactor) {
        self.text.redact_with(redactor);
        self.answer.redact_with(redactor);
    }
}

/// Why an answer was not written, so the caller can tell a person "already
/// answered: …" instead of a bare I/O error.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// There is no `NNN.question` (or it is not a regular file).
    #[error("there is no such question")]
    NoSuchQuestion,
    /// Someone answered first; this is their answer.
    #[error("question already answered: {0}")]
    AlreadyAnswered(String),
    /// The folder could not be read or written.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The name of the file of kind `kind` for question `seq`, zero-padded to
/// three digits as the skill writes it: `file_name(1, "question")` is
/// `001.question`, `file_name(1000, "answer")` is `1000.answer`.
pub fn file_name(seq: u32, kind: &str) -> String {
    format!("{seq:03}.{kind}")
}

/// The sequence number in a file name's stem, only when it is written
/// exactly as [`file_name`] writes it: all digits, three of them at least,
/// no extra leading zeros, and not 0 (numbers start at 1). `01`, `0001`,
/// `abc` and the empty stem of `.question` are junk a worker left, not
/// questions.
fn parse_seq(stem: &str) -> Option<u32> {
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seq: u32 = stem.parse().ok()?;
    (seq > 0 && format!("{seq:03}") == stem).then_some(seq)
}

/// What the folder holds for one sequence number.
#[derive(Default)]
struct Entry {
    /// `NNN.question` is a regular file.
    question: bool,
    /// `NNN.answer` is a regular file.
    answer: bool,
    /// `NNN.done` exists (as anything: it is only a marker).
    done: bool,
}

/// The folder's entries by sequence number, plus the highest number any
/// `NNN.*` name uses (of any kind, so numbering never reuses one). A missing
/// folder holds nothing.
fn scan(ipc_dir: &Path) -> io::Result<(BTreeMap<u32, Entry>, u32)> {
    let mut entries: BTreeMap<u32, Entry> = BTreeMap::new();
    let mut highest = 0;
    let listing = match std::fs::read_dir(ipc_dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((entries, 0)),
        Err(e) => return Err(e),
    };
    for item in listing {
        let item = item?;
        let name = item.file_name();
        let Some((stem, kind)) = name.to_str().and_then(|n| n.split_once('.')) else {
            continue;
        };
        let Some(seq) = parse_seq(stem) else {
            continue;
        };
        highest = highest.max(seq);
        // `DirEntry::file_type` does not follow symlinks.
        let Ok(file_type) = item.file_type() else {
            continue;
        };
        let entry = entries.entry(seq).or_default();
        match kind {
            "question" => entry.question = file_type.is_file(),
            "answer" => entry.answer = file_type.is_file(),
            "done" => entry.done = true,
            _ => {}
        }
    }
    Ok((entries, highest))
}

/// Every question in the folder, by sequence number, with its answer and
/// done mark, for the runner's poll and `dispatch questions`. A missing
/// folder has no questions (a worker that never asked need not create it).
/// A question file that vanishes or turns into a symlink between the listing
/// and the read is skipped, not an error: it is the worker's to change.
pub fn list(ipc_dir: &Path) -> io::Result<Vec<Question>> {
    list_where(ipc_dir, |_| true)
}

/// Like [`list`], but reads only the questions whose number `wanted`
/// accepts: a runner that has already seen most of a long conversation
/// reads just the new questions and the ones still waiting, so each look
/// costs the same however many questions came before.
pub fn list_where(ipc_dir: &Path, wanted: impl Fn(u32) -> bool) -> io::Result<Vec<Question>> {
    let (entries, _) = scan(ipc_dir)?;
    let mut questions = Vec::new();
    for (seq, entry) in entries {
        if !entry.question || !wanted(seq) {
            continue;
        }
        let path = ipc_dir.join(file_name(seq, "question"));
        let Ok(file) = open_regular(&path) else {
            continue;
        };
        let asked_at = file.metadata().and_then(|m| m.modified()).ok();
        let Ok(text) = read_text(file) else {
            continue;
        };
        let answer = if entry.answer {
            read_message(&ipc_dir.join(file_name(seq, "answer"))).ok()
        } else {
            None
        };
        questions.push(Question {
            seq,
            text,
            asked_at,
            answer,
            done: entry.done,
        });
    }
    Ok(questions)
}

/// The questions that still need an answer (see [`Question::is_waiting`]),
/// oldest first.
pub fn waiting(ipc_dir: &Path) -> io::Result<Vec<Question>> {
    let mut questions = list(ipc_dir)?;
    questions.retain(Question::is_waiting);
    Ok(questions)
}

/// Write `bytes` to a temporary file in `dir` whose name never looks like a
/// sequence number (it starts with a dot), so a half-written file is never
/// taken for a question or answer.
fn temp_file_with(dir: &Path, bytes: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    let mut temp = tempfile::Builder::new()
        .prefix(".dispatch-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.flush()?;
    Ok(temp)
}

/// The message as written to disk: the text and one line break, as the
/// skill's workers write theirs.
fn message_bytes(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    if !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    bytes
}

/// Ask a question (for `dispatch worker ask`): write `NNN.question` with
/// the next number, 1 + the highest number of any `NNN.*` file, creating
/// the folder if needed. The file appears whole (a temporary file, then a
/// hard link to the final name), and the link fails rather than replace a
/// question another asker just took, in which case the next number is
/// tried. Returns the number.
pub fn ask(ipc_dir: &Path, text: &str) -> io::Result<u32> {
    std::fs::create_dir_all(ipc_dir)?;
    let temp = temp_file_with(ipc_dir, &message_bytes(text))?;
    for _ in 0..ASK_ATTEMPTS {
        let (_, highest) = scan(ipc_dir)?;
        let seq = highest
            .checked_add(1)
            .ok_or_else(|| io::Error::other("no question numbers are left"))?;
        match std::fs::hard_link(temp.path(), ipc_dir.join(file_name(seq, "question"))) {
            Ok(()) => return Ok(seq),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(
        "other askers kept taking the next question number",
    ))
}

/// Answer question `seq` (for the runner's rules, `questions.default_answer`
/// and `dispatch answer`). The answer appears whole: a temporary file, then
/// a hard link to `NNN.answer`, which fails when the name exists, so of two
/// answerers racing exactly one succeeds and the other learns what was
/// answered (`AlreadyAnswered`). The temporary file is removed either way.
pub fn answer(ipc_dir: &Path, seq: u32, text: &str) -> Result<(), AnswerError> {
    let question = ipc_dir.join(file_name(seq, "question"));
    match std::fs::symlink_metadata(&question) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(AnswerError::NoSuchQuestion),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(AnswerError::NoSuchQuestion),
        Err(e) => return Err(AnswerError::Io(e)),
    }
    let target = ipc_dir.join(file_name(seq, "answer"));
    if std::fs::symlink_metadata(&target).is_ok() {
        return Err(already_answered(&target));
    }
    let temp = temp_file_with(ipc_dir, &message_bytes(text))?;
    let linked = std::fs::hard_link(temp.path(), &target);
    // Remove the temporary name now rather than at the end of scope, so an
    // error while closing it is reported.
    temp.close()?;
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(already_answered(&target)),
        Err(e) => Err(AnswerError::Io(e)),
    }
}

/// The error for an answer that is already there, with its text (empty
/// when it cannot be read, e.g. because it is a symlink).
fn already_answered(path: &Path) -> AnswerError {
    AnswerError::AlreadyAnswered(read_message(path).unwrap_or_default())
}

/// Wait for the answer to question `seq` (the worker's side, for
/// `dispatch worker ask`): look every `poll` (at least 1 ms); once
/// `NNN.answer` is there, write `NNN.done` and return the answer. `None`
/// when `timeout` passes first; no timeout waits for ever.
pub fn wait_for_answer(
    ipc_dir: &Path,
    seq: u32,
    timeout: Option<Duration>,
    poll: Duration,
) -> io::Result<Option<String>> {
    let answer_path = ipc_dir.join(file_name(seq, "answer"));
    let started = Instant::now();
    let poll = poll.max(MIN_POLL);
    loop {
        match read_message(&answer_path) {
            Ok(text) => {
                mark_done(&ipc_dir.join(file_name(seq, "done")))?;
                return Ok(Some(text));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let pause = match timeout {
            None => poll,
            Some(limit) => {
                let elapsed = started.elapsed();
                if elapsed >= limit {
                    return Ok(None);
                }
                poll.min(limit - elapsed)
            }
        };
        std::thread::sleep(pause);
    }
}

/// Create an empty marker file unless something by that name exists
/// already; never follows a symlink planted in its place.
fn mark_done(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if std::fs::symlink_metadata(path).is_ok() {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether the worker said its whole plan is finished (`ipc/.done`). Looked
/// up with `symlink_metadata`, so any entry by that name counts, even a
/// dangling symlink: the marker is its existence, not its content.
pub fn all_done(ipc_dir: &Path) -> bool {
    std::fs::symlink_metadata(ipc_dir.join(".done")).is_ok()
}

/// The command that answers question `seq` of `task`, to paste.
pub fn answer_command(task: &str, seq: u32) -> String {
    format!("dispatch answer {task} --seq {seq} \"…\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fs;
    use std::sync::{Arc, Barrier};

    #[test]
    fn list_where_reads_only_the_wanted_questions() {
        let temp = tempfile::tempdir().expect("tempdir");
        for text in ["one?", "two?", "three?"] {
            ask(temp.path(), text).expect("ask");
        }
        answer(temp.path(), 2, "yes").expect("answer");
        let some = list_where(temp.path(), |seq| seq != 1).expect("list");
        let seqs: Vec<u32> = some.iter().map(|q| q.seq).collect();
        assert_eq!(seqs, vec![2, 3]);
        assert_eq!(some[0].answer.as_deref(), Some("yes"));
        assert_eq!(list(temp.path()).expect("list").len(), 3);
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn file_names_are_zero_padded_to_three_digits() {
        assert_eq!(file_name(1, "question"), "001.question");
        assert_eq!(file_name(42, "answer"), "042.answer");
        assert_eq!(file_name(999, "done"), "999.done");
        assert_eq!(file_name(1000, "question"), "1000.question");
    }

    #[test]
    fn sequence_numbers_must_be_written_canonically() {
        assert_eq!(parse_seq("001"), Some(1));
        assert_eq!(parse_seq("999"), Some(999));
        assert_eq!(parse_seq("1000"), Some(1000));
        for junk in [
            "",
            "01",
            "0001",
            "000",
            "abc",
            "1a3",
            "+01",
            " 01",
            "99999999999",
        ] {
            assert_eq!(parse_seq(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn questions_are_numbered_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ipc = dir.path().join("ipc");
        assert_eq!(ask(&ipc, "first?").expect("ask"), 1);
        assert_eq!(ask(&ipc, "second?").expect("ask"), 2);
        assert_eq!(names(&ipc), ["001.question", "002.question"]);
        assert_eq!(
            fs::read_to_string(ipc.join("001.question")).expect("read"),
            "first?\n"
        );
    }

    #[test]
    fn numbering_continues_after_a_gap_and_any_kind_of_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("005.question"), "q").expect("write");
        assert_eq!(ask(dir.path(), "next").expect("ask"), 6);
        fs::write(dir.path().join("009.done"), "").expect("write");
        assert_eq!(ask(dir.path(), "after a done").expect("ask"), 10);
    }

    #[test]
    fn junk_names_do_not_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        for junk in [
            "abc.question",
            "01.question",
            ".question",
            "0500.question",
            "77",
            "x.77",
        ] {
            fs::write(dir.path().join(junk), "junk").expect("write");
        }
        assert_eq!(ask(dir.path(), "real").expect("ask"), 1);
        let listed = list(dir.path()).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].text, "real");
    }

    #[test]
    fn numbering_goes_past_999() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("999.question"), "q").expect("write");
        assert_eq!(ask(dir.path(), "a thousand").expect("ask"), 1000);
        assert_eq!(ask(dir.path(), "and one").expect("ask"), 1001);
        assert!(dir.path().join("1000.question").exists());
        let seqs: Vec<u32> = list(dir.path())
            .expect("list")
            .iter()
            .map(|q| q.seq)
            .collect();
        assert_eq!(seqs, [999, 1000, 1001], "sorted numerically, not by name");
    }

    #[test]
    fn writes_leave_no_temporary_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        ask(dir.path(), "q1").expect("ask");
        ask(dir.path(), "q2").expect("ask");
        answer(dir.path(), 1, "a1").expect("answer");
        assert!(matches!(
            answer(dir.path(), 1, "again"),
            Err(AnswerError::AlreadyAnswered(_))
        ));
        assert_eq!(
            names(dir.path()),
            ["001.answer", "001.question", "002.question"]
        );
    }

    #[test]
    fn a_missing_folder_has_no_questions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        assert!(list(&missing).expect("list").is_empty());
        assert!(waiting(&missing).expect("waiting").is_empty());
        assert!(!all_done(&missing));
    }

    #[test]
    fn list_and_waiting_follow_each_question() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ipc = dir.path();
        let before = SystemTime::now() - Duration::from_secs(5);
        for text in ["one?", "two?", "three?"] {
            ask(ipc, text).expect("ask");
        }
        answer(ipc, 1, "  yes  \n").expect("answer");
        fs::write(ipc.join("001.done"), "").expect("done");
        answer(ipc, 2, "no").expect("answer");
        let all = list(ipc).expect("list");
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].answer.as_deref(), Some("yes"), "trimmed");
        assert!(all[0].done);
        assert!(!all[1].done);
        assert!(all[2].answer.is_none());
        assert!(all.iter().all(|q| q.asked_at.is_some_and(|t| t >= before)));
        let open: Vec<u32> = waiting(ipc)
            .expect("waiting")
            .iter()
            .map(|q| q.seq)
            .collect();
        assert_eq!(open, [3]);
        // A worker that gave up and marked the question done is not waiting.
        fs::write(ipc.join("003.done"), "").expect("done");
        assert!(waiting(ipc).expect("waiting").is_empty());
    }

    #[test]
    fn answering_twice_reports_the_first_answer() {
        let dir = tempfile::tempdir().expect("tempdir");
        ask(dir.path(), "q").expect("ask");
        answer(dir.path(), 1, "first").expect("answer");
        match answer(dir.path(), 1, "second") {
            Err(AnswerError::AlreadyAnswered(text)) => assert_eq!(text, "first"),
            other => panic!("expected AlreadyAnswered, got {other:?}"),
        }
        assert_eq!(
            fs::read_to_string(dir.path().join("001.answer")).expect("read"),
            "first\n"
        );
    }

    #[test]
    fn answering_an_unknown_question_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            answer(dir.path(), 1, "a"),
            Err(AnswerError::NoSuchQuestion)
        ));
        ask(dir.path(), "q").expect("ask");
        assert!(matches!(
            answer(dir.path(), 7, "a"),
            Err(AnswerError::NoSuchQuestion)
        ));
        let missing = dir.path().join("missing");
        assert!(matches!(
            answer(&missing, 1, "a"),
            Err(AnswerError::NoSuchQuestion)
        ));
        assert!(!dir.path().join("007.answer").exists());
    }

    #[test]
    fn racing_answerers_never_both_win() {
        for round in 0..100 {
            let dir = tempfile::tempdir().expect("tempdir");
            let ipc = Arc::new(dir.path().to_path_buf());
            ask(&ipc, "race?").expect("ask");
            let barrier = Arc::new(Barrier::new(2));
            let handles: Vec<_> = ["left", "right"]
                .into_iter()
                .map(|who| {
                    let ipc = Arc::clone(&ipc);
                    let barrier = Arc::clone(&barrier);
                    std::thread::spawn(move || {
                        barrier.wait();
                        answer(&ipc, 1, who).map(|()| who)
                    })
                })
                .collect();
            let results: Vec<_> = handles
                .into_iter()
                .map(|h| h.join().expect("join"))
                .collect();
            let winners: Vec<&str> = results
                .iter()
                .filter_map(|r| r.as_ref().ok().copied())
                .collect();
            assert_eq!(winners.len(), 1, "round {round}: {results:?}");
            let loser = results
                .iter()
                .find_map(|r| r.as_ref().err())
                .expect("a loser");
            match loser {
                AnswerError::AlreadyAnswered(text) => {
                    assert!(
                        text.is_empty() || text == winners[0],
                        "round {round}: {text}"
                    )
                }
                other => panic!("round {round}: {other:?}"),
            }
            let on_disk = fs::read_to_string(ipc.join("001.answer")).expect("read");
            assert_eq!(on_disk.trim(), winners[0]);
            assert_eq!(names(&ipc), ["001.answer", "001.question"], "round {round}");
        }
    }

    #[test]
    fn racing_askers_get_distinct_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ipc = Arc::new(dir.path().to_path_buf());
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let ipc = Arc::clone(&ipc);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    (0..10)
                        .map(|j| ask(&ipc, &format!("q {i} {j}")).expect("ask"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seqs: Vec<u32> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("join"))
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=80).collect::<Vec<_>>());
        assert_eq!(list(&ipc).expect("list").len(), 80);
    }

    #[test]
    fn a_question_moved_into_place_by_mv_is_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let temp = dir.path().join("tmp.q.XXXX");
        fs::write(&temp, "Which port?\n").expect("write");
        assert!(
            list(dir.path()).expect("list").is_empty(),
            "a temp name is no question"
        );
        fs::rename(&temp, dir.path().join("001.question")).expect("mv");
        let waiting = waiting(dir.path()).expect("waiting");
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].text, "Which port?");
        assert_eq!(ask(dir.path(), "next").expect("ask"), 2);
    }

    #[test]
    fn symlinked_files_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("secret");
        fs::write(&outside, "do not read me").expect("write");
        let ipc = dir.path().join("ipc");
        fs::create_dir(&ipc).expect("mkdir");
        std::os::unix::fs::symlink(&outside, ipc.join("001.question")).expect("symlink");
        assert!(list(&ipc).expect("list").is_empty());
        assert!(matches!(
            answer(&ipc, 1, "a"),
            Err(AnswerError::NoSuchQuestion)
        ));
        // The link still takes its number.
        assert_eq!(ask(&ipc, "real").expect("ask"), 2);
        // A symlinked answer is not an answer either.
        std::os::unix::fs::symlink(&outside, ipc.join("002.answer")).expect("symlink");
        let listed = list(&ipc).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].answer, None);
        match answer(&ipc, 2, "a") {
            Err(AnswerError::AlreadyAnswered(text)) => assert_eq!(text, "", "never read through"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            fs::read_to_string(&outside).expect("read"),
            "do not read me"
        );
    }

    #[test]
    fn a_huge_question_is_read_only_64_kib() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bytes = vec![b'x'; 10 * 1024 * 1024];
        bytes[0] = 0xff;
        fs::write(dir.path().join("001.question"), &bytes).expect("write");
        let listed = list(dir.path()).expect("list");
        assert_eq!(listed.len(), 1);
        assert!(listed[0].text.starts_with('\u{fffd}'), "lossy UTF-8");
        assert_eq!(listed[0].text.len(), 64 * 1024 - 1 + '\u{fffd}'.len_utf8());
    }

    #[test]
    fn waiting_for_an_answer_returns_it_and_marks_done() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ipc = Arc::new(dir.path().to_path_buf());
        let seq = ask(&ipc, "ready?").expect("ask");
        let answerer = {
            let ipc = Arc::clone(&ipc);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                answer(&ipc, seq, "go").expect("answer");
            })
        };
        let got = wait_for_answer(
            &ipc,
            seq,
            Some(Duration::from_secs(10)),
            Duration::from_millis(5),
        )
        .expect("wait");
        answerer.join().expect("join");
        assert_eq!(got.as_deref(), Some("go"));
        assert!(ipc.join("001.done").exists());
        let listed = list(&ipc).expect("list");
        assert!(listed[0].done && !listed[0].is_waiting());
    }

    #[test]
    fn waiting_times_out_with_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seq = ask(dir.path(), "anyone?").expect("ask");
        let started = Instant::now();
        let got = wait_for_answer(
            dir.path(),
            seq,
            Some(Duration::from_millis(60)),
            Duration::ZERO,
        )
        .expect("wait");
        assert_eq!(got, None);
        assert!(started.elapsed() >= Duration::from_millis(60));
        assert!(!dir.path().join("001.done").exists());
    }

    #[test]
    fn the_done_marker_is_any_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!all_done(dir.path()));
        std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join(".done"))
            .expect("symlink");
        assert!(all_done(dir.path()), "a dangling link counts");
    }

    proptest! {
        #[test]
        fn any_file_name_is_harmless(
            name in "[0-9a-z.]{1,12}".prop_filter("not . or ..", |n| n != "." && n != ".."),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            fs::write(dir.path().join(&name), "x").expect("write");
            let listed = list(dir.path()).expect("list");
            for q in &listed {
                prop_assert_eq!(file_name(q.seq, "question"), name.clone());
            }
            let seq = ask(dir.path(), "q").expect("ask");
            prop_assert!(seq >= 1);
        }

        #[test]
        fn question_text_round_trips_trimmed(text in "\\PC{0,200}") {
            let dir = tempfile::tempdir().expect("tempdir");
            let seq = ask(dir.path(), &text).expect("ask");
            let listed = list(dir.path()).expect("list");
            prop_assert_eq!(listed.len(), 1);
            prop_assert_eq!(listed[0].seq, seq);
            prop_assert_eq!(listed[0].text.as_str(), text.trim());
        }
    }
}
