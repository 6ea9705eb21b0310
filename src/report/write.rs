//! Where reports go (`report.md`, `report.json`, `junit.xml` and
//! `report.html`): always into the run's folder, and also wherever the
//! manifest's `reports:` and the command line (`--junit`, `--report-dir`)
//! say. (On GitHub Actions the job summary and annotations are a reporter's
//! job: `events::github`.)

use std::path::{Path, PathBuf};

use super::{build, html, junit, markdown, Report};
use crate::domain::redact::Redactor;
use crate::manifest::types::Severity;
use crate::plan::templates::Templates;
use crate::record::snapshot::Snapshot;
use crate::state::fsutil::write_atomic;
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

/// One report of a run from its state, secrets replaced: `dispatch report
/// --format F` renders only the one it prints (at 50,000 tasks each of
/// the others costs seconds).
pub fn render_one(
    state: &StateDir,
    snapshot: &Snapshot,
    redactor: &Redactor,
    format: Format,
) -> String {
    Renderer::new(state, snapshot, redactor).render(format)
}

/// A run's report built once, rendered in each format asked for, one at a
/// time: at 50,000 tasks each text is tens of megabytes, and holding the
/// four side by side (with their intermediate copies) added about 130 MB
/// to the run's memory peak.
pub struct Renderer<'a> {
    report: Report,
    how: How<'a>,
    snapshot: &'a Snapshot,
    redactor: &'a Redactor,
}

impl<'a> Renderer<'a> {
    pub fn new(state: &StateDir, snapshot: &'a Snapshot, redactor: &'a Redactor) -> Self {
        Self {
            report: build(state, snapshot, redactor),
            how: How::of(snapshot),
            snapshot,
            redactor,
        }
    }

    pub fn render(&self, format: Format) -> String {
        let (report, how) = (&self.report, &self.how);
        match format {
            Format::Markdown => markdown::render(report, &how.templates, how.severity),
            Format::Json => json(report),
            Format::Junit => junit::render(report, how.fail_severity, Some(how.root)),
            Format::Html => html::render(report, self.snapshot, self.redactor),
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

/// `report.json`'s text.
fn json(report: &Report) -> String {
    let mut json = crate::util::escape::json_for_terminal(
        &serde_json::to_string_pretty(report).unwrap_or_default(),
    );
    json.push('\n');
    json
}

/// Write the reports of a finished run. Returns the Markdown report (the
/// GitHub reporter puts it in the job summary) and the problems, if any, as
/// messages (a report that cannot be written never changes the run's
/// outcome). The runner passes the run as it holds it in memory, rather
/// than have every task's files read back.
pub fn after_run(
    state: &StateDir,
    snapshot: &Snapshot,
    targets: &Targets,
    redactor: &Redactor,
) -> (String, Vec<String>) {
    let run_id = snapshot.run.run_id.as_str();
    let renderer = Renderer::new(state, snapshot, redactor);
    let manifest_dir = PathBuf::from(&snapshot.run.manifest_dir);
    let reports = &snapshot.run.reports;
    let mut dirs = vec![state.run_dir(run_id)];
    dirs.extend(reports.dir.iter().map(|d| manifest_dir.join(d)));
    dirs.extend(targets.dir.clone());
    let mut problems = Vec::new();
    let mut put = |name: &str, own: Option<&String>, extra: Option<&PathBuf>, text: &str| {
        let paths = dirs
            .iter()
            .map(|dir| dir.join(name))
            .chain(own.map(|path| manifest_dir.join(path)))
            .chain(extra.cloned());
        for path in paths {
            if let Err(e) = write_atomic(&path, text.as_bytes()) {
                problems.push(format!("cannot write {}: {e}", path.display()));
            }
        }
    };
    // Each text is dropped once written (see [`Renderer`]).
    let markdown = renderer.render(Format::Markdown);
    put("report.md", reports.markdown.as_ref(), None, &markdown);
    put(
        "report.json",
        reports.json.as_ref(),
        None,
        &renderer.render(Format::Json),
    );
    put(
        "junit.xml",
        reports.junit.as_ref(),
        targets.junit.as_ref(),
        &renderer.render(Format::Junit),
    );
    put(
        "report.html",
        reports.html.as_ref(),
        None,
        &renderer.render(Format::Html),
    );
    (markdown, problems)
}
