//! Inputs without a size known beforehand: `dispatch validate` reads a pipe
//! under the same cap as a regular file, so an endless one ends in an
//! error rather than growing until memory runs out.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `yes | dispatch validate /dev/stdin`: the writer never stops on its
/// own; only the reader giving up ends it.
#[test]
fn an_endless_pipe_is_refused_at_the_manifest_size_cap() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dispatch"))
        .args(["validate", "/dev/stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dispatch starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let chunk = "y\n".repeat(32 * 1024);
        // Ends with a broken pipe once dispatch stops reading.
        while stdin.write_all(chunk.as_bytes()).is_ok() {}
    });
    // A safety net only: the bound is the cap on what is read, not time.
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("dispatch validate kept reading an endless pipe");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("exits");
    writer.join().expect("writer ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/dev/stdin: the input goes on past 1 MiB"),
        "{stderr}"
    );
    assert!(stderr.contains("help:"), "{stderr}");
}
