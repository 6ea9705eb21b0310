//! `dispatch status [RUN]`: where a run stands, from any terminal.

use std::io::IsTerminal;
use std::time::Duration;

use super::{exit, print_stdout, StatusArgs};
use crate::domain::checklist::ItemState;
use crate::domain::status::TaskStatus;
use crate::events::screen::{severity_label, symbol};
use crate::record::snapshot::{self, Snapshot, TaskView};
use crate::state::StateDir;

pub fn run(args: &StatusArgs) -> u8 {
    let state = super::state_dir(args.root.as_ref());
    loop {
        let snapshot = match snapshot::load(&state, args.run.as_deref()) {
            Ok(snapshot) => snapshot::redactor(&snapshot.run).scrub(snapshot),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        };
        let text = if args.json {
            let mut json = crate::util::escape::json_for_terminal(
                &serde_json::to_string_pretty(&snapshot).unwrap_or_default(),
            );
            json.push('\n');
            json
        } else {
            let mut text = render(&snapshot);
            if let Some(warning) = old_worktrees(&state, &snapshot, !args.watch) {
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

/// The view of the seed: a line per task, then its items.
pub fn render(snapshot: &Snapshot) -> String {
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
    for task in &snapshot.tasks {
        out.push('\n');
        render_task(&mut out, task);
    }
    out
}

fn render_task(out: &mut String, view: &TaskView) {
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
        TaskStatus::Running | TaskStatus::Pending => {
            format!("{}/{} items complete", counts.done, counts.total)
        }
        TaskStatus::Complete if !record.unticked.is_empty() => format!(
            "COMPLETE, with a warning: declared done without ticking {} of {} items",
            record.unticked.len(),
            counts.total
        ),
        TaskStatus::Complete => "COMPLETE".to_owned(),
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
fn old_worktrees(state: &StateDir, snapshot: &Snapshot, sized: bool) -> Option<String> {
    let own: Vec<std::path::PathBuf> = snapshot
        .tasks
        .iter()
        .filter_map(|t| t.record.branch.as_ref())
        .map(|b| std::path::PathBuf::from(&b.path))
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
