//! What the real-CLI tests (`tests/real_cli*.rs`) share: finding an
//! installed agent CLI (or saying why the tier skips), and small helpers
//! over the events and processes a run leaves.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The CLI to test: `local` under the repository (where
/// `scripts/install-agent-clis.sh` puts it), else `program` on PATH. `None`,
/// after saying why on stderr, when the tier cannot run here (no CLI, or no
/// python3 for the scripted endpoint).
pub fn find_cli(program: &str, local: &str) -> Option<PathBuf> {
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(local);
    let found = if is_executable(&local) {
        Some(local)
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|candidate| is_executable(candidate))
        })
    };
    let Some(cli) = found else {
        eprintln!(
            "real-cli tier skipped: {program} not installed (scripts/install-agent-clis.sh installs it)"
        );
        return None;
    };
    let python = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !python.is_ok_and(|s| s.success()) {
        eprintln!("real-cli tier skipped: python3 (for the scripted endpoint) not found");
        return None;
    }
    Some(cli)
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The events of one kind from `dispatch run --json`.
pub fn events_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// At most the last `max` bytes of `text`, cut at a character boundary.
pub fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Whether a process is alive (signal 0 only checks).
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 sends nothing; it only asks whether `pid` exists.
    pid > 1 && unsafe { libc::kill(pid, 0) } == 0
}

pub fn u64_of(value: &Value) -> u64 {
    value.as_u64().unwrap_or_default()
}
