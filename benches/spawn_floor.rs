//! The floor under `dispatch run`: a bare tokio program that launches the
//! same workers the way any supervising runner must (each in its own
//! process group, stdout and stderr piped and drained, its exit awaited),
//! with none of dispatch's bookkeeping: no manifest, plans, state files,
//! logs, events or watches.
//!
//! Given a fourth argument, a folder, it also keeps the least state the run
//! issue asks of `dispatch run`, written the cheapest way on the runner's
//! thread: per task a folder with `ipc/`, an atomically written `plan.md`,
//! `worker.log` filled from the pipe, `task.json` rewritten atomically when
//! the worker starts and when it ends, the plan and `ipc/.done` looked at
//! once at the end, and one line per start and end in `events.jsonl`. No
//! manifest, prompts, watches, reports or redaction. The difference between
//! the two floors is what that state costs on the machine whatever the
//! program that writes it; what dispatch costs beyond the second floor is
//! its own.
//!
//! `benches/run_overhead.sh` runs both beside `dispatch run` and `xargs -P`.
//! It is a plain `fn main` (`harness = false`):
//!
//! ```sh
//! cargo bench --bench spawn_floor -- TASKS CONCURRENCY SCRIPT [STATE_DIR]
//! ```
//!
//! runs `sh -c SCRIPT` TASKS times, CONCURRENCY at once, and prints the wall
//! time in milliseconds (from its start to the last worker's end) on stdout.
//! With STATE_DIR each worker gets `DISPATCH_IPC_DIR` (and the other
//! `DISPATCH_*` paths) of its own task folder there. Without arguments
//! (`cargo test --benches`) it runs 20 `true` workers, keeping state in a
//! temporary folder it removes.

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncReadExt;
use tokio::task::{JoinSet, LocalSet};

fn main() -> ExitCode {
    let started = Instant::now();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let parsed = match args.as_slice() {
        [] => Some((20, 4, "true".to_owned(), None)),
        [tasks, concurrency, script, rest @ ..] if rest.len() <= 1 => {
            match (tasks.parse(), concurrency.parse()) {
                (Ok(t), Ok(c)) if c > 0 => {
                    Some((t, c, script.clone(), rest.first().map(PathBuf::from)))
                }
                _ => None,
            }
        }
        _ => None,
    };
    let Some((tasks, concurrency, script, state_dir)) = parsed else {
        return usage();
    };
    // The no-argument smoke run keeps state too, so `cargo test --benches`
    // exercises both floors.
    let smoke_dir = args
        .is_empty()
        .then(|| std::env::temp_dir().join(format!("spawn-floor-smoke-{}", std::process::id())));
    let state_dir = state_dir.or_else(|| smoke_dir.clone());
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
    let outcome = match state_dir {
        None => Ok(runtime.block_on(launch_all(tasks, concurrency, &script))),
        Some(dir) => State::open(&dir).and_then(|state| {
            LocalSet::new().block_on(
                &runtime,
                launch_all_keeping_state(tasks, concurrency, &script, Rc::new(state)),
            )
        }),
    };
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    if let Some(dir) = smoke_dir {
        let _ = fs::remove_dir_all(dir);
    }
    let failures = match outcome {
        Ok(failures) => failures,
        Err(e) => {
            eprintln!("spawn_floor: cannot keep state: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{elapsed:.1}");
    if failures > 0 {
        eprintln!("spawn_floor: {failures} of {tasks} workers failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!("usage: cargo bench --bench spawn_floor -- TASKS CONCURRENCY SCRIPT [STATE_DIR]");
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
    let mut child = worker_command(script).spawn()?;
    Ok(async move {
        drain(&mut child).await;
        child.wait().await.is_ok_and(|status| status.success())
    })
}

/// Read the worker's stdout and stderr to their ends, side by side.
async fn drain(child: &mut tokio::process::Child) -> (Vec<u8>, Vec<u8>) {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
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
    (out, err)
}

/// `sh -c SCRIPT` as every runner must start it: its own process group,
/// nothing on stdin, its output piped back.
fn worker_command(script: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("sh");
    command
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    command
}

/// The run-wide state of the second floor: the tasks' folder and the
/// append-only event log.
struct State {
    tasks: PathBuf,
    events: RefCell<File>,
}

impl State {
    fn open(dir: &Path) -> io::Result<State> {
        let tasks = dir.join("tasks");
        fs::create_dir_all(&tasks)?;
        let events = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("events.jsonl"))?;
        Ok(State {
            tasks,
            events: RefCell::new(events),
        })
    }

    fn event(&self, task: usize, what: &str) -> io::Result<()> {
        let line = format!(
            "{{\"ts\":{},\"task\":\"t{task}\",\"event\":\"{what}\"}}\n",
            now_ms()
        );
        self.events.borrow_mut().write_all(line.as_bytes())
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Temp file and rename, as every state file must be written. Not
/// `dispatch::state::fsutil::write_atomic` on purpose: the floor is the least any
/// program must do, independent of the choices dispatch makes (a
/// randomly named temporary file, the mode, the exchange on rewrites).
fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    fs::write(&temp, text)?;
    fs::rename(&temp, path)
}

fn task_json(task: usize, status: &str, pid: u32, exit: Option<i32>) -> String {
    let exit = exit.map_or_else(|| "null".to_owned(), |code| code.to_string());
    format!(
        "{{\"id\":\"t{task}\",\"status\":\"{status}\",\"attempts\":1,\"pid\":{pid},\"updated_ms\":{},\"exit_code\":{exit},\"argv\":[\"sh\",\"-c\",\"…\"]}}\n",
        now_ms()
    )
}

/// Like [`launch_all`], keeping the state described at the top.
async fn launch_all_keeping_state(
    tasks: usize,
    concurrency: usize,
    script: &str,
    state: Rc<State>,
) -> io::Result<usize> {
    let mut running = JoinSet::new();
    let mut failures = 0;
    for task in 0..tasks {
        if running.len() >= concurrency {
            failures += usize::from(!matches!(running.join_next().await, Some(Ok(Ok(true)))));
        }
        let worker = supervise_keeping_state(task, script, Rc::clone(&state))?;
        running.spawn_local(worker);
    }
    while let Some(ended) = running.join_next().await {
        failures += usize::from(!matches!(ended, Ok(Ok(true))));
    }
    Ok(failures)
}

fn supervise_keeping_state(
    task: usize,
    script: &str,
    state: Rc<State>,
) -> io::Result<impl std::future::Future<Output = io::Result<bool>> + 'static> {
    let dir = state.tasks.join(format!("t{task}"));
    let ipc = dir.join("ipc");
    fs::create_dir(&dir)?;
    fs::create_dir(&ipc)?;
    let plan = dir.join("plan.md");
    write_atomic(&plan, &format!("# t{task}\n\n- [ ] Do nothing\n"))?;
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("worker.log"))?;
    let mut command = worker_command(script);
    command
        .env("DISPATCH_TASK_ID", format!("t{task}"))
        .env("DISPATCH_TASK_DIR", &dir)
        .env("DISPATCH_PLAN", &plan)
        .env("DISPATCH_OUTPUT", dir.join("output.md"))
        .env("DISPATCH_IPC_DIR", &ipc);
    let mut child = command.spawn()?;
    let pid = child.id().unwrap_or(0);
    let record = dir.join("task.json");
    write_atomic(&record, &task_json(task, "running", pid, None))?;
    state.event(task, "started")?;
    Ok(async move {
        let (out, err) = drain(&mut child).await;
        log.write_all(&out)?;
        log.write_all(&err)?;
        let exit = child.wait().await?.code();
        let mut checklist = String::new();
        File::open(&plan)?
            .take(1 << 20)
            .read_to_string(&mut checklist)?;
        let done = ipc.join(".done").exists() || !checklist.contains("- [ ]");
        let status = if done { "complete" } else { "incomplete" };
        write_atomic(&record, &task_json(task, status, pid, exit))?;
        state.event(task, "ended")?;
        Ok(exit == Some(0))
    })
}
