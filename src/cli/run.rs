//! `dispatch run FILE` (the main job), `dispatch resume` and `dispatch
//! cancel`.

use std::io::IsTerminal;

use super::{exit, report, CancelArgs, ResumeArgs, RunArgs, SupervisionArgs};
use crate::events::screen::Mode;
use crate::plan::balance::{Durations, DurationsError};
use crate::plan::select::Selection;
use crate::sweep::cancel::Cancelled;
use crate::sweep::carry::{CarryOptions, Rerun};
use crate::sweep::{self, RunError, RunOptions};

/// `--retry-failed RUN`, or `--rerun TASK... [--from RUN]`.
fn carry_options(args: &RunArgs) -> Option<CarryOptions> {
    let latest = |run: &String| (run != "latest").then(|| run.clone());
    if let Some(run) = &args.retry_failed {
        return Some(CarryOptions {
            from: latest(run),
            rerun: Rerun::Failed,
        });
    }
    if args.rerun.is_empty() {
        return None;
    }
    Some(CarryOptions {
        from: args.from.as_ref().and_then(latest),
        rerun: Rerun::Tasks(args.rerun.clone()),
    })
}

pub fn run(args: &RunArgs) -> u8 {
    let selection = match selection(args) {
        Ok(selection) => selection,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("  help: {}", e.help());
            return exit::USAGE;
        }
    };
    if args.dry_run {
        return super::plan::dry_run(args, &selection);
    }
    let options = RunOptions {
        manifest: args.file.clone(),
        vars: args.vars.vars.clone(),
        carry: carry_options(args),
        selection,
        ..options(&args.supervision)
    };
    start(&options)
}

/// `dispatch resume [RUN]`.
pub fn resume(args: &ResumeArgs) -> u8 {
    let options = RunOptions {
        resume: Some(args.run.clone().unwrap_or_else(|| "latest".to_owned())),
        vars: args.vars.vars.clone(),
        ..options(&args.supervision)
    };
    start(&options)
}

/// `dispatch cancel [RUN] [--task ID]...`.
pub fn cancel(args: &CancelArgs) -> u8 {
    let state = super::state_dir(args.root.as_ref());
    let run = args.run.as_deref().filter(|r| *r != "latest");
    match crate::sweep::cancel::cancel(&state, run, &args.tasks, CANCEL_GRACE) {
        Ok(Cancelled::Asked { run, tasks }) => {
            println!(
                "asked run {run} to cancel {}; its workers get a grace period to stop",
                if args.tasks.is_empty() {
                    "every task".to_owned()
                } else {
                    tasks.join(", ")
                }
            );
            exit::OK
        }
        Ok(Cancelled::Stopped { run, tasks }) => {
            println!(
                "run {run}'s process is gone; stopped the workers it left: {}",
                tasks.join(", ")
            );
            exit::OK
        }
        Ok(Cancelled::NothingRunning { run }) => {
            println!("run {run} is not running; nothing to cancel");
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("  help: `dispatch status` names the latest run and its tasks");
            exit::USAGE
        }
    }
}

/// How long `dispatch cancel` gives an orphaned worker between SIGTERM and
/// SIGKILL.
const CANCEL_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

fn selection(args: &RunArgs) -> Result<Selection, DurationsError> {
    let durations = args.durations.as_deref().map(Durations::read).transpose()?;
    Ok(Selection {
        only: args.only.clone(),
        skip: args.skip.clone(),
        tags: args.tag.clone(),
        shard: args.shard,
        durations,
    })
}

fn options(args: &SupervisionArgs) -> RunOptions {
    let mode = if args.json {
        Mode::Json
    } else if args.quiet {
        Mode::Quiet
    } else {
        Mode::detect()
    };
    RunOptions {
        output: crate::events::reporter::Output::from_env(mode, args.verbose),
        manifest: Default::default(),
        vars: Vec::new(),
        root: args.root.clone(),
        concurrency: args.concurrency,
        grace: args.grace,
        retry_delay: args.retry_delay,
        interactive: args.answer_here || (mode == Mode::Live && std::io::stdin().is_terminal()),
        hook_timeout: args.hook_timeout,
        junit: args.junit.clone(),
        report_dir: args.report_dir.clone(),
        carry: None,
        resume: None,
        selection: Selection::default(),
    }
}

fn start(options: &RunOptions) -> u8 {
    match sweep::run(options) {
        Ok(result) => {
            if let Some(message) = &result.message {
                eprintln!("{message}");
            }
            result.exit_code
        }
        Err(RunError::Invalid(invalid)) => {
            report(&invalid);
            exit::USAGE
        }
        Err(RunError::Select(e)) => {
            eprintln!("error: {e}\n  help: {}", e.help());
            exit::USAGE
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}
