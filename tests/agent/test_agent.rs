//! Scripted test agent for dispatch's integration tests.
//!
//! dispatch launches AI coding agents as worker processes and watches them
//! fill in a Markdown checklist plan. Real agents are slow, costly and not
//! deterministic, so the integration tests launch this program instead. It
//! follows the same worker protocol as a real agent, but what it does is
//! fixed by a script given on its command line: each argument is one step,
//! `NAME` or `NAME:ARG`, run in order. `agent` with no arguments prints the
//! list of steps.
//!
//! The protocol, as seen from the worker side:
//! - `DISPATCH_PLAN` is the plan: `# Title`, a blank line, then items
//!   `- [ ] text`. Workers mark items `- [x] text — note` (done),
//!   `- [?] text — question` (blocked) or `- [!] text — error` (failed).
//!   Every edit replaces the file atomically (temporary file in the same
//!   folder, then rename) and keeps all other bytes, CRLF endings included.
//! - `DISPATCH_OUTPUT` is where the final result goes.
//! - `DISPATCH_IPC_DIR` holds questions: the worker writes `NNN.question`
//!   atomically, polls every 20 ms for `NNN.answer`, reads it and creates
//!   `NNN.done`. When the plan is finished it creates `.done` there.
//!
//! Exit codes: 0 when the script ran to its end, 2 for usage, 95 for an
//! unexpected I/O error, 96 when `dispatch worker finding` failed, 97 when a
//! step needs an environment variable that is not set, 98 when a question
//! timed out, 99 for an unknown step or a bad step argument. Steps such as
//! `exit:N` and `crash` end the process on purpose.

use std::ffi::OsString;
use std::fmt::Display;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{self, Command};
use std::thread;
use std::time::{Duration, Instant};

const EXIT_USAGE: i32 = 2;
const EXIT_IO: i32 = 95;
const EXIT_FINDING: i32 = 96;
const EXIT_MISSING_ENV: i32 = 97;
const EXIT_ASK_TIMEOUT: i32 = 98;
const EXIT_BAD_SCRIPT: i32 = 99;

/// How often an open question looks for its answer.
const ANSWER_POLL: Duration = Duration::from_millis(20);

/// Separator between an item's text and the note a worker appends.
const NOTE_SEPARATOR: &str = " — ";

const USAGE: &str = "\
usage: agent STEP...

A scripted stand-in for an AI coding agent, for dispatch's integration tests.
Each argument is a step, NAME or NAME:ARG, run in order; then exit 0.

Plan (DISPATCH_PLAN):
  check, check:N          mark the next 1 (or N) `[ ]` items `[x]` (note: done by test agent)
  check-all               mark every remaining `[ ]` item `[x]`
  fail-item:NOTE          mark the next `[ ]` item `[!]` with NOTE
  block-item:NOTE         mark the next `[ ]` item `[?]` with NOTE
  rewrite-plan:TEXT       replace the whole plan with TEXT (\\n, \\r, \\t, \\\\ are unescaped)
  empty-plan              truncate the plan to zero bytes
Protocol:
  output:TEXT             write TEXT and a newline to DISPATCH_OUTPUT (replacing it)
  done                    create DISPATCH_IPC_DIR/.done
  link-ipc:TARGET         replace DISPATCH_IPC_DIR with a symbolic link to TARGET (a hostile worker)
  ask-timeout:DURATION    limit how long later `ask` steps wait (default: forever)
  ask:QUESTION            ask through DISPATCH_IPC_DIR, print `answer: TEXT`, append Q/A
                          to DISPATCH_OUTPUT; exit 98 on timeout
  finding:SEVERITY:TITLE  run `$DISPATCH_BIN worker finding --severity SEVERITY TITLE`
Output:
  print:TEXT, stderr:TEXT print TEXT and a newline to stdout / stderr
  flood:BYTES             write BYTES bytes of text lines to stdout (suffixes k, m, g)
  invalid-utf8            write bytes that are not valid UTF-8 to stdout
  ansi                    write a line with ANSI colour codes and a BEL byte
  env                     print DISPATCH_* variables (sorted) and CWD=...
  read-stdin              copy stdin to DISPATCH_TASK_DIR/stdin.txt, print `stdin: N bytes`
Files (in the working directory, e.g. a worktree):
  write:PATH=TEXT         write TEXT and a newline to PATH, relative to the working directory
Probes (each prints `probe KIND TARGET: ok` or `probe KIND TARGET: denied (ERROR)` and goes on):
  try-read:PATH           read PATH
  try-write:PATH          create PATH (and remove it again)
  try-connect:HOST:PORT   open a TCP connection to HOST:PORT (5 s limit)
  try-env:NAME            look up the environment variable NAME (`denied` when unset)
  commit:MESSAGE          `git add -A` and `git commit -m MESSAGE` in the working directory
  delete-cwd              delete the working directory and everything in it
Process:
  sleep:DURATION          sleep; DURATION is a whole number with ms, s, m or h
  wait-file:PATH          wait until PATH exists (a test's gate: a pace that does not
                          depend on timing); exit 98 after 2 minutes
  hang                    sleep forever
  ignore-term             ignore SIGTERM from now on
  spawn-hang              start `sleep 3600` sharing our stdout/stderr, don't wait for it
  spawn-hang-detached     the same, but the grandchild calls setsid first
  exit:N                  exit with code N now
  crash                   abort the process

Exit codes: 2 usage, 95 I/O error, 96 finding failed, 97 missing environment
variable, 98 question timed out, 99 unknown step or bad argument.
";

/// Commit everything in the working directory, as an agent would.
fn git_commit(message: &str) -> Outcome {
    for args in [vec!["add", "-A"], vec!["commit", "-q", "-m", message]] {
        let status = Command::new("git")
            .args(&args)
            .env("GIT_AUTHOR_NAME", "test agent")
            .env("GIT_AUTHOR_EMAIL", "agent@example.invalid")
            .env("GIT_COMMITTER_NAME", "test agent")
            .env("GIT_COMMITTER_EMAIL", "agent@example.invalid")
            .status()
            .map_err(|e| Failure::io("git", e))?;
        if !status.success() {
            return Err(Failure::new(
                EXIT_IO,
                format!("git {} failed", args.join(" ")),
            ));
        }
    }
    Ok(())
}

/// Why the agent stops early: the exit code and a message for stderr.
struct Failure {
    code: i32,
    message: String,
}

impl Failure {
    fn new(code: i32, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// An unexpected I/O error while doing `what`.
    fn io(what: impl Display, err: io::Error) -> Self {
        Failure::new(EXIT_IO, format!("{what}: {err}"))
    }
}

type Outcome<T = ()> = Result<T, Failure>;

/// One step of the script, parsed from a command-line argument.
enum Step {
    Check(usize),
    CheckAll,
    FailItem(String),
    BlockItem(String),
    RewritePlan(String),
    EmptyPlan,
    LinkIpc(PathBuf),
    Output(String),
    Done,
    AskTimeout(Duration),
    Ask(String),
    Finding { severity: String, title: String },
    Print(String),
    Stderr(String),
    Flood(u64),
    InvalidUtf8,
    Ansi,
    Env,
    ReadStdin,
    Write { path: String, text: String },
    Commit(String),
    TryRead(String),
    TryWrite(String),
    TryConnect(String),
    TryEnv(String),
    DeleteCwd,
    Sleep(Duration),
    WaitFile(PathBuf),
    Hang,
    IgnoreTerm,
    SpawnHang { detached: bool },
    Exit(i32),
    Crash,
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.is_empty() {
        eprint!("{USAGE}");
        exit(EXIT_USAGE);
    }
    let result = parse_script(&args).and_then(|steps| Agent::default().run(&steps));
    if let Err(failure) = result {
        eprintln!("test agent: {}", failure.message);
        exit(failure.code);
    }
    exit(0);
}

/// Flushes both standard streams, then exits with `code`.
fn exit(code: i32) -> ! {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    process::exit(code);
}

/// Parses every argument before any step runs, so a typo in a script fails
/// before the agent has touched anything.
fn parse_script(args: &[OsString]) -> Outcome<Vec<Step>> {
    args.iter()
        .map(|arg| {
            let arg = arg.to_str().ok_or_else(|| {
                Failure::new(EXIT_BAD_SCRIPT, format!("step {arg:?} is not valid UTF-8"))
            })?;
            parse_step(arg)
                .map_err(|why| Failure::new(EXIT_BAD_SCRIPT, format!("bad step `{arg}`: {why}")))
        })
        .collect()
}

fn parse_step(arg: &str) -> Result<Step, String> {
    let (name, value) = match arg.split_once(':') {
        Some((name, value)) => (name, Some(value)),
        None => (arg, None),
    };
    let text = || value.map(str::to_owned).ok_or("needs `:ARG`".to_owned());
    let step = match name {
        "check" => Step::Check(value.map_or(Ok(1), parse_count)?),
        "check-all" => Step::CheckAll,
        "fail-item" => Step::FailItem(text()?),
        "block-item" => Step::BlockItem(text()?),
        "rewrite-plan" => Step::RewritePlan(unescape(&text()?)),
        "empty-plan" => Step::EmptyPlan,
        "link-ipc" => Step::LinkIpc(PathBuf::from(text()?)),
        "output" => Step::Output(text()?),
        "done" => Step::Done,
        "ask-timeout" => Step::AskTimeout(parse_duration(&text()?)?),
        "ask" => Step::Ask(text()?),
        "finding" => parse_finding(&text()?)?,
        "print" => Step::Print(text()?),
        "stderr" => Step::Stderr(text()?),
        "flood" => Step::Flood(parse_size(&text()?)?),
        "invalid-utf8" => Step::InvalidUtf8,
        "ansi" => Step::Ansi,
        "env" => Step::Env,
        "read-stdin" => Step::ReadStdin,
        "write" => {
            let arg = text()?;
            let (path, text) = arg.split_once('=').ok_or("needs `:PATH=TEXT`".to_owned())?;
            Step::Write {
                path: path.to_owned(),
                text: text.to_owned(),
            }
        }
        "commit" => Step::Commit(text()?),
        "try-read" => Step::TryRead(text()?),
        "try-write" => Step::TryWrite(text()?),
        "try-connect" => Step::TryConnect(text()?),
        "try-env" => Step::TryEnv(text()?),
        "delete-cwd" => Step::DeleteCwd,
        "sleep" => Step::Sleep(parse_duration(&text()?)?),
        "wait-file" => Step::WaitFile(PathBuf::from(text()?)),
        "hang" => Step::Hang,
        "ignore-term" => Step::IgnoreTerm,
        "spawn-hang" => Step::SpawnHang { detached: false },
        "spawn-hang-detached" => Step::SpawnHang { detached: true },
        "exit" => Step::Exit(
            text()?
                .parse()
                .map_err(|_| "exit code must be an integer")?,
        ),
        "crash" => Step::Crash,
        _ => return Err("unknown step (run with no arguments for the list)".to_owned()),
    };
    Ok(step)
}

fn parse_count(value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|_| format!("`{value}` is not a count"))
}

fn parse_finding(value: &str) -> Result<Step, String> {
    let (severity, title) = value.split_once(':').ok_or("needs `:SEVERITY:TITLE`")?;
    Ok(Step::Finding {
        severity: severity.to_owned(),
        title: title.to_owned(),
    })
}

/// Parses `250ms`, `2s`, `1m` or `1h`.
fn parse_duration(value: &str) -> Result<Duration, String> {
    let digits = value.len() - value.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = value.split_at(digits);
    let bad = || format!("`{value}` is not a duration like 250ms, 2s, 1m or 1h");
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = |factor: u64| number.checked_mul(factor).map(Duration::from_secs);
    match unit {
        "ms" => Some(Duration::from_millis(number)),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        _ => None,
    }
    .ok_or_else(bad)
}

/// Parses a byte count with an optional binary suffix: `512`, `64k`, `100m`, `1g`.
fn parse_size(value: &str) -> Result<u64, String> {
    let bad = || format!("`{value}` is not a size like 512, 64k or 100m");
    let (number, factor) = match value.char_indices().last() {
        Some((at, 'k' | 'K')) => (&value[..at], 1 << 10),
        Some((at, 'm' | 'M')) => (&value[..at], 1 << 20),
        Some((at, 'g' | 'G')) => (&value[..at], 1 << 30),
        _ => (value, 1),
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    number.checked_mul(factor).ok_or_else(bad)
}

/// Turns the escapes `\n`, `\r`, `\t` and `\\` into the characters they name;
/// any other backslash is kept as it is.
fn unescape(text: &str) -> String {
    let mut result = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            result.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => result.push('\n'),
            Some('r') => result.push('\r'),
            Some('t') => result.push('\t'),
            Some('\\') => result.push('\\'),
            Some(other) => {
                result.push('\\');
                result.push(other);
            }
            None => result.push('\\'),
        }
    }
    result
}

/// State carried from one step to the next.
#[derive(Default)]
struct Agent {
    /// Limit for `ask`, set by `ask-timeout`; `None` waits forever.
    ask_timeout: Option<Duration>,
}

impl Agent {
    fn run(&mut self, steps: &[Step]) -> Outcome {
        steps.iter().try_for_each(|step| self.run_step(step))
    }

    fn run_step(&mut self, step: &Step) -> Outcome {
        match step {
            Step::Check(count) => mark_items(Some(*count), b'x', "done by test agent"),
            Step::CheckAll => mark_items(None, b'x', "done by test agent"),
            Step::FailItem(note) => mark_items(Some(1), b'!', note),
            Step::BlockItem(note) => mark_items(Some(1), b'?', note),
            Step::RewritePlan(text) => {
                write_atomically(&env_path("DISPATCH_PLAN")?, text.as_bytes())
            }
            Step::EmptyPlan => write_atomically(&env_path("DISPATCH_PLAN")?, b""),
            Step::LinkIpc(target) => {
                let ipc = env_path("DISPATCH_IPC_DIR")?;
                if ipc.exists() {
                    fs::remove_dir_all(&ipc)
                        .map_err(|e| Failure::io(format!("cannot remove {}", ipc.display()), e))?;
                }
                std::os::unix::fs::symlink(target, &ipc)
                    .map_err(|e| Failure::io(format!("cannot link {}", ipc.display()), e))
            }
            Step::Output(text) => write_output(text),
            Step::Done => create_done_marker(),
            Step::AskTimeout(limit) => {
                self.ask_timeout = Some(*limit);
                Ok(())
            }
            Step::Ask(question) => ask(question, self.ask_timeout),
            Step::Finding { severity, title } => report_finding(severity, title),
            Step::Print(text) => write_stdout(format!("{text}\n").as_bytes()),
            Step::Stderr(text) => write_stderr(format!("{text}\n").as_bytes()),
            Step::Flood(bytes) => flood(*bytes),
            Step::InvalidUtf8 => write_stdout(b"\xff\xfe\xfd invalid utf8 \xc3\x28\n"),
            Step::Ansi => write_stdout(b"\x1b[31mred\x1b[0m \x07 bell\n"),
            Step::Env => print_env(),
            Step::ReadStdin => copy_stdin(),
            Step::Write { path, text } => {
                fs::write(path, format!("{text}\n")).map_err(|e| Failure::io(path, e))
            }
            Step::Commit(message) => git_commit(message),
            Step::TryRead(path) => probe("read", path, fs::read(path).map(drop)),
            Step::TryWrite(path) => probe(
                "write",
                path,
                fs::write(path, b"probe\n").and_then(|()| fs::remove_file(path)),
            ),
            Step::TryConnect(address) => probe("connect", address, try_connect(address)),
            Step::TryEnv(name) => probe(
                "env",
                name,
                std::env::var_os(name)
                    .map(drop)
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not set")),
            ),
            Step::DeleteCwd => {
                let cwd = std::env::current_dir().map_err(|e| Failure::io("cwd", e))?;
                fs::remove_dir_all(&cwd).map_err(|e| Failure::io(cwd.display(), e))
            }
            Step::Sleep(duration) => {
                thread::sleep(*duration);
                Ok(())
            }
            Step::WaitFile(path) => {
                // Bounded, so a test that failed before making the file
                // leaves no agent behind for long.
                let deadline = Instant::now() + Duration::from_secs(120);
                while !path.exists() {
                    if Instant::now() > deadline {
                        return Err(Failure::new(
                            EXIT_ASK_TIMEOUT,
                            format!("{} did not appear", path.display()),
                        ));
                    }
                    thread::sleep(ANSWER_POLL);
                }
                Ok(())
            }
            Step::Hang => hang(),
            Step::IgnoreTerm => ignore_sigterm(),
            Step::SpawnHang { detached } => spawn_hanging_grandchild(*detached),
            Step::Exit(code) => exit(*code),
            Step::Crash => crash(),
        }
    }
}

// ---------------------------------------------------------------------------
// Probes: what a confined worker must not reach, tried and reported

fn probe(kind: &str, target: &str, result: io::Result<()>) -> Outcome {
    let line = match result {
        Ok(()) => format!("probe {kind} {target}: ok\n"),
        Err(e) => format!("probe {kind} {target}: denied ({e})\n"),
    };
    write_stdout(line.as_bytes())
}

fn try_connect(address: &str) -> io::Result<()> {
    use std::net::ToSocketAddrs;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for resolved in address.to_socket_addrs()? {
        match std::net::TcpStream::connect_timeout(&resolved, Duration::from_secs(5)) {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

// ---------------------------------------------------------------------------
// Environment

/// The value of a `DISPATCH_*` variable; unset or empty fails with exit 97.
fn env_path(name: &str) -> Outcome<PathBuf> {
    match std::env::var_os(name) {
        Some(value) if !value.is_empty() => Ok(PathBuf::from(value)),
        _ => Err(Failure::new(
            EXIT_MISSING_ENV,
            format!("{name} is not set, and this step needs it"),
        )),
    }
}

fn print_env() -> Outcome {
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .map(|(name, value)| {
            let name = name.to_string_lossy().into_owned();
            (name, value.to_string_lossy().into_owned())
        })
        .filter(|(name, _)| name.starts_with("DISPATCH_"))
        .collect();
    vars.sort();
    let cwd =
        std::env::current_dir().map_err(|e| Failure::io("cannot read the current directory", e))?;
    let mut text: String = vars
        .iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect();
    text.push_str(&format!("CWD={}\n", cwd.display()));
    write_stdout(text.as_bytes())
}

// ---------------------------------------------------------------------------
// The plan

/// The plan file split into lines, each keeping its own line ending so that
/// saving it changes no byte that was not edited on purpose.
struct Plan {
    path: PathBuf,
    lines: Vec<Line>,
}

struct Line {
    /// The line without its ending.
    content: Vec<u8>,
    /// `\n`, `\r\n`, or empty for a last line with no ending.
    ending: Vec<u8>,
}

impl Plan {
    fn load() -> Outcome<Plan> {
        let path = env_path("DISPATCH_PLAN")?;
        let bytes = fs::read(&path)
            .map_err(|e| Failure::io(format!("cannot read the plan {}", path.display()), e))?;
        let lines = bytes
            .split_inclusive(|&b| b == b'\n')
            .map(Line::new)
            .collect();
        Ok(Plan { path, lines })
    }

    fn save(&self) -> Outcome {
        let bytes: Vec<u8> = self
            .lines
            .iter()
            .flat_map(|line| line.content.iter().chain(&line.ending))
            .copied()
            .collect();
        write_atomically(&self.path, &bytes)
    }

    /// Marks up to `limit` unchecked items (all of them for `None`) with
    /// `status` and appends ` — note`. Returns the indexes of the lines marked.
    fn mark(&mut self, limit: Option<usize>, status: u8, note: &str) -> Vec<usize> {
        let unchecked = self
            .lines
            .iter_mut()
            .enumerate()
            .filter_map(|(index, line)| line.unchecked_box().map(|at| (index, line, at)));
        let mut marked = Vec::new();
        for (index, line, at) in unchecked.take(limit.unwrap_or(usize::MAX)) {
            line.content[at + 1] = status;
            line.content.extend_from_slice(NOTE_SEPARATOR.as_bytes());
            line.content.extend_from_slice(note.as_bytes());
            marked.push(index);
        }
        marked
    }

    /// Replaces the first line whose content is `from` with `to`.
    fn replace_line(&mut self, from: &[u8], to: &[u8]) -> bool {
        match self.lines.iter_mut().find(|line| line.content == from) {
            Some(line) => {
                line.content = to.to_vec();
                true
            }
            None => false,
        }
    }
}

impl Line {
    fn new(raw: &[u8]) -> Line {
        let ending_len = if raw.ends_with(b"\r\n") {
            2
        } else if raw.ends_with(b"\n") {
            1
        } else {
            0
        };
        let (content, ending) = raw.split_at(raw.len() - ending_len);
        Line {
            content: content.to_vec(),
            ending: ending.to_vec(),
        }
    }

    /// Where the `[ ]` of an unchecked item `- [ ] text` starts (indentation
    /// allowed), or `None` when this line is not one.
    fn unchecked_box(&self) -> Option<usize> {
        let indent = self
            .content
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let rest = &self.content[indent..];
        let is_item =
            rest.starts_with(b"- [ ]") && matches!(rest.get(5), None | Some(b' ' | b'\t'));
        is_item.then_some(indent + 2)
    }
}

fn mark_items(limit: Option<usize>, status: u8, note: &str) -> Outcome {
    let mut plan = Plan::load()?;
    let marked = plan.mark(limit, status, note).len();
    if let Some(wanted) = limit.filter(|&wanted| marked < wanted) {
        warn(&format!(
            "wanted to mark {wanted} item(s) `[{}]` but only {marked} unchecked item(s) were left",
            char::from(status)
        ))?;
    }
    if marked > 0 {
        plan.save()?;
    }
    Ok(())
}

/// Replaces `path` with `bytes` by writing a temporary file in the same folder
/// and renaming it over `path`, so readers never see a half-written file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Outcome {
    let file_name = path
        .file_name()
        .map_or_else(|| "file".into(), |name| name.to_string_lossy().into_owned());
    let temp = path.with_file_name(format!(".{file_name}.{}.tmp", process::id()));
    let result = fs::write(&temp, bytes).and_then(|()| fs::rename(&temp, path));
    result.map_err(|e| {
        let _ = fs::remove_file(&temp);
        Failure::io(format!("cannot replace {}", path.display()), e)
    })
}

// ---------------------------------------------------------------------------
// Output and the IPC folder

fn write_output(text: &str) -> Outcome {
    let path = env_path("DISPATCH_OUTPUT")?;
    create_parent(&path)?;
    fs::write(&path, format!("{text}\n"))
        .map_err(|e| Failure::io(format!("cannot write {}", path.display()), e))
}

fn append_output(text: &str) -> Outcome {
    let path = env_path("DISPATCH_OUTPUT")?;
    create_parent(&path)?;
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|e| Failure::io(format!("cannot append to {}", path.display()), e))
}

fn create_parent(path: &Path) -> Outcome {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => create_dir(parent),
        _ => Ok(()),
    }
}

fn create_dir(dir: &Path) -> Outcome {
    fs::create_dir_all(dir).map_err(|e| Failure::io(format!("cannot create {}", dir.display()), e))
}

fn create_done_marker() -> Outcome {
    let dir = env_path("DISPATCH_IPC_DIR")?;
    create_dir(&dir)?;
    let marker = dir.join(".done");
    fs::write(&marker, b"")
        .map_err(|e| Failure::io(format!("cannot create {}", marker.display()), e))
}

/// Asks `question` through the IPC folder and waits for the answer, with the
/// current unchecked item (if any) marked `[?]` meanwhile.
fn ask(question: &str, timeout: Option<Duration>) -> Outcome {
    let dir = env_path("DISPATCH_IPC_DIR")?;
    env_path("DISPATCH_OUTPUT")?;
    create_dir(&dir)?;
    let blocked = block_current_item(question)?;
    let number = next_question_number(&dir)?;
    let question_file = dir.join(format!("{number:03}.question"));
    write_atomically(&question_file, format!("{question}\n").as_bytes())?;
    let answer = wait_for_answer(&dir, number, timeout)?;
    if let Some((original, marked)) = blocked {
        unblock_item(&original, &marked)?;
    }
    write_stdout(format!("answer: {answer}\n").as_bytes())?;
    append_output(&format!("Q: {question}\nA: {answer}\n"))
}

/// Marks the next unchecked item `[?] … — question`. Returns the line before
/// and after, so the mark can be undone, or `None` when no item was left.
fn block_current_item(question: &str) -> Outcome<Option<(Vec<u8>, Vec<u8>)>> {
    let mut plan = Plan::load()?;
    let Some(index) = plan.lines.iter().position(|l| l.unchecked_box().is_some()) else {
        return Ok(None);
    };
    let original = plan.lines[index].content.clone();
    plan.mark(Some(1), b'?', question);
    plan.save()?;
    Ok(Some((original, plan.lines[index].content.clone())))
}

/// Puts a blocked item back to `[ ]`, unless someone else changed it meanwhile.
fn unblock_item(original: &[u8], marked: &[u8]) -> Outcome {
    let mut plan = Plan::load()?;
    if plan.replace_line(marked, original) {
        plan.save()?;
    }
    Ok(())
}

/// One more than the highest `NNN` of any `NNN.*` file in the IPC folder.
fn next_question_number(dir: &Path) -> Outcome<u32> {
    let entries =
        fs::read_dir(dir).map_err(|e| Failure::io(format!("cannot list {}", dir.display()), e))?;
    let mut highest = 0;
    for entry in entries {
        let entry = entry.map_err(|e| Failure::io(format!("cannot list {}", dir.display()), e))?;
        let name = entry.file_name();
        let number = name
            .to_str()
            .and_then(|name| name.split_once('.'))
            .and_then(|(number, _)| number.parse::<u32>().ok());
        highest = highest.max(number.unwrap_or(0));
    }
    Ok(highest + 1)
}

/// Polls for `NNN.answer`; once it is there, reads it, creates `NNN.done` and
/// returns the answer without its trailing line break.
fn wait_for_answer(dir: &Path, number: u32, timeout: Option<Duration>) -> Outcome<String> {
    let answer_file = dir.join(format!("{number:03}.answer"));
    let started = Instant::now();
    loop {
        match fs::read(&answer_file) {
            Ok(bytes) => {
                let done_file = dir.join(format!("{number:03}.done"));
                fs::write(&done_file, b"").map_err(|e| {
                    Failure::io(format!("cannot create {}", done_file.display()), e)
                })?;
                let answer = String::from_utf8_lossy(&bytes);
                return Ok(answer.trim_end_matches(['\r', '\n']).to_owned());
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Failure::io(
                    format!("cannot read {}", answer_file.display()),
                    e,
                ));
            }
        }
        if let Some(limit) = timeout.filter(|&limit| started.elapsed() >= limit) {
            return Err(Failure::new(
                EXIT_ASK_TIMEOUT,
                format!("no answer in {} within {limit:?}", answer_file.display()),
            ));
        }
        thread::sleep(ANSWER_POLL);
    }
}

fn report_finding(severity: &str, title: &str) -> Outcome {
    let bin = env_path("DISPATCH_BIN")?;
    let status = Command::new(&bin)
        .args(["worker", "finding", "--severity", severity, title])
        .status()
        .map_err(|e| Failure::new(EXIT_FINDING, format!("cannot run {}: {e}", bin.display())))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::new(
            EXIT_FINDING,
            format!("`{} worker finding` failed: {status}", bin.display()),
        ))
    }
}

// ---------------------------------------------------------------------------
// Standard streams

fn write_stdout(bytes: &[u8]) -> Outcome {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::io("cannot write to stdout", e))
}

fn write_stderr(bytes: &[u8]) -> Outcome {
    io::stderr()
        .write_all(bytes)
        .map_err(|e| Failure::io("cannot write to stderr", e))
}

/// A note on stderr about something odd that is not a failure.
fn warn(message: &str) -> Outcome {
    write_stderr(format!("test agent: warning: {message}\n").as_bytes())
}

/// Writes exactly `total` bytes of numbered 100-byte lines to stdout; the
/// last line is cut short (but still ends in a newline) to hit the total.
fn flood(total: u64) -> Outcome {
    const LINE_LEN: usize = 100;
    let filler = "abcdefghijklmnopqrstuvwxyz".repeat(4);
    let mut stdout = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut remaining = total;
    let mut number: u64 = 0;
    while remaining > 0 {
        let mut line = format!("flood line {number:08} {filler}").into_bytes();
        let len = usize::try_from(remaining).map_or(LINE_LEN, |r| r.min(LINE_LEN));
        line.truncate(len);
        line[len - 1] = b'\n';
        stdout
            .write_all(&line)
            .map_err(|e| Failure::io("cannot write to stdout", e))?;
        remaining -= len as u64;
        number += 1;
    }
    stdout
        .flush()
        .map_err(|e| Failure::io("cannot write to stdout", e))
}

/// Reads stdin to its end, saves it as `$DISPATCH_TASK_DIR/stdin.txt` and
/// says how many bytes came.
fn copy_stdin() -> Outcome {
    let task_dir = env_path("DISPATCH_TASK_DIR")?;
    let mut input = Vec::new();
    io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| Failure::io("cannot read stdin", e))?;
    create_dir(&task_dir)?;
    let path = task_dir.join("stdin.txt");
    fs::write(&path, &input)
        .map_err(|e| Failure::io(format!("cannot write {}", path.display()), e))?;
    write_stdout(format!("stdin: {} bytes\n", input.len()).as_bytes())
}

// ---------------------------------------------------------------------------
// Processes and signals

fn hang() -> ! {
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

fn crash() -> ! {
    let _ = io::stdout().flush();
    process::abort();
}

fn ignore_sigterm() -> Outcome {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler
    // code, so nothing can run at an unsafe moment.
    let previous = unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    if previous == libc::SIG_ERR {
        return Err(Failure::io(
            "cannot ignore SIGTERM",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Starts `sleep 3600` and leaves it running: it inherits our stdout and
/// stderr, so the pipes dispatch reads stay open after this agent exits.
/// Its PID is printed and written to `$DISPATCH_TASK_DIR/grandchild.pid`.
///
/// Without `detached`, the grandchild stays in the agent's process group, so
/// dispatch can stop it by signalling the whole group (kill(-pgid)).
///
/// With `detached`, it calls setsid() before exec and so runs in a session
/// and process group of its own: signalling the agent's group no longer
/// reaches it, and dispatch cannot find or kill it without knowing its PID
/// (short of a subreaper or a cgroup). What dispatch can still do is stop
/// waiting for end-of-file on the output pipes once the agent itself has
/// exited; this step is there to test that it does.
fn spawn_hanging_grandchild(detached: bool) -> Outcome {
    let task_dir = env_path("DISPATCH_TASK_DIR")?;
    let mut command = Command::new("sleep");
    command.arg("3600");
    if detached {
        // SAFETY: the closure runs in the child between fork and exec and only
        // calls setsid, which is async-signal-safe, and reads errno.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    // The Child handle is dropped without waiting: that neither kills nor
    // reaps the grandchild, which is the point.
    let pid = command
        .spawn()
        .map_err(|e| Failure::io("cannot start `sleep 3600`", e))?
        .id();
    create_dir(&task_dir)?;
    let pid_file = task_dir.join("grandchild.pid");
    fs::write(&pid_file, format!("{pid}\n"))
        .map_err(|e| Failure::io(format!("cannot write {}", pid_file.display()), e))?;
    write_stdout(format!("grandchild: {pid}\n").as_bytes())
}
