//! The floor under `dispatch run`: a bare tokio program that launches the
//! same workers the way any supervising runner must (each in its own
//! process group, stdout and stderr piped and drained, its exit awaited),
//! with none of dispatch's bookkeeping: no manifest, plans, state files,
//! logs, events or watches.
//!
//! `benches/run_overhead.sh` runs it beside `dispatch run` and `xargs -P`,
//! so the gap between dispatch and xargs splits into what process
//! supervision costs on the machine and what dispatch itself adds. It is a
//! plain `fn main` (`harness = false`):
//!
//! ```sh
//! cargo bench --bench spawn_floor -- TASKS CONCURRENCY SCRIPT
//! ```
//!
//! runs `sh -c SCRIPT` TASKS times, CONCURRENCY at once, and prints the wall
//! time in milliseconds (from its start to the last worker's end) on stdout.
//! Without arguments (`cargo test --benches`) it runs 20 `true` workers.

use std::process::{ExitCode, Stdio};
use std::time::Instant;

use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

fn main() -> ExitCode {
    let started = Instant::now();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (tasks, concurrency, script) = match args.as_slice() {
        [] => (20, 4, "true".to_owned()),
        [tasks, concurrency, script] => match (tasks.parse(), concurrency.parse()) {
            (Ok(t), Ok(c)) if c > 0 => (t, c, script.clone()),
            _ => return usage(),
        },
        _ => return usage(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("spawn_floor: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let failures = runtime.block_on(launch_all(tasks, concurrency, &script));
    println!("{:.1}", started.elapsed().as_secs_f64() * 1000.0);
    if failures > 0 {
        eprintln!("spawn_floor: {failures} of {tasks} workers failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!("usage: cargo bench --bench spawn_floor -- TASKS CONCURRENCY SCRIPT");
    ExitCode::from(2)
}

/// Run every worker, at most `concurrency` at once; how many did not exit 0.
async fn launch_all(tasks: usize, concurrency: usize, script: &str) -> usize {
    let mut running = JoinSet::new();
    let mut failures = 0;
    for _ in 0..tasks {
        if running.len() >= concurrency {
            failures += usize::from(!matches!(running.join_next().await, Some(Ok(true))));
        }
        match supervise(script) {
            Ok(worker) => {
                running.spawn(worker);
            }
            Err(e) => {
                eprintln!("spawn_floor: cannot start sh: {e}");
                failures += 1;
            }
        }
    }
    while let Some(ended) = running.join_next().await {
        failures += usize::from(!matches!(ended, Ok(true)));
    }
    failures
}

/// Start one worker; the future drains its output and reports whether it
/// exited 0.
fn supervise(
    script: &str,
) -> std::io::Result<impl std::future::Future<Output = bool> + Send + 'static> {
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    Ok(async move {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let drain_out = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let drain_err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        tokio::join!(drain_out, drain_err);
        child.wait().await.is_ok_and(|status| status.success())
    })
}
