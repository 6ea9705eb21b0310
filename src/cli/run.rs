//! `dispatch run FILE`: the main job.

use std::io::IsTerminal;

use super::{exit, report, RunArgs};
use crate::run::carry::{CarryOptions, Rerun};
use crate::run::{self, output::Mode, RunError, RunOptions};

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
    let mode = if args.json {
        Mode::Json
    } else if args.quiet {
        Mode::Quiet
    } else {
        Mode::detect()
    };
    let options = RunOptions {
        manifest: args.file.clone(),
        vars: args.vars.vars.clone(),
        root: args.root.clone(),
        concurrency: args.concurrency,
        grace: args.grace,
        retry_delay: args.retry_delay,
        mode,
        interactive: args.answer_here || (mode == Mode::Live && std::io::stdin().is_terminal()),
        hook_timeout: args.hook_timeout,
        junit: args.junit.clone(),
        report_dir: args.report_dir.clone(),
        carry: carry_options(args),
    };
    match run::run(&options) {
        Ok(result) => result.exit_code,
        Err(RunError::Invalid(invalid)) => {
            report(&invalid);
            exit::USAGE
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}
