//! `dispatch clean`: what runs left, removed safely.

use super::{exit, print_stdout, CleanArgs};
use crate::run::clean::{self, human_bytes, CleanError, CleanOptions};
use crate::state::{find_root, StateDir};

pub fn run(args: &CleanArgs) -> u8 {
    let cwd = std::env::current_dir().unwrap_or_default();
    let root = args
        .root
        .as_ref()
        .map_or_else(|| find_root(&cwd), |r| cwd.join(r));
    let state = StateDir::new(&root);
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
