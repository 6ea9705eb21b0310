//! One worker process, supervised the way cargo-nextest supervises a test:
//! in its own process group, so a timeout or Ctrl-C stops the worker *and*
//! everything it started (SIGTERM to the group, a grace period, then
//! SIGKILL); with its output streamed to a bounded, redacted log; and with a
//! short leak timeout so a grandchild that keeps the output pipes open
//! cannot hang the run.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use super::activity::{Activity, ActivityKind};
use super::looks;
use super::procfs::Marker;
use super::reaper::{self, escaped_descendants, strays_of, Escaped, Stray};
use super::worker_log::WorkerLog;
use crate::domain::redact::Redactor;
use crate::state::StateError;

/// A log is rotated to `worker.log.1` past this size, so a worker that
/// floods its output keeps at most twice this on disk and nothing in memory.
pub use super::worker_log::LOG_ROTATE_BYTES;
/// Longest line kept whole; longer ones are split.
const MAX_LINE: usize = 64 * 1024;
/// What one read of a worker's output takes. Lines longer than this are
/// put together across reads (up to [`MAX_LINE`]), so the buffer can stay
/// small: a hundred running workers held 6 MiB of them at 64 KiB each.
const READ_BUFFER: usize = 8 * 1024;

/// What to launch and how to watch it.
#[derive(Clone, Debug)]
pub struct Launch {
    pub argv: Vec<String>,
    /// Added to (and overriding) dispatch's own environment.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Written to the worker's stdin, which is then closed; `None` gives it
    /// `/dev/null`. Several agent CLIs wait for end of input on a pipe.
    pub stdin: Option<Vec<u8>>,
    pub log: PathBuf,
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// How long output pipes may stay open after the worker exits.
    pub leak_timeout: Duration,
    pub redactor: Arc<Redactor>,
    /// Told of every read from the worker's pipes, so the runner can see a
    /// worker that has gone quiet (its `idle_timeout`) without a message
    /// per line.
    pub activity: Option<Arc<Activity>>,
    /// Start from an empty environment rather than dispatch's: `env` is
    /// then all the worker gets (a scoped `env_policy`).
    pub clear_env: bool,
    /// Start the program with SIGTERM ignored: bubblewrap, which would
    /// otherwise die of a stop at once and SIGKILL the sandbox, while the
    /// worker inside gets the signal from the group and its grace period.
    pub ignore_term: bool,
}

/// A request to stop a running worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Keep running.
    No,
    /// SIGTERM to the group, then SIGKILL after the grace period.
    Graceful,
    /// SIGKILL to the group now (a second Ctrl-C).
    Now,
}

/// How the worker process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// What happened to a worker, as far as its process goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    pub exit: Exit,
    pub timed_out: bool,
    /// Stopped on request (Ctrl-C, cancel).
    pub stopped: bool,
    /// Output pipes were still held open by a leftover process after the
    /// worker exited; the group was killed to end them.
    pub leaked: bool,
    pub pid: u32,
    pub duration: Duration,
    /// Processes it started that outlived it (they left its group with
    /// `setsid` or a double fork) and were stopped when it ended.
    pub strays: Vec<Stray>,
}

/// Why a worker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start `{program}`: {source}")]
    Start {
        program: String,
        source: std::io::Error,
    },
    #[error("the command is empty")]
    Empty,
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot set up the sandbox: {0}")]
    Sandbox(String),
    #[error("cannot render the worker prompt: {0}")]
    Prompt(String),
    #[error("cannot make the agent CLI's private config folder: {0}; remove what is in its place, or set `cli_config: user` to give the CLI your own")]
    CliHome(StateError),
}

/// A started worker, still to be watched to its end with [`Running::wait`].
pub struct Running {
    child: tokio::process::Child,
    pid: u32,
    /// The task's marker, which everything the worker starts inherits.
    marker: Option<Marker>,
    started: Instant,
    log: Arc<std::sync::Mutex<WorkerLog>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    stdin_task: Option<tokio::task::JoinHandle<()>>,
    timeout: Option<Duration>,
    grace: Duration,
    leak_timeout: Duration,
}

/// Start the worker (synchronously, so the caller knows its pid at once and
/// launches happen in the order asked). Stdout lines (lossily decoded,
/// redacted) go to `lines` for the event parser; both streams go to the
/// log. Must be called inside a tokio runtime.
///
/// The pipes are made here rather than by tokio: the prompt is put into
/// the stdin pipe before the worker starts (so a prompt that fits needs no
/// writer task, and a worker that never reads it causes no broken pipe),
/// and a worker whose stdout is not parsed gets one pipe for both streams,
/// which keeps their lines in the order it wrote them.
pub fn start(
    launch: Launch,
    lines: Option<mpsc::UnboundedSender<String>>,
) -> Result<Running, SpawnError> {
    let (program, args) = launch.argv.split_first().ok_or(SpawnError::Empty)?;
    let failed = |source: std::io::Error| SpawnError::Start {
        program: program.clone(),
        source,
    };
    let log = Arc::new(std::sync::Mutex::new(WorkerLog::at(launch.log.clone())));
    let (stdin, unwritten) = match launch.stdin {
        Some(prompt) => {
            let (reader, writer) = pipe().map_err(failed)?;
            (
                Stdio::from(reader),
                prefill(writer, prompt).map_err(failed)?,
            )
        }
        None => (Stdio::null(), None),
    };
    let (stdout_reader, stdout_writer) = output_pipe().map_err(failed)?;
    let (stderr_reader, stderr_writer) = if lines.is_some() {
        let (reader, writer) = output_pipe().map_err(failed)?;
        (Some(reader), writer)
    } else {
        (None, stdout_writer.try_clone().map_err(failed)?)
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(&launch.cwd)
        // Laid over dispatch's own environment, which the standard library
        // reads at the spawn. Clearing it and passing a copy read once
        // costs more: every variable is then copied twice more per spawn.
        .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(stdin)
        .stdout(stdout_writer)
        .stderr(stderr_writer)
        .process_group(0)
        .kill_on_drop(true);
    if launch.clear_env {
        command.env_clear();
        command.envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    if launch.ignore_term {
        // SAFETY: between fork and exec only signal(2), which is
        // async-signal-safe and touches no memory of the parent's.
        unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
                Ok(())
            });
        }
    }
    let started = Instant::now();
    let spawned = command.spawn();
    // The command holds the write ends of the output pipes: they must be
    // closed here, or the readers would never see the end of the output.
    drop(command);
    let child = spawned.map_err(failed)?;
    let pid = child.id().unwrap_or(0);
    reaper::own(pid);
    let stdin_task = unwritten.map(|(writer, rest)| {
        tokio::spawn(async move {
            let mut writer = writer;
            // A worker that exits without reading gives a broken pipe: fine.
            let _ = writer.write_all(&rest).await;
            let _ = writer.shutdown().await;
        })
    });
    let mut readers = vec![tokio::spawn(pump(
        stdout_reader,
        log.clone(),
        launch.redactor.clone(),
        lines,
        launch.activity.clone(),
    ))];
    if let Some(stderr) = stderr_reader {
        readers.push(tokio::spawn(pump(
            stderr,
            log.clone(),
            launch.redactor.clone(),
            None,
            launch.activity.clone(),
        )));
    }
    Ok(Running {
        child,
        pid,
        marker: Marker::of_env(&launch.env),
        started,
        log,
        readers,
        stdin_task,
        timeout: launch.timeout,
        grace: launch.grace,
        leak_timeout: launch.leak_timeout,
    })
}

/// A pipe (read end, write end), closed on exec: the worker gets its end
/// through its standard streams only.
#[cfg(not(target_vendor = "apple"))]
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// macOS has no pipe2: the ends are made close-on-exec just after the pipe
/// is made, as the standard library does there for its own pipes. A worker
/// spawned on another thread in between could inherit an end; that only
/// delays the end of this worker's output to its leak timeout.
#[cfg(target_vendor = "apple")]
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use rustix::io::{fcntl_setfd, FdFlags};
    let (reader, writer) = rustix::pipe::pipe()?;
    fcntl_setfd(&reader, FdFlags::CLOEXEC)?;
    fcntl_setfd(&writer, FdFlags::CLOEXEC)?;
    Ok((reader, writer))
}

/// A pipe for a worker's output: the end dispatch reads, registered with
/// the runtime, and the end the worker writes.
fn output_pipe() -> std::io::Result<(pipe::Receiver, OwnedFd)> {
    let (reader, writer) = pipe()?;
    set_nonblocking(&reader)?;
    Ok((pipe::Receiver::from_owned_fd_unchecked(reader)?, writer))
}

/// Put as much of the prompt into the stdin pipe as it takes without
/// waiting; what does not fit is returned, with the pipe's end, for a task
/// to write once the worker reads. A prompt that fits is complete once the
/// worker starts, and the pipe's end is closed here.
fn prefill(writer: OwnedFd, prompt: Vec<u8>) -> std::io::Result<Option<(pipe::Sender, Vec<u8>)>> {
    set_nonblocking(&writer)?;
    let mut file = std::fs::File::from(writer);
    let mut written = 0;
    while written < prompt.len() {
        match file.write(&prompt[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    if written == prompt.len() {
        return Ok(None);
    }
    let sender = pipe::Sender::from_owned_fd_unchecked(OwnedFd::from(file))?;
    Ok(Some((sender, prompt[written..].to_vec())))
}

/// O_NONBLOCK on one end of a pipe dispatch made (its other flags are
/// known: none but the access mode, which F_SETFL ignores).
fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    Ok(rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::NONBLOCK)?)
}

/// Start a worker and watch it to its end.
pub async fn run(
    launch: Launch,
    stop: watch::Receiver<Stop>,
    lines: Option<mpsc::UnboundedSender<String>>,
) -> Result<Finished, SpawnError> {
    Ok(start(launch, lines)?.wait(stop).await)
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Have the worker's start time (`/proc/PID/stat`), which tells it from
    /// a later process given the same pid, read off the runtime's thread
    /// and handed to `reply`; `reply` is dropped uncalled when it cannot
    /// be known (see [`looks::identify`]). The worker cannot have been
    /// reaped yet: that happens in [`Running::wait`], which takes `self`.
    pub fn identify(&self, reply: impl FnOnce(u64) + Send + 'static) {
        looks::identify(self.pid, reply);
    }

    /// Wait for the worker to end: by itself, past its timeout, or when a
    /// stop is requested.
    pub async fn wait(self, stop: watch::Receiver<Stop>) -> Finished {
        let look = |marker: Option<Marker>| async move {
            let found = match marker {
                Some(marker) => looks::look(marker).await,
                None => looks::Leftovers::default(),
            };
            (found, ())
        };
        self.wait_then(stop, look).await.0
    }

    /// [`Running::wait`], with the look for what the worker left (given
    /// its marker, once it has exited and its output is drained) made by
    /// `look`, which may read more of the task's files on the same trip:
    /// a sweep's worker asks its file-reading thread for the task's last
    /// plan and for its leftovers at once, one hand-off instead of two at
    /// every task's end. What `look` found is stopped here, before the
    /// log is closed; what else it read comes back beside the end.
    pub async fn wait_then<T, F, Fut>(
        self,
        mut stop: watch::Receiver<Stop>,
        look: F,
    ) -> (Finished, T)
    where
        F: FnOnce(Option<Marker>) -> Fut,
        Fut: std::future::Future<Output = (looks::Leftovers, T)>,
    {
        let Running {
            mut child,
            pid,
            marker,
            started,
            log,
            readers,
            stdin_task,
            timeout,
            grace,
            leak_timeout,
        } = self;
        let pgid = libc::pid_t::try_from(pid).unwrap_or(0);
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut timed_out = false;
        let mut stopped = false;
        let (status, escaped) = tokio::select! {
            status = child.wait() => (status, Vec::new()),
            _ = sleep_until(deadline) => {
                timed_out = true;
                terminate(pgid, &mut child, grace, &mut stop).await
            }
            request = wait_for_stop(&mut stop) => {
                stopped = true;
                if request == Stop::Now {
                    let escaped = escaped_descendants(pgid).await;
                    kill_group(pgid, libc::SIGKILL);
                    reaper::kill_escaped_off_thread(&escaped, libc::SIGKILL).await;
                    (child.wait().await, escaped)
                } else {
                    terminate(pgid, &mut child, grace, &mut stop).await
                }
            }
        };
        reaper::disown(pid);
        let exit = match status {
            Ok(status) => exit_of(status),
            Err(_) => Exit::Signal(libc::SIGKILL),
        };
        let leaked = drain(pgid, readers, leak_timeout).await;
        let when = if timed_out { "timeout" } else { "stop" };
        let mut strays = strays_of(escaped, when);
        let (found, read) = look(marker).await;
        let when = if timed_out { "timeout" } else { "task end" };
        for stray in looks::stop_found(found, grace, when).await {
            if !strays.iter().any(|s| s.pid == stray.pid) {
                strays.push(stray);
            }
        }
        if !strays.is_empty() {
            log_line(
                &log,
                &format!(
                    "dispatch: processes the worker started outlived it and were stopped: {}",
                    reaper::describe(&strays)
                ),
            );
        }
        if let Some(task) = stdin_task {
            task.abort();
        }
        if leaked {
            log_line(&log, "dispatch: the worker exited but a process it started kept its output open; its process group was killed");
        }
        if timed_out {
            log_line(
                &log,
                "dispatch: the worker ran past its timeout and was stopped",
            );
        }
        let duration = started.elapsed();
        // Whatever reads the task's end (its tail in a report) reads a
        // whole log.
        let written = log.lock().ok().and_then(|mut log| log.close());
        if let Some(written) = written {
            let _ = written.await;
        }
        let finished = Finished {
            exit,
            timed_out,
            stopped,
            leaked,
            pid,
            duration,
            strays,
        };
        (finished, read)
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn wait_for_stop(stop: &mut watch::Receiver<Stop>) -> Stop {
    loop {
        let current = *stop.borrow_and_update();
        if current != Stop::No {
            return current;
        }
        if stop.changed().await.is_err() {
            // The runner is gone; nobody can ask any more.
            return std::future::pending().await;
        }
    }
}

/// SIGTERM to the whole group, then SIGKILL after `grace` (or at once when
/// a second stop request says so). Returns the descendants that had left
/// the group and were stopped with it.
async fn terminate(
    pgid: libc::pid_t,
    child: &mut tokio::process::Child,
    grace: Duration,
    stop: &mut watch::Receiver<Stop>,
) -> (std::io::Result<std::process::ExitStatus>, Vec<Escaped>) {
    // Processes that left the worker's group (a CLI that runs its shell
    // tool with setsid, as Gemini CLI does) are found while the worker is
    // alive, since they are orphaned once it exits, and stopped with it.
    let escaped = escaped_descendants(pgid).await;
    kill_group(pgid, libc::SIGTERM);
    reaper::kill_escaped_off_thread(&escaped, libc::SIGTERM).await;
    tokio::select! {
        status = child.wait() => {
            reaper::kill_escaped_off_thread(&escaped, libc::SIGKILL).await;
            return (status, escaped);
        }
        _ = tokio::time::sleep(grace) => {}
        _ = async {
            while *stop.borrow_and_update() != Stop::Now {
                if stop.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        } => {}
    }
    kill_group(pgid, libc::SIGKILL);
    reaper::kill_escaped_off_thread(&escaped, libc::SIGKILL).await;
    (child.wait().await, escaped)
}

/// Wait for the output readers; past the leak timeout, kill what is left of
/// the group and stop waiting. Whatever the worker left running in its group
/// is killed either way: nothing outlives its task.
async fn drain(
    pgid: libc::pid_t,
    readers: Vec<tokio::task::JoinHandle<()>>,
    leak_timeout: Duration,
) -> bool {
    let mut readers = readers;
    let all_done = async {
        for reader in readers.iter_mut() {
            let _ = reader.await;
        }
    };
    let in_time = tokio::time::timeout(leak_timeout, all_done).await.is_ok();
    kill_group(pgid, libc::SIGKILL);
    if in_time {
        return false;
    }
    // The group is dead; a process that left it (setsid) may still hold the
    // pipe. Give the kill a moment to close the pipes, then abandon them.
    let settle = async {
        for reader in readers.iter_mut() {
            let _ = reader.await;
        }
    };
    if tokio::time::timeout(Duration::from_millis(500), settle)
        .await
        .is_err()
    {
        for reader in &readers {
            reader.abort();
        }
    }
    true
}

fn kill_group(pgid: libc::pid_t, signal: libc::c_int) {
    if pgid > 0 {
        // SAFETY: killpg only sends a signal; a group that is gone is ESRCH.
        unsafe {
            libc::killpg(pgid, signal);
        }
    }
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::Code(-1),
    }
}

/// Copy one output stream into the log line by line.
async fn pump<R: AsyncRead + Unpin>(
    stream: R,
    log: Arc<std::sync::Mutex<WorkerLog>>,
    redactor: Arc<Redactor>,
    lines: Option<mpsc::UnboundedSender<String>>,
    activity: Option<Arc<Activity>>,
) {
    let mut reader = BufReader::with_capacity(READ_BUFFER, stream);
    let mut buffer = Vec::with_capacity(4096);
    // A line longer than MAX_LINE comes in pieces; a secret across two
    // pieces is held back until it is whole.
    let mut redacting = crate::domain::redact::StreamRedactor::new(&redactor);
    loop {
        buffer.clear();
        let text = match read_line_bounded(&mut reader, &mut buffer).await {
            Ok(0) | Err(_) => redacting.finish(),
            Ok(_) => {
                if let Some(activity) = &activity {
                    activity.touch(ActivityKind::Output);
                }
                redacting.push(&buffer, buffer.ends_with(b"\n"))
            }
        };
        if text.is_empty() {
            if buffer.is_empty() {
                break;
            }
            continue;
        }
        if let Ok(mut log) = log.lock() {
            log.write(text.as_bytes());
        }
        if let Some(lines) = &lines {
            let _ = lines.send(text.trim_end_matches(['\n', '\r']).to_owned());
        }
    }
}

/// Read up to a newline, or `MAX_LINE` bytes, whichever comes first.
async fn read_line_bounded<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    buffer: &mut Vec<u8>,
) -> std::io::Result<usize> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(buffer.len());
        }
        let room = MAX_LINE - buffer.len();
        let (take, done) = match available.iter().take(room).position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len().min(room), available.len() >= room),
        };
        buffer.extend_from_slice(&available[..take]);
        reader.consume(take);
        if done || buffer.len() >= MAX_LINE {
            return Ok(buffer.len());
        }
    }
}

fn log_line(log: &std::sync::Mutex<WorkerLog>, text: &str) {
    if let Ok(mut log) = log.lock() {
        log.write(format!("{text}\n").as_bytes());
    }
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
