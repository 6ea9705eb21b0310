//! Where reports go: always into the run's folder, and also wherever the
//! manifest's `reports:` and the command line (`--junit`, `--report-dir`)
//! say; on GitHub Actions, into the job summary and as annotations.

use std::path::{Path, PathBuf};

use super::{build, junit, markdown, Report};
use crate::domain::redact::Redactor;
use crate::manifest::types::Severity;
use crate::plan::templates::Templates;
use crate::record::snapshot::Snapshot;
use crate::state::fsutil::write_atomic;
use crate::state::StateDir;
use crate::util::escape;

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
}

/// Render the three reports of a run from its state, secrets replaced.
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
    let (markdown, json, junit) = std::thread::scope(|scope| {
        let markdown = scope.spawn(|| markdown::render(&report, &templates));
        let junit = scope.spawn(|| junit::render(&report, fail_severity));
        let mut json = crate::util::escape::json_for_terminal(
            &serde_json::to_string_pretty(&report).unwrap_or_default(),
        );
        json.push('\n');
        let join = |handle: std::thread::ScopedJoinHandle<'_, String>| {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        };
        (join(markdown), json, join(junit))
    });
    Rendered {
        markdown,
        json,
        junit,
        report,
    }
}

/// Write the reports of a finished run; the problems, if any, as messages
/// (a report that cannot be written never changes the run's outcome).
/// The runner passes the run as it holds it in memory, rather than have
/// every task's files read back.
pub fn after_run(
    state: &StateDir,
    snapshot: &Snapshot,
    targets: &Targets,
    redactor: &Redactor,
) -> Vec<String> {
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
    let manifest_dir = PathBuf::from(&snapshot.run.manifest_dir);
    let reports = &snapshot.run.reports;
    let mut dirs: Vec<PathBuf> = reports.dir.iter().map(|d| manifest_dir.join(d)).collect();
    dirs.extend(targets.dir.clone());
    for dir in dirs {
        put(&dir.join("report.md"), &rendered.markdown);
        put(&dir.join("report.json"), &rendered.json);
        put(&dir.join("junit.xml"), &rendered.junit);
    }
    for (path, text) in [
        (&reports.markdown, &rendered.markdown),
        (&reports.json, &rendered.json),
        (&reports.junit, &rendered.junit),
    ] {
        if let Some(path) = path {
            put(&manifest_dir.join(path), text);
        }
    }
    if let Some(path) = &targets.junit {
        put(path, &rendered.junit);
    }
    problems.extend(github(&rendered));
    problems
}

/// On GitHub Actions: the Markdown report into the job summary, and an
/// annotation for each finding with a location, so it shows on the diff.
fn github(rendered: &Rendered) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|s| !s.is_empty()) {
        use std::io::Write;
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&summary)
            .and_then(|mut f| f.write_all(rendered.markdown.as_bytes()));
        if let Err(e) = appended {
            problems.push(format!("cannot append to GITHUB_STEP_SUMMARY: {e}"));
        }
    }
    if std::env::var_os("GITHUB_ACTIONS").is_some() {
        for line in annotations(&rendered.report) {
            println!("{line}");
        }
    }
    problems
}

/// `::error file=F,line=L,title=T::message` for each finding with a
/// location (`::warning` below high).
pub fn annotations(report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for task in &report.tasks {
        for finding in &task.findings {
            let Some(location) = &finding.location else {
                continue;
            };
            let (file, line) = match location.rsplit_once(':') {
                Some((file, line))
                    if line.chars().all(|c| c.is_ascii_digit()) && !line.is_empty() =>
                {
                    (file, Some(line))
                }
                _ => (location.as_str(), None),
            };
            let level = if finding.severity >= Severity::High {
                "error"
            } else {
                "warning"
            };
            let mut properties = format!("file={}", escape::github_property(file));
            if let Some(line) = line {
                properties.push_str(&format!(",line={line}"));
            }
            properties.push_str(&format!(
                ",title={}",
                escape::github_property(&format!(
                    "{} {}",
                    task.id,
                    super::severity_name(finding.severity)
                ))
            ));
            out.push(format!(
                "::{level} {properties}::{}",
                escape::github_data(&finding.title)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_cannot_forge_a_workflow_command() {
        let finding = super::super::FindingReport {
            severity: Severity::High,
            title: "t\n::error::forged\x1b[2J".to_owned(),
            location: Some("a,b:c\n::stop-commands::x:12".to_owned()),
            detail: None,
        };
        let mut report: Report = serde_json::from_value(serde_json::json!({
            "format_version": 1, "run_id": "r", "name": "n", "manifest": "m",
            "started_at": "", "ended_at": null, "status": "complete", "exit_code": 0,
            "escalations": [], "continues": null, "shard": null, "merge_readiness": null,
            "totals": {"tasks": 0, "statuses": {}, "findings": {}, "usage": {"turns": 0,
                "input_tokens": 0, "output_tokens": 0, "cost_usd": null}, "models": [],
                "budget": null},
            "tasks": [],
        }))
        .unwrap_or_else(|e| panic!("report: {e}"));
        report.tasks.push(
            serde_json::from_value(serde_json::json!({
                "id": "t", "title": "", "status": "complete", "reason": null, "model": null,
                "backend": "command", "worktree": false, "branch": null, "priority": "normal",
                "started_at": null, "ended_at": null, "duration_ms": null, "attempts": 1,
                "items_done": 0, "items_total": 0, "plan": [], "usage": {"turns": 0,
                    "input_tokens": 0, "output_tokens": 0, "cost_usd": null},
                "budget": null, "carried_from": null, "findings": [finding],
                "questions": [], "output_path": "", "output_head": null, "log_tail": "",
            }))
            .unwrap_or_else(|e| panic!("task: {e}")),
        );
        let lines = annotations(&report);
        assert_eq!(
            lines,
            ["::error file=a%2Cb%3Ac%0A%3A%3Astop-commands%3A%3Ax,line=12,title=t high::t%0A::error::forged\\x1b[2J"]
        );
    }
}
