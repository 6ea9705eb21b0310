//! `dispatch clean` and `dispatch merge-check`: what runs left, removed
//! safely, and whether their branches can be merged.

use super::{exit, print_stdout, CleanArgs, MergeCheckArgs};
use crate::isolation::merge_check;
use crate::record::snapshot;
use crate::sweep::clean::{self, human_bytes, CleanError, CleanOptions};

use super::state_dir;

pub fn run(args: &CleanArgs) -> u8 {
    let state = state_dir(args.root.as_ref());
    let options = CleanOptions {
        worktrees: args.worktrees,
        branches: args.branches,
        run: args.run.clone(),
        force: args.force,
        dry_run: args.dry_run,
    };
    let report = match clean::clean(&state, &options) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            let help = match &e {
                CleanError::Worktree(e) => e.help(),
                CleanError::NoSuchRun(_) => "`dispatch status` names the latest run; run ids are the folder names under .dispatch/runs".to_owned(),
                CleanError::State(_) => "wait for the run to end, or stop it first".to_owned(),
            };
            eprintln!("  help: {help}");
            return exit::USAGE;
        }
    };
    let mut out = String::new();
    for outcome in &report.outcomes {
        out.push_str(&outcome.line(args.dry_run));
        out.push('\n');
    }
    if report.outcomes.is_empty() {
        out.push_str("nothing to clean\n");
    } else if report.freed_bytes() > 0 {
        let verb = if args.dry_run { "would free" } else { "freed" };
        out.push_str(&format!("{verb} {}\n", human_bytes(report.freed_bytes())));
    }
    if report.pruned_records > 0 {
        out.push_str(&format!(
            "pruned {} stale worktree record{} from git\n",
            report.pruned_records,
            if report.pruned_records == 1 { "" } else { "s" }
        ));
    }
    print_stdout(&out);
    if report.failed() {
        exit::TASK_FAILED
    } else {
        exit::OK
    }
}

pub fn merge_check(args: &MergeCheckArgs) -> u8 {
    let state = state_dir(args.root.as_ref());
    let snapshot = match snapshot::load(&state, args.run.as_deref()) {
        Ok(snapshot) => snapshot,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let branches: Vec<_> = snapshot
        .tasks
        .into_iter()
        .filter_map(|t| {
            let record = *t.record;
            record.branch.map(|b| (record.id, *b))
        })
        .collect();
    let readiness = match merge_check::assess(&state.root, &branches) {
        Ok(readiness) => readiness,
        Err(e) => {
            eprintln!("error: {e}\n  help: {}", e.help());
            return exit::USAGE;
        }
    };
    if args.json {
        let mut text = serde_json::to_string_pretty(&readiness).unwrap_or_default();
        text.push('\n');
        print_stdout(&text);
    } else {
        print_stdout(&merge_check::render(&readiness));
    }
    if readiness.all_clean() {
        exit::OK
    } else {
        exit::TASK_FAILED
    }
}
