//! `dispatch matrix FILE`: the GitHub Actions matrix of a sweep's shards
//! (or tasks); `dispatch merge REPORT...`: the shards' reports as one. See
//! docs/sharding.md.

use std::path::{Path, PathBuf};

use super::{exit, print_stdout, report, VarArgs};
use crate::manifest::{self, types::Severity, Invalid};
use crate::plan::balance::Durations;
use crate::plan::shard::{self, Shard, MAX_SHARDS};
use crate::plan::{self, templates::Templates, PlanOptions, SweepPlan};
use crate::report::{junit, markdown, merge as merged, Report};
use crate::state::fsutil::write_atomic;

#[derive(Debug, clap::Args)]
pub struct MatrixArgs {
    /// The manifest.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// One entry per shard (`"K/N"`, for `dispatch run --shard`) of a sweep
    /// split into N; shards left without tasks are not listed. Without it,
    /// one entry per task.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SHARDS)))]
    pub shards: Option<u32>,
    /// With --shards: balance the shards by the task durations in this
    /// report.json, as `dispatch run --shard K/N --durations` does (give
    /// both the same file).
    #[arg(long, value_name = "REPORT.json", requires = "shards")]
    pub durations: Option<PathBuf>,
    #[command(flatten)]
    pub vars: VarArgs,
}

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The shards' `report.json` files (or the folders that hold them).
    #[arg(required = true, value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,
    /// Write the merged JUnit file here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the merged report.md, report.json and junit.xml into this
    /// folder.
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
}

/// Print `{"shard":["1/N",…]}` or `{"task":["id",…]}` on one line.
pub fn matrix(args: &MatrixArgs) -> u8 {
    let plan = match plan_for(&args.file, &args.vars) {
        Ok(plan) => plan,
        Err(invalid) => {
            report(&invalid);
            return exit::USAGE;
        }
    };
    let matrix = match args.shards {
        Some(count) => {
            let durations = match args.durations.as_deref().map(Durations::read).transpose() {
                Ok(durations) => durations,
                Err(e) => {
                    eprintln!("error: {e}");
                    eprintln!("  help: {}", e.help());
                    return exit::USAGE;
                }
            };
            let assigned = shard::assign_plan_with(&plan, count, durations.as_ref());
            let shards: Vec<String> = (1..=count)
                .filter(|k| assigned.contains(k))
                .map(|index| Shard { index, count }.to_string())
                .collect();
            serde_json::json!({ "shard": shards })
        }
        None => {
            if plan.tasks.len() > MAX_SHARDS as usize {
                eprintln!(
                    "warning: {} tasks, and a GitHub Actions matrix holds at most {MAX_SHARDS} jobs\n  = help: split the sweep into shards with --shards N",
                    plan.tasks.len()
                );
            }
            let ids: Vec<&str> = plan.tasks.iter().map(|t| t.id.as_str()).collect();
            serde_json::json!({ "task": ids })
        }
    };
    print_stdout(&format!("{matrix}\n"));
    exit::OK
}

/// The plan as `dispatch plan` builds it.
fn plan_for(file: &Path, vars: &VarArgs) -> Result<SweepPlan, Invalid> {
    let loaded = manifest::load_with_user_config(file)?;
    let options = PlanOptions {
        vars: vars.vars.clone(),
        run_id: "dry-run".to_owned(),
        root: None,
        prompts: plan::Prompts::Lazy,
    };
    plan::build(&loaded, &options)
}

/// Merge the reports, write the merged ones where asked (the Markdown
/// report on stdout when no place is given), and exit with the merged
/// exit code.
pub fn merge(args: &MergeArgs) -> u8 {
    let mut names = Vec::with_capacity(args.reports.len());
    let mut reports = Vec::with_capacity(args.reports.len());
    for given in &args.reports {
        let path = if given.is_dir() {
            given.join("report.json")
        } else {
            given.clone()
        };
        match read_report(&path) {
            Ok(report) => reports.push(report),
            Err(message) => {
                eprintln!("error: {message}");
                return exit::USAGE;
            }
        }
        names.push(path.display().to_string());
    }
    let count = reports.len();
    let report = match merged::merge(reports) {
        Ok(report) => report,
        Err(e) => {
            eprintln!(
                "error: {}\n  = help: {}",
                e.message(|i| names.get(i).cloned().unwrap_or_default()),
                e.help()
            );
            return exit::USAGE;
        }
    };
    // Shared with the Markdown template's values.
    let report = std::sync::Arc::new(report);
    // A merged report keeps no escalation rules: critical findings count.
    let markdown = markdown::render(
        &report,
        &Templates::new(None),
        crate::manifest::types::Severity::Critical,
    );
    // The shards ran elsewhere; paths under this checkout read as theirs
    // (CI checks each out at the same place).
    let root = std::env::current_dir()
        .ok()
        .map(|cwd| crate::state::find_root(&cwd));
    let junit = junit::render(&report, Severity::High, root.as_deref());
    let mut json = crate::util::escape::json_for_terminal(
        &serde_json::to_string_pretty(&*report).unwrap_or_default(),
    );
    json.push('\n');
    let mut writes: Vec<(PathBuf, &str)> = Vec::new();
    if let Some(dir) = &args.report_dir {
        writes.push((dir.join("report.json"), &json));
        writes.push((dir.join("report.md"), &markdown));
        writes.push((dir.join("junit.xml"), &junit));
    }
    if let Some(path) = &args.junit {
        writes.push((path.clone(), &junit));
    }
    for (path, text) in &writes {
        if let Err(e) = write_atomic(path, text.as_bytes()) {
            eprintln!(
                "error: cannot write {}: {e}\n  = help: check that the folder is writable",
                path.display()
            );
            return exit::USAGE;
        }
    }
    if writes.is_empty() {
        print_stdout(&markdown);
    }
    let whole = match &args.report_dir {
        Some(dir) => format!("`{}`", dir.join("report.md").display()),
        None => "what `dispatch merge` printed".to_owned(),
    };
    job_summary(&markdown, &whole);
    let exit_code = report.exit_code.unwrap_or(exit::TASK_FAILED);
    eprintln!("{}", summary(&report, count, exit_code));
    exit_code
}

/// A shard's report, or what is wrong with the file.
fn read_report(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not a dispatch report: {e}\n  = help: give the report.json that `dispatch run --report-dir DIR` writes",
            path.display()
        )
    })
}

/// On GitHub Actions, the merged report goes into the job summary, as a
/// run's does; `whole` says where the whole of it is.
fn job_summary(markdown: &str, whole: &str) {
    let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|s| !s.is_empty()) else {
        return;
    };
    if let Err(e) = crate::events::job_summary::append(summary.as_ref(), markdown, whole) {
        eprintln!("warning: cannot append to GITHUB_STEP_SUMMARY: {e}");
    }
}

/// `merged 5 reports of sweep demo: 10 tasks (8 complete, 1 failed, 1
/// skipped); failed, exit code 1`.
fn summary(report: &Report, count: usize, exit_code: u8) -> String {
    let statuses: Vec<String> = report
        .totals
        .statuses
        .iter()
        .map(|(status, n)| format!("{n} {status}"))
        .collect();
    format!(
        "merged {count} report{} of sweep {}: {} task{} ({}); {}, exit code {exit_code}",
        if count == 1 { "" } else { "s" },
        if report.name.is_empty() {
            "(unnamed)"
        } else {
            &report.name
        },
        report.totals.tasks,
        if report.totals.tasks == 1 { "" } else { "s" },
        statuses.join(", "),
        report.status,
    )
}
