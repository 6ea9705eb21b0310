//! `dispatch status [RUN]`: where a run stands, from any terminal.

use std::io::IsTerminal;
use std::time::Duration;

use super::{exit, print_stdout, StatusArgs};
use crate::domain::checklist::ItemState;
use crate::domain::status::TaskStatus;
use crate::events::attention::{attention, Attention};
use crate::events::screen::{severity_label, symbol};
use crate::events::summary;
use crate::manifest::types::Severity;
use crate::record::index::{IndexEntry, RunIndex};
use crate::record::snapshot::{self, Snapshot, TaskView};
use crate::record::TaskRecord;
use crate::state::StateDir;

pub fn run(args: &StatusArgs) -> u8 {
    let state = super::state_dir(args.root.as_ref());
    let filter = Filter {
        failed: args.failed,
        statuses: args.statuses.clone(),
        tasks: args.tasks.clone(),
    };
    loop {
        // A finished run's index lists its tasks: only the ones shown are
        // read (`--json` shows every one, so it reads them all).
        let loaded = if args.json {
            snapshot::load(&state, args.run.as_deref()).map(|s| (s, None))
        } else {
            load_shown(&state, args.run.as_deref(), &filter)
        };
        let (mut snapshot, entries) = match loaded {
            Ok((snapshot, entries)) => (snapshot::redactor(&snapshot.run).scrub(snapshot), entries),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        };
        let entries = entries.unwrap_or_else(|| entries_of(&snapshot));
        if let Err(e) = filter.names_known_tasks(&snapshot.run.run_id, &entries) {
            eprintln!("error: {e}");
            eprintln!("  help: `dispatch status` without --task lists the tasks that need attention; `--task '*'` lists every one");
            return exit::USAGE;
        }
        let text = if args.json {
            // Complete unless a filter asks for less.
            snapshot.tasks.retain(|t| filter.keeps(&t.record));
            let mut json = crate::util::escape::json_for_terminal(
                &serde_json::to_string_pretty(&snapshot).unwrap_or_default(),
            );
            json.push('\n');
            json
        } else {
            let mut text = render_entries(&snapshot, &entries, &filter);
            if let Some(warning) = old_worktrees(&state, &entries, !args.watch) {
                text.push_str(&warning);
            }
            text
        };
        if args.watch && std::io::stdout().is_terminal() {
            print_stdout("\x1b[2J\x1b[H");
        }
        print_stdout(&text);
        if !args.watch || !snapshot.live {
            return exit::OK;
        }
        std::thread::sleep(Duration::from_secs(1));
        if !std::io::stdout().is_terminal() {
            print_stdout("\n");
        }
    }
}

/// Which tasks `dispatch status` shows: `--failed`, `--status`, `--task`.
/// Given several, a task must pass each.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub failed: bool,
    pub statuses: Vec<TaskStatus>,
    /// Ids or globs (`*`, `?`).
    pub tasks: Vec<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        !self.failed && self.statuses.is_empty() && self.tasks.is_empty()
    }

    pub fn keeps(&self, record: &TaskRecord) -> bool {
        self.keeps_task(&record.id, record.status)
    }

    /// [`Filter::keeps`] from a task's id and status alone.
    fn keeps_task(&self, id: &str, status: TaskStatus) -> bool {
        (!self.failed || status.is_failure())
            && (self.statuses.is_empty() || self.statuses.contains(&status))
            && (self.tasks.is_empty() || self.tasks.iter().any(|p| glob_match(p, id)))
    }

    /// Every `--task` must name at least one task of the run: a typo
    /// would otherwise read as "nothing wrong".
    fn names_known_tasks(&self, run_id: &str, entries: &[IndexEntry]) -> Result<(), String> {
        let ids = || entries.iter().map(|e| e.id.as_str());
        for pattern in &self.tasks {
            if !ids().any(|id| glob_match(pattern, id)) {
                let hint = crate::manifest::diagnostic::did_you_mean(pattern, ids())
                    .map(|close| format!("; did you mean `{close}`?"))
                    .unwrap_or_default();
                return Err(format!(
                    "--task {pattern}: no task of run {run_id} matches{hint}"
                ));
            }
        }
        Ok(())
    }
}

/// `*` any run of characters, `?` any one; everything else itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // The classic two-pointer match with backtracking to the last `*`.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The run and its tasks. A filter shows what it selects; without one, a
/// small run shows every task and a large one its counts and the tasks
/// that need attention (or are running), so a failure is not lost among
/// a thousand complete tasks.
pub fn render(snapshot: &Snapshot, filter: &Filter) -> String {
    render_entries(snapshot, &entries_of(snapshot), filter)
}

/// Every task of a snapshot as an index entry.
fn entries_of(snapshot: &Snapshot) -> Vec<IndexEntry> {
    let severity = crate::events::attention::recorded_severity(&snapshot.run);
    snapshot
        .tasks
        .iter()
        .map(|t| IndexEntry::of(&t.record, attention(&t.record, severity).is_some()))
        .collect()
}

/// Whether the view lists a task, given how many tasks the run has.
fn shows(entry: &IndexEntry, filter: &Filter, total: usize) -> bool {
    if !filter.is_empty() {
        filter.keeps_task(&entry.id, entry.status)
    } else {
        total <= summary::LIST_COMPLETE_UP_TO
            || entry.status == TaskStatus::Running
            || entry.attention
    }
}

/// The run, and the tasks `filter` shows. From a finished run with an
/// index, only those tasks' folders are read, and the index comes back
/// too; otherwise every task is read (and no index is returned).
fn load_shown(
    state: &StateDir,
    run_id: Option<&str>,
    filter: &Filter,
) -> Result<(Snapshot, Option<Vec<IndexEntry>>), snapshot::SnapshotError> {
    let run = snapshot::load_run(state, run_id)?;
    let Some(index) = RunIndex::read_current(state, &run) else {
        let tasks = snapshot::load_tasks(state, &run, run.tasks.iter().map(String::as_str))?;
        return Ok((snapshot::assemble(run, tasks), None));
    };
    let total = index.tasks.len();
    let shown = index
        .tasks
        .iter()
        .filter(|e| shows(e, filter, total))
        .map(|e| e.id.as_str());
    let tasks = snapshot::load_tasks(state, &run, shown)?;
    Ok((snapshot::assemble(run, tasks), Some(index.tasks)))
}

/// [`render`] from every task's index entry; `snapshot` holds at least the
/// tasks shown.
fn render_entries(snapshot: &Snapshot, entries: &[IndexEntry], filter: &Filter) -> String {
    let run = &snapshot.run;
    let mut out = String::new();
    let state = if snapshot.live {
        "running".to_owned()
    } else if run.ended_at.is_none() {
        // Its dispatch died without concluding (kill -9, a reboot).
        match snapshot.orphaned {
            0 => "interrupted (its process is gone)".to_owned(),
            1 => "interrupted (its process is gone; 1 worker still running)".to_owned(),
            n => format!("interrupted (its process is gone; {n} workers still running)"),
        }
    } else {
        run.status.label().to_owned()
    };
    put(
        &mut out,
        &format!(
            "Run {} ({}): {state}, started {}",
            run.run_id, run.name, run.started_at
        ),
    );
    let severity = crate::events::attention::recorded_severity(run);
    let total = entries.len();
    let few = total <= summary::LIST_COMPLETE_UP_TO;
    let views: std::collections::HashMap<&str, &TaskView> = snapshot
        .tasks
        .iter()
        .map(|t| (t.record.id.as_str(), t))
        .collect();
    let shown: Vec<&TaskView> = entries
        .iter()
        .filter(|e| shows(e, filter, total))
        .filter_map(|e| views.get(e.id.as_str()).copied())
        .collect();
    if !few || !filter.is_empty() {
        put(
            &mut out,
            &format!(
                "{total} task{}: {}",
                if total == 1 { "" } else { "s" },
                summary::status_counts(entries.iter().map(|e| e.status))
            ),
        );
    }
    for task in &shown {
        out.push('\n');
        render_task(&mut out, task, severity);
    }
    let hidden = total - shown.len();
    if filter.is_empty() && hidden > 0 {
        out.push('\n');
        put(
            &mut out,
            &format!(
                "{hidden} task{} fine, not shown (`--status complete` or `--task GLOB` shows them)",
                if hidden == 1 { "" } else { "s" }
            ),
        );
    } else if !filter.is_empty() && shown.is_empty() {
        out.push('\n');
        put(&mut out, "no task matches");
    }
    out
}

fn render_task(out: &mut String, view: &TaskView, severity: Severity) {
    let record = &view.record;
    let mut tags: Vec<&str> = record.model.iter().map(String::as_str).collect();
    if record.worktree {
        tags.push("worktree");
    }
    let label = if tags.is_empty() {
        record.id.clone()
    } else {
        format!("{} ({})", record.id, tags.join(", "))
    };
    let counts = view
        .plan
        .as_ref()
        .map(|p| p.counts())
        .unwrap_or(record.items);
    let state = match record.status {
        TaskStatus::Running if record.reason.as_deref() == Some(snapshot::ORPHANED) => format!(
            "{}/{} items complete, {}",
            counts.done,
            counts.total,
            snapshot::ORPHANED
        ),
        TaskStatus::Running => match &record.api_retry {
            Some(retry) => format!(
                "{}/{} items complete, {}",
                counts.done,
                counts.total,
                retry.describe()
            ),
            None => format!("{}/{} items complete", counts.done, counts.total),
        },
        TaskStatus::Pending => {
            format!("{}/{} items complete", counts.done, counts.total)
        }
        TaskStatus::Complete if !record.unticked.is_empty() => format!(
            "COMPLETE, with a warning: declared done without ticking {} of {} items",
            record.unticked.len(),
            counts.total
        ),
        TaskStatus::Complete => match attention(record, severity) {
            Some(why @ Attention::Flaky) => format!("COMPLETE ({})", why.label()),
            _ => "COMPLETE".to_owned(),
        },
        other => format!(
            "{}: {}",
            other.label().to_uppercase(),
            record.reason.as_deref().unwrap_or("")
        ),
    };
    put(out, &format!("● {label} — {state}"));
    if let Some(branch) = &record.branch {
        let status = if branch.head.is_some() {
            format!("{}; {}", branch.summary(), branch.folder.describe())
        } else {
            format!("in {}", branch.path)
        };
        put(out, &format!("  branch {}: {status}", branch.name));
    }
    for finding in &record.findings {
        let at = finding
            .location
            .as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        put(
            out,
            &format!(
                "  finding {}: {}{at}",
                severity_label(finding.severity),
                finding.title
            ),
        );
    }
    for question in &view.waiting {
        put(
            out,
            &format!("  question #{} waiting: {}", question.seq, question.text),
        );
    }
    for text in &record.dropped {
        put(
            out,
            &format!("  ✗ {text} (removed from the plan by the worker)"),
        );
    }
    let attempts = record.attempts.len();
    for check in record.last_checks() {
        let (mark, how) = if check.passed {
            ("✓", "passed".to_owned())
        } else {
            ("✗", format!("failed ({})", check.how()))
        };
        let after = if attempts > 1 {
            format!(" after attempt {attempts}")
        } else {
            String::new()
        };
        put(
            out,
            &format!(
                "  {mark} check {}: {how}{after}; output in .dispatch/tasks/{}/{}",
                check.name, record.id, check.log
            ),
        );
    }
    let Some(plan) = &view.plan else { return };
    let current = plan.current().map(|i| i.line);
    for item in &plan.items {
        let running = record.status == TaskStatus::Running;
        let (mark, suffix) = match item.state {
            ItemState::Pending | ItemState::InProgress if running && Some(item.line) == current => {
                ("⋯", " (in progress)")
            }
            state => (symbol(state), ""),
        };
        let note = item
            .note
            .as_deref()
            .map(|n| format!(" — {n}"))
            .unwrap_or_default();
        let indent = "  ".repeat(item.depth + 1);
        put(out, &format!("{indent}{mark} {}{note}{suffix}", item.text));
    }
}

/// One line of the view: whatever a worker wrote into a title, a note or
/// a question stays on it, and shows its control characters instead of
/// obeying them.
fn put(out: &mut String, line: &str) {
    out.push_str(&crate::util::escape::one_line(line));
    out.push('\n');
}

/// A warning when worktrees of other runs pile up under
/// `.dispatch/worktrees/` (with the disk they hold, unless `sized` is off:
/// sizing walks every file, too slow to repeat every second).
fn old_worktrees(state: &StateDir, entries: &[IndexEntry], sized: bool) -> Option<String> {
    let own: std::collections::HashSet<std::path::PathBuf> = entries
        .iter()
        .filter_map(|e| e.worktree.as_ref())
        .map(std::path::PathBuf::from)
        .collect();
    let old: Vec<std::path::PathBuf> = std::fs::read_dir(state.dir.join("worktrees"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(".git").is_file() && !own.contains(p))
        .collect();
    if old.is_empty() {
        return None;
    }
    let size = if sized {
        let bytes: u64 = old
            .iter()
            .map(|p| crate::isolation::worktree::disk_usage(p))
            .sum();
        format!(", holding {}", crate::sweep::clean::human_bytes(bytes))
    } else {
        String::new()
    };
    Some(format!(
        "\nwarning: {} worktree{} from earlier runs {} still under .dispatch/worktrees{size}; `dispatch clean --dry-run` shows what can go\n",
        old.len(),
        if old.len() == 1 { "" } else { "s" },
        if old.len() == 1 { "is" } else { "are" },
    ))
}
