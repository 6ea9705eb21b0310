//! The GitHub job summary (`GITHUB_STEP_SUMMARY`), kept within what GitHub
//! takes. GitHub refuses a step's summary over 1 MiB whole: nothing of it
//! shows, and the step gets an error annotation instead. The report of a
//! sweep of a few thousand tasks is past that, so the summary is the
//! report's beginning (the counts and the tasks that need attention come
//! first) cut at a line's end, with a note saying where the whole is.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

/// The most a step's job summary may hold, in bytes.
pub const LIMIT: usize = 1024 * 1024;

/// Append `markdown` to the job summary file at `path`, cut to the room
/// left in it (a step may have written there before); `whole` says where
/// the whole report is. Used by the run's GitHub reporter and by `dispatch
/// merge`.
pub fn append(path: &Path, markdown: &str, whole: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let used = file.metadata().map_or(0, |m| m.len());
    let room = LIMIT.saturating_sub(usize::try_from(used).unwrap_or(LIMIT));
    file.write_all(fit(markdown, room, whole).as_bytes())
}

/// `markdown` as it is if it fits in `room` bytes; otherwise its lines up
/// to where the rest and a note naming `whole` still fit, a code block left
/// open closed first so the note shows as text. Nothing when not even the
/// note fits.
pub fn fit<'a>(markdown: &'a str, room: usize, whole: &str) -> Cow<'a, str> {
    if markdown.len() <= room {
        return Cow::Borrowed(markdown);
    }
    let note = format!(
        "\n> The report is longer than a GitHub job summary may be (1 MiB), so it ends here; the whole report is {whole}.\n"
    );
    let Some(budget) = room.checked_sub(note.len() + FENCE.len()) else {
        return Cow::Borrowed("");
    };
    let mut end = budget.min(markdown.len());
    while !markdown.is_char_boundary(end) {
        end -= 1;
    }
    let head = &markdown[..end];
    let head = head.rfind('\n').map_or("", |i| &head[..=i]);
    let mut text = String::with_capacity(head.len() + FENCE.len() + note.len());
    text.push_str(head);
    let fences = head
        .lines()
        .filter(|line| line.trim_start().starts_with("```"))
        .count();
    if fences % 2 == 1 {
        text.push_str(FENCE);
    }
    text.push_str(&note);
    Cow::Owned(text)
}

/// What closes a code block left open at the cut.
const FENCE: &str = "```\n";

#[cfg(test)]
mod tests {
    use super::*;

    const WHOLE: &str = "`.dispatch/runs/r/report.md`";

    #[test]
    fn a_report_that_fits_is_the_summary_unchanged() {
        assert!(matches!(
            fit("# r\n\nall fine\n", 100, WHOLE),
            Cow::Borrowed("# r\n\nall fine\n")
        ));
    }

    /// Cut at a line's end within the room, never inside a character, the
    /// note last and naming where the whole report is.
    #[test]
    fn a_long_report_ends_at_a_line_within_the_room_with_a_note() {
        let report: String = (0..400)
            .map(|i| format!("| t{i:04} | ✓ done é |\n"))
            .collect();
        for room in [300, 1_000, 4_097, report.len() - 1] {
            let text = fit(&report, room, WHOLE);
            assert!(text.len() <= room, "{} > {room}", text.len());
            let (head, note) =
                text.split_at(text.find("\n> The report is longer").expect("a note"));
            assert!(report.starts_with(head), "{head}");
            assert!(head.is_empty() || head.ends_with('\n'), "{head:?}");
            assert!(note.contains(WHOLE) && note.ends_with(".\n"), "{note}");
        }
        assert_eq!(fit(&report, 20, WHOLE), "", "not even the note fits");
    }

    #[test]
    fn a_code_block_open_at_the_cut_is_closed_before_the_note() {
        let report = format!("# r\n\n```text\n{}```\n", "log line\n".repeat(200));
        let text = fit(&report, 600, WHOLE);
        assert!(text.len() <= 600);
        assert!(text.contains("log line\n```\n\n> The report"), "{text}");
        let closed = format!("# r\n\n```text\nx\n```\n{}", "row\n".repeat(200));
        assert!(
            !fit(&closed, 600, WHOLE).contains("row\n```"),
            "a closed block stays as it is"
        );
    }

    /// What a step wrote to its summary before counts against the room.
    #[test]
    fn the_summary_file_never_grows_past_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("summary.md");
        std::fs::write(&path, "# Before\n\nsomething the step wrote\n").expect("write");
        let report: String = (0..60_000)
            .map(|i| format!("| t{i:05} | complete |\n"))
            .collect();
        assert!(report.len() > LIMIT);
        append(&path, &report, WHOLE).expect("append");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.len() <= LIMIT, "{}", text.len());
        assert!(text.len() > LIMIT - 200, "the room is used: {}", text.len());
        assert!(text.starts_with("# Before\n"));
        assert!(text.ends_with(&format!("the whole report is {WHOLE}.\n")));
    }
}
