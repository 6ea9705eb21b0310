//! Task and run ids given on the command line.
//!
//! An id names a folder under `.dispatch/` (`tasks/<id>`, `runs/<id>`), and
//! `Path::join` with an absolute path or `..` leaves that folder: `dispatch
//! answer /some/dir TEXT` once wrote `/some/dir/ipc/001.answer`. So every
//! command takes ids through these checks (as clap value parsers), and an
//! id is only ever a name, never a path.

/// The longest id accepted: task ids are at most 64 characters
/// (`manifest::validate::MAX_ID_LEN`) and matrix entries add to them; the
/// limit only has to keep a name a name.
const MAX_LEN: usize = 128;

/// Why an argument is not an id.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("`{given}` is not a task id: task ids are names such as `security-audit` (lower-case letters, digits and `-`), never paths; `dispatch status` lists the run's tasks")]
    Task { given: String },
    #[error("`{given}` is not a run id: run ids look like `20260101-120000-ab12` (or `latest`), never paths; `ls .dispatch/runs` lists them")]
    Run { given: String },
}

/// A task id as the manifest's ids and matrix entries are made: a
/// lower-case letter or digit, then lower-case letters, digits and `-`.
pub fn task_id(given: &str) -> Result<String, IdError> {
    let bytes = given.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if valid {
        Ok(given.to_owned())
    } else {
        Err(IdError::Task {
            given: given.to_owned(),
        })
    }
}

/// A run id (`YYYYMMDD-HHMMSS-xxxx`, or any name of letters, digits, `-`
/// and `_` that does not start with punctuation), or `latest`.
pub fn run_id(given: &str) -> Result<String, IdError> {
    let bytes = given.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    if valid {
        Ok(given.to_owned())
    } else {
        Err(IdError::Run {
            given: given.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_names_never_paths() {
        for good in ["audit", "lint-python-3-12", "0day"] {
            assert_eq!(task_id(good).as_deref(), Ok(good));
        }
        for bad in [
            "",
            "/some/dir",
            "..",
            "../x",
            "a/b",
            ".",
            "-x",
            "A",
            "a b",
            "a\0b",
            "a.b",
        ] {
            assert!(task_id(bad).is_err(), "{bad:?}");
        }
        for good in ["20260101-120000-ab12", "latest", "run_1"] {
            assert_eq!(run_id(good).as_deref(), Ok(good));
        }
        for bad in [
            "",
            "/tmp",
            "..",
            "../20260101-120000-ab12",
            "a/b",
            ".x",
            "-x",
        ] {
            assert!(run_id(bad).is_err(), "{bad:?}");
        }
        assert!(task_id(&"a".repeat(MAX_LEN + 1)).is_err());
    }
}
