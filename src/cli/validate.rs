//! `dispatch validate FILE...`

use super::{exit, report, ValidateArgs};
use crate::manifest::{self, Invalid};
use crate::plan::{self, PlanOptions};

pub fn run(args: &ValidateArgs) -> u8 {
    let mut code = exit::OK;
    for file in &args.files {
        match check(file, &args.vars.vars) {
            Ok(Checked {
                count,
                effects,
                sandboxed,
            }) => {
                let tasks = if count == 1 { "task" } else { "tasks" };
                println!("{}: valid ({count} {tasks})", file.display());
                warn_user_config(&effects);
                warn_sandbox(file, sandboxed.as_deref());
            }
            Err(invalid) => {
                report(&invalid);
                code = exit::USAGE;
            }
        }
    }
    code
}

/// What a valid manifest expands to, as `validate` tells it.
pub struct Checked {
    /// The number of tasks.
    pub count: usize,
    /// What the user's config files change about it.
    pub effects: Vec<String>,
    /// The first task that runs in a sandbox, if any.
    pub sandboxed: Option<String>,
}

/// Load the manifest and expand it fully, as `run` would.
pub fn check(file: &std::path::Path, vars: &[(String, String)]) -> Result<Checked, Invalid> {
    let loaded = manifest::load_with_user_config(file)?;
    let options = PlanOptions {
        vars: vars.to_vec(),
        run_id: "dry-run".to_owned(),
        root: None,
        prompts: plan::Prompts::Lazy,
    };
    let plan = plan::build(&loaded, &options)?;
    let checked = Checked {
        count: plan.tasks.len(),
        effects: manifest::config_effects::effects(&loaded),
        sandboxed: plan
            .tasks
            .iter()
            .find(|t| t.sandbox.is_some())
            .map(|t| t.id.clone()),
    };
    // Freeing a plan of 50,000 tasks, allocation by allocation, cost a
    // tenth of `validate`; the process is about to end and the memory
    // goes back to the system at once.
    std::mem::forget(plan);
    Ok(checked)
}

/// A manifest with sandbox tasks is valid wherever it is checked, but
/// `run` refuses to start it on a machine that cannot make a sandbox (it
/// never runs them unconfined): say so here, before CI or a colleague
/// finds out.
fn warn_sandbox(file: &std::path::Path, sandboxed: Option<&str>) {
    let Some(task) = sandboxed else {
        return;
    };
    if let Err(e) = crate::isolation::sandbox::probe() {
        eprintln!(
            "warning: {}: task `{task}` is to run in a sandbox, and {e}: `dispatch run` refuses to start it on this machine; {} (`dispatch doctor` checks this)",
            file.display(),
            e.help()
        );
    }
}

/// What the user's config files change, on stderr: the manifest is valid
/// here, but may mean something else (or nothing valid) in CI.
pub fn warn_user_config(effects: &[String]) {
    for effect in effects {
        eprintln!("warning: {effect}");
    }
}
