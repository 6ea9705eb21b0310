//! `dispatch validate FILE...`

use super::{exit, report, ValidateArgs};
use crate::manifest::{self, Invalid};
use crate::plan::{self, PlanOptions};

pub fn run(args: &ValidateArgs) -> u8 {
    let mut code = exit::OK;
    for file in &args.files {
        match check(file, &args.vars.vars) {
            Ok(count) => {
                let tasks = if count == 1 { "task" } else { "tasks" };
                println!("{}: valid ({count} {tasks})", file.display());
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
/// tasks it expands to.
pub fn check(file: &std::path::Path, vars: &[(String, String)]) -> Result<usize, Invalid> {
    let loaded = manifest::load_with_user_config(file)?;
    let options = PlanOptions {
        vars: vars.to_vec(),
        run_id: "dry-run".to_owned(),
        root: None,
    };
    Ok(plan::build(&loaded, &options)?.tasks.len())
}
