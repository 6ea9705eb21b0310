//! Two builds of dispatch, side by side on the same sweep, to tell whether
//! a change made the runner cheaper. On a machine whose speed drifts by
//! 10% within an hour, one build's wall time against another's, measured
//! minutes apart, says more about the hour than about the change; so the
//! two builds run alternately (ABBA ABBA …), and besides the wall time
//! this reports the runner thread's own CPU time, which the kernel keeps in
//! nanoseconds (`/proc/<pid>/schedstat`) and which moves far less with
//! the machine than the wall time does.
//!
//! ```sh
//! cargo bench --bench compare_builds -- BASE NEW [RUNS] [TASKS]
//! ```
//!
//! BASE and NEW are `dispatch` binaries (say, a copy of an earlier
//! `target/release/dispatch` and the current one). Each runs RUNS times
//! (default 9) a sweep of TASKS (default 1000) workers that exit at once,
//! at concurrency 8, in fresh folders under `TMPDIR`. The result is a
//! Markdown table of medians on stdout. Without arguments (`cargo test
//! --benches`) it compares the dispatch it was built with against itself
//! on 20 tasks, once.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What one run of one build measured.
#[derive(Clone, Copy, Default)]
struct Sample {
    wall_ms: f64,
    /// The main thread's CPU time: the runner's loop runs there.
    runner_cpu_ms: f64,
    /// All threads, in clock ticks turned into milliseconds.
    process_cpu_ms: f64,
    before_first_ms: f64,
    after_last_ms: f64,
}

const CONCURRENCY: usize = 8;
const WORKER: &str = ": > \"$DISPATCH_IPC_DIR/.done\"";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (base, new, runs, tasks) = match args.as_slice() {
        [] => {
            let own = PathBuf::from(env!("CARGO_BIN_EXE_dispatch"));
            (own.clone(), own, 1, 20)
        }
        [base, new, rest @ ..] if rest.len() <= 2 => {
            let number = |i: usize, default: usize| {
                rest.get(i)
                    .map_or(Some(default), |s| s.parse().ok().filter(|&n| n > 0))
            };
            match (number(0, 9), number(1, 1000)) {
                (Some(runs), Some(tasks)) => (PathBuf::from(base), PathBuf::from(new), runs, tasks),
                _ => return usage(),
            }
        }
        _ => return usage(),
    };
    match compare(&base, &new, runs, tasks) {
        Ok(table) => {
            print!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("compare_builds: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: cargo bench --bench compare_builds -- BASE NEW [RUNS] [TASKS]");
    ExitCode::from(2)
}

fn compare(base: &Path, new: &Path, runs: usize, tasks: usize) -> Result<String, String> {
    let scratch = tempfile::Builder::new()
        .prefix("dispatch-compare.")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary folder: {e}"))?;
    let manifest = sweep(tasks);
    let builds = [base, new];
    let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    for run in 0..runs {
        // ABBA: each build goes first as often as the other, so a drift
        // within a round weighs on both alike.
        let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let dir = scratch.path().join(format!("run{run}-{side}"));
            std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            std::fs::write(dir.join("sweep.yaml"), &manifest)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            let sample = measure(builds[side], &dir)?;
            eprintln!(
                "run {}/{runs}, {}: {:.0} ms, runner thread {:.1} ms CPU",
                run + 1,
                ["base", "new"][side],
                sample.wall_ms,
                sample.runner_cpu_ms
            );
            samples[side].push(sample);
        }
    }
    Ok(table(base, new, runs, tasks, &samples))
}

fn sweep(tasks: usize) -> String {
    let mut text =
        format!("version: 1\nname: compare-builds\nconcurrency: {CONCURRENCY}\ntasks:\n");
    for i in 0..tasks {
        text.push_str(&format!(
            "  t{i:04}:\n    command: [sh, -c, '{WORKER}']\n    plan: [Do nothing]\n"
        ));
    }
    text
}

/// One `dispatch run` in `dir`. Its CPU times are read after it exits and
/// before it is reaped (`waitid` with `WNOWAIT`), while `/proc` still has
/// them.
fn measure(bin: &Path, dir: &Path) -> Result<Sample, String> {
    let started = SystemTime::now();
    let mut child = Command::new(bin)
        .args(["run", "--quiet", "--root"])
        .arg(dir)
        .arg("sweep.yaml")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let pid = child.id();
    wait_without_reaping(pid).map_err(|e| format!("waitid: {e}"))?;
    let wall = started.elapsed().unwrap_or_default();
    let runner_cpu_ns = read_field(&format!("/proc/{pid}/schedstat"), 0)?;
    let ticks = process_ticks(pid)?;
    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    if !status.success() {
        return Err(format!("{} run exited with {status}", bin.display()));
    }
    let (first, last) = worker_span(&dir.join(".dispatch/runs"))?;
    let started_ms = millis_since_epoch(started);
    let ended_ms = started_ms + wall.as_secs_f64() * 1000.0;
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let (before_first_ms, after_last_ms) = (first - started_ms, ended_ms - last);
    // Event stamps are whole milliseconds of the same clock.
    let span = -1.0..=wall.as_secs_f64() * 1000.0 + 1.0;
    if !span.contains(&before_first_ms) || !span.contains(&after_last_ms) {
        return Err(format!(
            "the events' stamps do not fit the run ({before_first_ms:.1} ms before the first worker, {after_last_ms:.1} ms after the last)"
        ));
    }
    Ok(Sample {
        wall_ms: wall.as_secs_f64() * 1000.0,
        runner_cpu_ms: runner_cpu_ns as f64 / 1e6,
        process_cpu_ms: ticks as f64 * 1000.0 / ticks_per_second,
        before_first_ms,
        after_last_ms,
    })
}

fn wait_without_reaping(pid: u32) -> std::io::Result<()> {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for waitid to
        // fill in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t.
        let done = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if done == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Field `index` (from 0) of a space-separated `/proc` file.
fn read_field(path: &str, index: usize) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    text.split_whitespace()
        .nth(index)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| format!("{path}: no field {index}"))
}

/// utime + stime of the whole process, in clock ticks.
fn process_ticks(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // The fields after the command name, which may itself hold spaces.
    let rest = text.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    match (fields.get(11), fields.get(12)) {
        (Some(u), Some(s)) => Ok(u.parse::<u64>().unwrap_or(0) + s.parse::<u64>().unwrap_or(0)),
        _ => Err(format!("{path}: too few fields")),
    }
}

/// The first task-started and the last task-ended of the run's events, in
/// milliseconds since the epoch.
fn worker_span(runs: &Path) -> Result<(f64, f64), String> {
    let events = std::fs::read_dir(runs)
        .map_err(|e| format!("{}: {e}", runs.display()))?
        .flatten()
        .map(|run| run.path().join("events.jsonl"))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("no events.jsonl under {}", runs.display()))?;
    let text =
        std::fs::read_to_string(&events).map_err(|e| format!("{}: {e}", events.display()))?;
    let stamp = |kind: &str, last: bool| {
        let mut lines = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["event"] == kind);
        let event = if last {
            lines.next_back()
        } else {
            lines.next()
        };
        event
            .and_then(|e| e["ts"].as_str().and_then(rfc3339_millis))
            .ok_or_else(|| format!("no {kind} event in {}", events.display()))
    };
    Ok((stamp("task-started", false)?, stamp("task-ended", true)?))
}

/// `2026-11-29T11:05:17.739Z` in milliseconds since the epoch.
fn rfc3339_millis(ts: &str) -> Option<f64> {
    let number = |range: std::ops::Range<usize>| ts.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute) = (number(11..13)?, number(14..16)?);
    let seconds: f64 = ts.get(17..ts.len().checked_sub(1)?)?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hour * 3600 + minute * 60) as f64 + seconds) * 1000.0)
}

fn millis_since_epoch(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
        * 1000.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// A row of the table: its name, and the value it takes from a sample.
type Row = (&'static str, fn(&Sample) -> f64);

fn table(base: &Path, new: &Path, runs: usize, tasks: usize, samples: &[Vec<Sample>; 2]) -> String {
    let rows: [Row; 5] = [
        ("wall time", |s| s.wall_ms),
        ("runner thread CPU (schedstat)", |s| s.runner_cpu_ms),
        ("process CPU, all threads (clock ticks)", |s| {
            s.process_cpu_ms
        }),
        ("before the first worker starts", |s| s.before_first_ms),
        ("after the last worker ends", |s| s.after_last_ms),
    ];
    let mut out = format!(
        "\n{tasks} instant workers at concurrency {CONCURRENCY}, {runs} runs of each build, alternating; medians.\n\n\
         | Measurement | base | new | new − base |\n|---|---|---|---|\n"
    );
    for (name, value) in rows {
        let b = median(samples[0].iter().map(value).collect());
        let n = median(samples[1].iter().map(value).collect());
        let change = if b > 0.0 { (n - b) / b * 100.0 } else { 0.0 };
        out.push_str(&format!(
            "| {name} | {b:.1} ms | {n:.1} ms | {:+.1} ms ({change:+.1}%) |\n",
            n - b
        ));
    }
    out.push_str(&format!(
        "\nbase: {}\nnew: {}\n",
        base.display(),
        new.display()
    ));
    out
}
