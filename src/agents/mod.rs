//! The agent CLIs: what each one's event stream says (usage, outcome,
//! activity), the private config folder each worker gets, and `doctor`'s
//! look at what is installed and logged in.

pub mod cli_home;
pub mod doctor;
pub mod stream;

use std::path::{Path, PathBuf};

/// Where `program` is: a path (relative to the project root) or a name on
/// `PATH`; `None` when it is not an executable file. Workers are launched
/// by this path, so `PATH` is searched once per program, not per launch.
pub fn find_program(program: &str, root: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = root.join(program);
        return executable(&path).then_some(path);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
}
