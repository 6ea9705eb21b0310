//! The agent CLIs: what each one's event stream says (usage, outcome,
//! errors) and what its exit codes mean, one file per CLI (`claude.rs`,
//! `codex.rs`, `gemini.rs`, `cursor.rs`, `opencode.rs`, `aider.rs`) over
//! the shared reader in `stream.rs`; the private config folder each worker
//! gets; and `doctor`'s look at what is installed and logged in.

pub mod aider;
pub mod claude;
pub mod cli_home;
pub mod codex;
pub mod cursor;
pub mod doctor;
pub mod evidence;
pub mod gemini;
pub mod opencode;
pub mod stream;

use std::path::{Path, PathBuf};

use crate::manifest::types::EventFormat;

/// What a worker's exit code means, as its CLI documents it, named with the
/// CLI (`Gemini CLI: no usable authentication (FatalAuthenticationError)`),
/// so that a failure reason says more than a number. The CLI is known by
/// the stream it speaks: a backend that prints Gemini's events runs Gemini
/// CLI. `None` for a code the CLI does not document, and for a program
/// with no known stream.
pub fn explain_exit(format: EventFormat, code: i32) -> Option<String> {
    let (name, meaning) = match format {
        EventFormat::Claude => (claude::NAME, claude::explain_exit(code)),
        EventFormat::Codex => (codex::NAME, codex::explain_exit(code)),
        EventFormat::Gemini => (gemini::NAME, gemini::explain_exit(code)),
        EventFormat::Cursor => (cursor::NAME, cursor::explain_exit(code)),
        EventFormat::Opencode => (opencode::NAME, opencode::explain_exit(code)),
        EventFormat::Aider => (aider::NAME, aider::explain_exit(code)),
        EventFormat::None => return None,
    };
    meaning.map(|meaning| format!("{name}: {meaning}"))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_code_is_explained_by_the_cli_that_speaks_the_stream() {
        assert!(explain_exit(EventFormat::Gemini, 41).is_some_and(|m| m
            .starts_with("Gemini CLI: no usable authentication (FatalAuthenticationError): set GEMINI_API_KEY")));
        assert!(explain_exit(EventFormat::Codex, 2).is_some_and(|m| m.starts_with("Codex: ")));
        // The same number means nothing documented for another CLI, and
        // nothing at all for a program with no known stream.
        assert_eq!(explain_exit(EventFormat::Claude, 41), None);
        assert_eq!(explain_exit(EventFormat::None, 1), None);
    }
}
