//! `dispatch validate FILE...`

use super::{exit, report, ValidateArgs};
use crate::manifest::{self, Invalid};
use crate::plan::{self, PlanOptions};

pub fn run(args: &ValidateArgs) -> u8 {
    let mut code = exit::OK;
    for file in &args.files {
        match check(file, &args.vars.vars) {
            Ok((count, effects)) => {
                let tasks = if count == 1 { "task" } else { "tasks" };
                println!("{}: valid ({count} {tasks})", file.display());
                warn_user_config(&effects);
            }
            Err(invalid) => {
                report(&invalid);
                code = exit::USAGE;
            }
        }
    }
    code
}

/// Load the manifest and expand it fully, as `run` would: the number of
/// tasks it expands to, and what the user's config files change about it.
pub fn check(
    file: &std::path::Path,
    vars: &[(String, String)],
) -> Result<(usize, Vec<String>), Invalid> {
    let loaded = manifest::load_with_user_config(file)?;
    let options = PlanOptions {
        vars: vars.to_vec(),
        run_id: "dry-run".to_owned(),
        root: None,
        prompts: plan::Prompts::Lazy,
    };
    let plan = plan::build(&loaded, &options)?;
    let count = plan.tasks.len();
    // Freeing a plan of 50,000 tasks, allocation by allocation, cost a
    // tenth of `validate`; the process is about to end and the memory
    // goes back to the system at once.
    std::mem::forget(plan);
    Ok((count, manifest::config_effects::effects(&loaded)))
}

/// What the user's config files change, on stderr: the manifest is valid
/// here, but may mean something else (or nothing valid) in CI.
pub fn warn_user_config(effects: &[String]) {
    for effect in effects {
        eprintln!("warning: {effect}");
    }
}
