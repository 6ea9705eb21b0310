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

/// Render the four reports of a run from its state, secrets replaced.
pub fn render(state: &StateDir, snapshot: &Snapshot, redactor: &Redactor) -> Rendered {
    let report = build(state, snapshot, redactor);
    let manifest_dir = PathBuf::from(&snapshot.run.manifest_dir);
    let templates = Templates::new(Some(manifest_dir.join("templates")));
    let fail_severity = snapshot
        .run
        .reports
        .junit_fail_severity
        .unwrap_or(Severity::High);
    // The three are independent and each takes milliseconds per hundred
    // tasks: render them side by side.
    let severity = crate::events::attention::recorded_severity(&snapshot.run);
    let (markdown, json, junit, html) = std::thread::scope(|scope| {
        let markdown = scope.spawn(|| markdown::render(&report, &templates, severity));
        let root = Path::new(&snapshot.run.root);
        let junit = scope.spawn(|| junit::render(&report, fail_severity, Some(root)));
        let html = scope.spawn(|| html::render(&report, snapshot, redactor));
        let mut json = crate::util::escape::json_for_terminal(
            &serde_json::to_string_pretty(&report).unwrap_or_default(),
        );
        json.push('\n');
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
