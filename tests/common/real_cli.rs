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
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = dispatch::workers::find_program(&format!("./{local}"), repo)
        .or_else(|| dispatch::workers::find_program(program, repo));
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

/// A scripted model endpoint (`tests/endpoint/SCRIPT`) on 127.0.0.1,
/// logging every request to a file; killed when dropped, also when a test
/// panics.
pub struct Endpoint {
    child: std::process::Child,
    pub port: u16,
    log: PathBuf,
}

impl Endpoint {
    /// Start `tests/endpoint/<script>` in `mode`, logging to
    /// `dir/requests.jsonl`; it prints its port as its first line.
    pub fn start(script: &str, dir: &Path, mode: &str) -> Endpoint {
        use std::io::{BufRead, BufReader};
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/endpoint")
            .join(script);
        let log = dir.join("requests.jsonl");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(&log)
            .args(["--mode", mode])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts the endpoint");
        let stdout = child.stdout.take().expect("endpoint stdout");
        let mut first = String::new();
        let read = BufReader::new(stdout).read_line(&mut first);
        let port = match (read, first.trim().parse::<u16>()) {
            (Ok(_), Ok(port)) => port,
            (read, _) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the endpoint printed no port ({read:?}, {first:?})");
            }
        };
        Endpoint { child, port, log }
    }

    /// The logged requests, one JSON value each.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
