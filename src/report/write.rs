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

/// A run's reports, rendered.
pub struct Rendered {
    pub report: Report,
    pub markdown: String,
    pub json: String,
    pub junit: String,
    pub html: String,
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
    let report = build(state, snapshot, redactor);
    let how = How::of(snapshot);
    match format {
        Format::Markdown => markdown::render(&report, &how.templates, how.severity),
        Format::Json => json(&report),
        Format::Junit => junit::render(&report, how.fail_severity, Some(how.root)),
        Format::Html => html::render(&report, snapshot, redactor),
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

/// Render the four reports of a run from its state, secrets replaced.
pub fn render(state: &StateDir, snapshot: &Snapshot, redactor: &Redactor) -> Rendered {
    let report = build(state, snapshot, redactor);
    let how = How::of(snapshot);
    // The three are independent and each takes milliseconds per hundred
    // tasks: render them side by side.
    let (markdown, json, junit, html) = std::thread::scope(|scope| {
        let markdown = scope.spawn(|| markdown::render(&report, &how.templates, how.severity));
        let junit = scope.spawn(|| junit::render(&report, how.fail_severity, Some(how.root)));
        let html = scope.spawn(|| html::render(&report, snapshot, redactor));
        let json = json(&report);
        let join = |handle: std::thread::ScopedJoinHandle<'_, String>| {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        };
        (join(markdown), json, join(junit), join(html))
    });
    Rendered {
        markdown,
        json,
        junit,
        html,
        report,
    }
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
    let rendered = render(state, snapshot, redactor);
    let mut problems = Vec::new();
    let mut put = |path: &Path, text: &str| {
        if let Err(e) = write_atomic(path, text.as_bytes()) {
            problems.push(format!("cannot write {}: {e}", path.display()));
        }
    };
    let run_dir = state.run_dir(run_id);
    put(&run_dir.join("report.md"), &rendered.markdown);
    put(&run_dir.join("report.json"), &rendered.json);
    put(&run_dir.join("junit.xml"), &rendered.junit);
    put(&run_dir.join("report.html"), &rendered.html);
    let manifest_dir = PathBuf::from(&snapshot.run.manifest_dir);
    let reports = &snapshot.run.reports;
    let mut dirs: Vec<PathBuf> = reports.dir.iter().map(|d| manifest_dir.join(d)).collect();
    dirs.extend(targets.dir.clone());
    for dir in dirs {
        put(&dir.join("report.md"), &rendered.markdown);
        put(&dir.join("report.json"), &rendered.json);
        put(&dir.join("junit.xml"), &rendered.junit);
        put(&dir.join("report.html"), &rendered.html);
    }
    for (path, text) in [
        (&reports.markdown, &rendered.markdown),
        (&reports.json, &rendered.json),
        (&reports.junit, &rendered.junit),
        (&reports.html, &rendered.html),
    ] {
        if let Some(path) = path {
            put(&manifest_dir.join(path), text);
        }
    }
    if let Some(path) = &targets.junit {
        put(path, &rendered.junit);
    }
    (rendered.markdown, problems)
}
