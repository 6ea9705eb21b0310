//! Where reports go (`report.md`, `report.json`, `junit.xml` and
//! `report.html`): always into the run's folder, and also wherever the
//! manifest's `reports:` and the command line (`--junit`, `--report-dir`)
//! say. (On GitHub Actions the job summary and annotations are a reporter's
//! job: `events::github`.)

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{build, build_from_disk, html, junit, markdown, Cores, Report};
use crate::domain::redact::Redactor;
use crate::manifest::types::Severity;
use crate::plan::templates::Templates;
use crate::record::snapshot::Snapshot;
use crate::record::RunRecord;
use crate::state::fsutil::write_atomic_with;
use crate::state::open_regular;
use crate::state::StateDir;

/// Extra places for the reports, from the command line.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    pub junit: Option<PathBuf>,
    pub dir: Option<PathBuf>,
}

/// One of a run's reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Json,
    Junit,
    Html,
}

/// One report of `run` from its state, secrets replaced, written to `out`
/// as it is rendered: `dispatch report --format F` renders only the one it
/// prints (at 50,000 tasks each of the others costs seconds), and keeps
/// of each task only its part of the report (the HTML page also reads the
/// records).
pub fn write_one(
    state: &StateDir,
    run: RunRecord,
    redactor: &Redactor,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    let (report, snapshot) = build_from_disk(state, run, redactor, format == Format::Html);
    Renderer::from_report(report, &snapshot, redactor).write(format, out)
}

/// A run's report built once, rendered in each format asked for, each
/// written as it renders: at 50,000 tasks each text is tens of megabytes,
/// and holding the four side by side (with their intermediate copies)
/// added about 130 MB to the run's memory peak. [`after_run`] renders two
/// formats at once only for runs up to [`SIDE_BY_SIDE_UP_TO`] tasks.
pub struct Renderer<'a> {
    /// Shared with the Markdown template's values, which must own it.
    report: std::sync::Arc<Report>,
    how: How<'a>,
    snapshot: &'a Snapshot,
    redactor: &'a Redactor,
}

impl<'a> Renderer<'a> {
    /// Takes each task's last plan into the report (see [`build`]).
    pub fn new(state: &StateDir, snapshot: &'a mut Snapshot, redactor: &'a Redactor) -> Self {
        let report = build(state, snapshot, redactor, Cores::All);
        Self::from_report(report, snapshot, redactor)
    }

    /// A renderer of `report`, already built from `snapshot`.
    pub(crate) fn from_report(
        report: Report,
        snapshot: &'a Snapshot,
        redactor: &'a Redactor,
    ) -> Self {
        Self {
            report: std::sync::Arc::new(report),
            how: How::of(snapshot),
            snapshot,
            redactor,
        }
    }

    /// The report in `format`, as text.
    pub fn render(&self, format: Format) -> String {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write(format, &mut out);
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// The report in `format`, written to `out` as it is rendered (JSON
    /// and HTML one task at a time), never whole in memory.
    pub fn write(&self, format: Format, out: &mut dyn Write) -> io::Result<()> {
        let (report, how) = (&self.report, &self.how);
        match format {
            Format::Markdown => markdown::write(report, &how.templates, how.severity, out),
            Format::Json => json(report, out),
            Format::Junit => junit::write(report, how.fail_severity, Some(how.root), out),
            Format::Html => html::write(report, self.snapshot, self.redactor, out),
        }
    }
}

/// What the reports take from the run besides its report: the templates,
/// the severities and the root.
struct How<'a> {
    templates: Templates,
    fail_severity: Severity,
    severity: Severity,
    root: &'a Path,
}

impl<'a> How<'a> {
    fn of(snapshot: &'a Snapshot) -> How<'a> {
        let manifest_dir = PathBuf::from(&snapshot.run.manifest_dir);
        How {
            templates: Templates::new(Some(manifest_dir.join("templates"))),
            fail_severity: snapshot
                .run
                .reports
                .junit_fail_severity
                .unwrap_or(Severity::High),
            severity: crate::events::attention::recorded_severity(&snapshot.run),
            root: Path::new(&snapshot.run.root),
        }
    }
}

/// `report.json`, written a task at a time: pretty JSON of the report
/// without its tasks, then each task's, indented to its place. A line
/// break in pretty JSON is always layout (one inside a string is `\n`),
/// so indenting after each one moves a task's JSON to its depth and the
/// text is what `to_string_pretty` of the whole report gives, without the
/// whole of it ever in memory. Each part is made safe for a terminal on
/// its own (that escape is per character).
fn json(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let terminal = crate::util::escape::json_for_terminal;
    let head = serde_json::to_string_pretty(&report.without_tasks()).unwrap_or_default();
    let Some(head) = head
        .strip_suffix("[]\n}")
        .filter(|_| !report.tasks.is_empty())
    else {
        out.write_all(terminal(&head).as_bytes())?;
        return out.write_all(b"\n");
    };
    out.write_all(terminal(head).as_bytes())?;
    out.write_all(b"[")?;
    for (i, task) in report.tasks.iter().enumerate() {
        out.write_all(if i == 0 { b"\n    " } else { b",\n    " })?;
        let text = serde_json::to_string_pretty(task).unwrap_or_default();
        out.write_all(terminal(&text.replace('\n', "\n    ")).as_bytes())?;
    }
    out.write_all(b"\n  ]\n}\n")
}

/// Runs of up to this many tasks have their reports rendered two at a
/// time, one pair on another core: at a thousand tasks that is about half
/// of what a run spends after its last worker. Larger runs render one at a
/// time: `report.html` holds the records while it renders, and beside
/// another report it would raise a wide sweep's memory peak.
pub const SIDE_BY_SIDE_UP_TO: usize = 10_000;

/// Write the reports of a finished run. Returns the beginning of the
/// Markdown report, as much as the GitHub job summary can show and a byte
/// more (see [`RunEnd::markdown`](crate::events::reporter::RunEnd)), and the problems, if any, as
/// messages (a report that cannot be written never changes the run's
/// outcome). The runner passes the run as it holds it in memory, rather
/// than have every task's files read back.
pub fn after_run(
    state: &StateDir,
    snapshot: &mut Snapshot,
    targets: &Targets,
    redactor: &Redactor,
) -> (String, Vec<String>) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let side_by_side = cores > 1 && snapshot.tasks.len() <= SIDE_BY_SIDE_UP_TO;
    write_finished(state, snapshot, targets, redactor, side_by_side)
}

/// [`after_run`], the reports rendered two at a time or one at a time.
pub(super) fn write_finished(
    state: &StateDir,
    snapshot: &mut Snapshot,
    targets: &Targets,
    redactor: &Redactor,
    side_by_side: bool,
) -> (String, Vec<String>) {
    // A wide run's records are turned into the report on this thread, as
    // its reports are rendered one at a time: both for the run's peak.
    let cores = if side_by_side { Cores::All } else { Cores::One };
    let report = build(state, snapshot, redactor, cores);
    let snapshot: &Snapshot = snapshot;
    let renderer = Renderer::from_report(report, snapshot, redactor);
    let places = Places::of(state, snapshot, targets);
    let reports = &snapshot.run.reports;
    // The GitHub reporter puts the Markdown in the job summary, which
    // shows no more than its limit: that much of it is kept as text.
    // Two by two: Markdown and HTML (the slower two to render from
    // templates) on one core, JUnit and JSON on the other, which at a
    // thousand tasks takes each pair about as long.
    let text_reports = || {
        let kept = KeptHead::default();
        let md = |out: &mut dyn Write| kept.write(out, |out| renderer.write(Format::Markdown, out));
        let mut problems = places.put("report.md", reports.markdown.as_ref(), None, &md);
        if !kept.whole.get() {
            // Written nowhere: rendered again for the summary alone.
            let _ = md(&mut io::sink());
        }
        let markdown = String::from_utf8_lossy(&kept.head.take()).into_owned();
        let html = |out: &mut dyn Write| renderer.write(Format::Html, out);
        problems.extend(places.put("report.html", reports.html.as_ref(), None, &html));
        (markdown, problems)
    };
    let other_reports = || {
        let junit = |out: &mut dyn Write| renderer.write(Format::Junit, out);
        let junit_path = targets.junit.as_ref();
        let mut problems = places.put("junit.xml", reports.junit.as_ref(), junit_path, &junit);
        let json = |out: &mut dyn Write| renderer.write(Format::Json, out);
        problems.extend(places.put("report.json", reports.json.as_ref(), None, &json));
        problems
    };
    let ((markdown, mut problems), others) = if side_by_side {
        std::thread::scope(|scope| {
            let others = scope.spawn(other_reports);
            let text = text_reports();
            let others = others
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (text, others)
        })
    } else {
        (text_reports(), other_reports())
    };
    problems.extend(others);
    (markdown, problems)
}

/// The beginning of a report written elsewhere, as much of it as a job
/// summary can show and a byte more (so a cut can tell it was cut).
#[derive(Default)]
struct KeptHead {
    head: std::cell::RefCell<Vec<u8>>,
    /// The last write rendered the whole report.
    whole: std::cell::Cell<bool>,
}

impl KeptHead {
    const KEEP: usize = crate::events::job_summary::LIMIT + 1;

    /// `render` into `out`, keeping the head of what it writes (a write
    /// tried again after a failed one starts afresh).
    fn write(
        &self,
        out: &mut dyn Write,
        render: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        self.head.borrow_mut().clear();
        let written = render(&mut Tee { out, kept: self });
        self.whole.set(written.is_ok());
        written
    }
}

/// Writes to `out`, and keeps the first bytes in `kept`.
struct Tee<'a> {
    out: &'a mut dyn Write,
    kept: &'a KeptHead,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        let mut head = self.kept.head.borrow_mut();
        let room = KeptHead::KEEP.saturating_sub(head.len());
        head.extend_from_slice(&buf[..n.min(room)]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Where a finished run's reports go: the run's folder, the manifest's
/// `reports.dir` and `--report-dir`, and each report's own path if set.
struct Places {
    dirs: Vec<PathBuf>,
    manifest_dir: PathBuf,
}

/// Writes a report to a file.
type Source<'s> = &'s dyn Fn(&mut dyn Write) -> io::Result<()>;

impl Places {
    fn of(state: &StateDir, snapshot: &Snapshot, targets: &Targets) -> Self {
        let manifest_dir = PathBuf::from(&snapshot.run.manifest_dir);
        let mut dirs = vec![state.run_dir(&snapshot.run.run_id)];
        dirs.extend(
            snapshot
                .run
                .reports
                .dir
                .iter()
                .map(|d| manifest_dir.join(d)),
        );
        dirs.extend(targets.dir.clone());
        Places { dirs, manifest_dir }
    }

    /// Write report `name` to its first place as it is rendered, and copy
    /// it from there to the others (see [`Renderer`]). Returns what could
    /// not be written.
    fn put(
        &self,
        name: &str,
        own: Option<&String>,
        extra: Option<&PathBuf>,
        source: Source,
    ) -> Vec<String> {
        let paths = self
            .dirs
            .iter()
            .map(|dir| dir.join(name))
            .chain(own.map(|path| self.manifest_dir.join(path)))
            .chain(extra.cloned());
        let mut problems = Vec::new();
        let mut first: Option<PathBuf> = None;
        for path in paths {
            let written = match &first {
                Some(from) => write_atomic_with(&path, |out| {
                    io::copy(&mut open_regular(from)?, out).map(drop)
                }),
                None => write_atomic_with(&path, source),
            };
            match written {
                Ok(()) if first.is_none() => first = Some(path),
                Ok(()) => {}
                Err(e) => problems.push(format!("cannot write {}: {e}", path.display())),
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that fails after `left` bytes.
    struct FailsAfter {
        left: usize,
    }

    impl Write for FailsAfter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = buf.len().min(self.left);
            self.left -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The whole report reaches its file; only what a job summary can show
    /// (and a byte to tell it was cut) stays in memory: at 50,000 tasks the
    /// Markdown report is 16 MB.
    #[test]
    fn the_markdown_kept_for_the_job_summary_is_the_reports_head_only() {
        let report: Vec<u8> = (0..200_000)
            .flat_map(|i| format!("| t{i:06} | complete |\n").into_bytes())
            .collect();
        assert!(report.len() > 3 * KeptHead::KEEP);
        let kept = KeptHead::default();
        let mut file = Vec::new();
        let render = |out: &mut dyn Write| {
            report
                .chunks(8192)
                .try_for_each(|chunk| out.write_all(chunk))
        };
        kept.write(&mut file, render).expect("written");
        assert_eq!(file, report);
        assert!(kept.whole.get());
        let head = kept.head.take();
        assert_eq!(head.len(), KeptHead::KEEP);
        assert!(report.starts_with(&head));

        // A write that fails midway is not the whole; tried again, the
        // head starts afresh rather than after the failed part.
        let small = b"# report\n\nall fine\n";
        let render_small = |out: &mut dyn Write| out.write_all(small);
        assert!(kept
            .write(&mut FailsAfter { left: 5 }, render_small)
            .is_err());
        assert!(!kept.whole.get());
        kept.write(&mut io::sink(), render_small).expect("written");
        assert!(kept.whole.get());
        assert_eq!(kept.head.take(), small);
    }
}
