//! Creating and removing worktrees: dispatch's `Repo::create` / `Repo::remove`
//! (with git's checkout, the default, and with libgit2's) against
//! `git worktree add` / `git worktree remove` on the same repository, in the
//! same run.
//!
//! A plain `fn main` (`harness = false`): run it with
//! `cargo bench --bench worktrees`. Progress goes to stderr, a Markdown table
//! ready to paste to stdout. `benches/README.md` lists the settings and says
//! what the numbers mean.
//!
//! Without `--bench` on its command line (`cargo test --benches`, or the
//! binary started by hand) it runs a quick smoke version: 200 files, 2
//! worktrees, 1 repetition, unless the environment says otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dispatch::isolation::review::FolderState;
use dispatch::isolation::worktree::{Checkout, Repo, Spec};

const FILES_PER_FOLDER: usize = 50;
/// Files are 8–12 KiB, 10 KiB on average.
const MEAN_FILE_BYTES: usize = 10 * 1024;
const LINE_BYTES: usize = 80;
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Set by SIGINT or SIGTERM; checked between steps, so that an interrupted
/// benchmark unwinds and removes its temporary folder.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

struct Settings {
    files: usize,
    worktrees: usize,
    repetitions: usize,
    dir: PathBuf,
    smoke: bool,
    /// The environment variables that were set, for the command to reproduce.
    overrides: Vec<String>,
}

impl Settings {
    fn from_env() -> Settings {
        let smoke = !std::env::args().any(|arg| arg == "--bench");
        let mut overrides = Vec::new();
        let mut count = |name: &str, bench: usize, smoke_default: usize| {
            let default = if smoke { smoke_default } else { bench };
            match std::env::var(name) {
                Err(std::env::VarError::NotPresent) => default,
                Ok(text) => match text.trim().parse::<usize>() {
                    Ok(n) if n > 0 => {
                        overrides.push(format!("{name}={n}"));
                        n
                    }
                    _ => fail(&format!(
                        "{name} must be a whole number above 0, not `{text}`"
                    )),
                },
                Err(e) => fail(&format!("{name}: {e}")),
            }
        };
        let files = count("WORKTREE_BENCH_FILES", 5000, 200);
        let worktrees = count("WORKTREE_BENCH_ROUNDS", 20, 2);
        let repetitions = count("WORKTREE_BENCH_REPS", 3, 1);
        let dir = match std::env::var_os("WORKTREE_BENCH_DIR") {
            Some(dir) if !dir.is_empty() => {
                overrides.push(format!("WORKTREE_BENCH_DIR={}", Path::new(&dir).display()));
                PathBuf::from(dir)
            }
            _ => std::env::temp_dir(),
        };
        Settings {
            files,
            worktrees,
            repetitions,
            dir,
            smoke,
            overrides,
        }
    }
}

/// Stop before anything was created (a bad setting, no `git`).
fn fail(message: &str) -> ! {
    eprintln!("worktrees benchmark: {message}");
    std::process::exit(2);
}

/// Panic (which unwinds, so the temporary folder is removed) if the user
/// asked to stop.
fn check_interrupted() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        panic!("interrupted: stopping and removing the temporary folder");
    }
}

#[cfg(unix)]
fn stop_cleanly_on_interrupt() {
    extern "C" fn on_signal(_: libc::c_int) {
        INTERRUPTED.store(true, Ordering::SeqCst);
    }
    let handler = on_signal as extern "C" fn(libc::c_int);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe, and it lives as long as the process.
        unsafe {
            libc::signal(signal, handler as libc::sighandler_t);
        }
    }
}

#[cfg(not(unix))]
fn stop_cleanly_on_interrupt() {}

/// The three ways of making and removing a worktree that are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    GitCli,
    DispatchGit,
    DispatchLibgit2,
}

impl Way {
    const ALL: [Way; 3] = [Way::GitCli, Way::DispatchGit, Way::DispatchLibgit2];

    fn slug(self) -> &'static str {
        match self {
            Way::GitCli => "git-cli",
            Way::DispatchGit => "dispatch-git",
            Way::DispatchLibgit2 => "dispatch-libgit2",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Way::GitCli => "`git worktree add -b` / `git worktree remove`",
            Way::DispatchGit => "dispatch, git checkout (`Checkout::detect()`, the default)",
            Way::DispatchLibgit2 => "dispatch, libgit2 checkout (`Checkout::Libgit2`)",
        }
    }
}

/// What every round works on.
struct Bench {
    /// The main checkout.
    repo: PathBuf,
    /// Where the worktrees go (beside the repository, so they never show
    /// in its status).
    worktrees: PathBuf,
    /// The `git` that `Checkout::detect()` found; the raw git commands use
    /// it too.
    git: PathBuf,
    files: usize,
    count: usize,
}

impl Bench {
    fn git(&self, dir: &Path) -> Command {
        git_command(&self.git, dir)
    }
}

fn git_command(git: &Path, dir: &Path) -> Command {
    let mut command = Command::new(git);
    command
        .current_dir(dir)
        .stdin(Stdio::null())
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.invalid")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.invalid")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z");
    command
}

/// Run a command that must succeed; its output is captured (as dispatch
/// captures git's), and shown if it fails.
fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    if !output.status.success() {
        panic!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    output
}

/// A 64-bit linear congruential generator (Knuth's MMIX constants): the
/// same files on every run, without a dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }
}

/// A text file of 80-byte lines of pseudo-random base64 characters: git
/// treats it as text, and zlib cannot shrink it much (6 bits per byte).
fn file_text(rng: &mut Lcg) -> Vec<u8> {
    let size = MEAN_FILE_BYTES - 2048 + (rng.next() >> 33) as usize % 4096;
    let mut text = Vec::with_capacity(size + 8);
    while text.len() < size {
        // The high bits of an LCG are the random ones: 8 characters from
        // the top 48.
        let mut bits = rng.next() >> 16;
        for _ in 0..8 {
            if text.len() % LINE_BYTES == LINE_BYTES - 1 {
                text.push(b'\n');
            } else {
                text.push(ALPHABET[(bits & 63) as usize]);
            }
            bits >>= 6;
        }
    }
    text.truncate(size);
    if let Some(last) = text.last_mut() {
        *last = b'\n';
    }
    text
}

/// Write the files, commit them and pack the objects (as a clone has them).
/// Returns the number of folders and of bytes written.
fn build_repository(git: &Path, root: &Path, files: usize) -> (usize, u64) {
    std::fs::create_dir_all(root)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
    let mut rng = Lcg(0x5eed_0fd1_5a7c_4b1d);
    let mut bytes = 0;
    for i in 0..files {
        let folder = root.join(format!("d{:03}", i / FILES_PER_FOLDER));
        if i % FILES_PER_FOLDER == 0 {
            check_interrupted();
            std::fs::create_dir(&folder)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", folder.display()));
        }
        let text = file_text(&mut rng);
        bytes += text.len() as u64;
        let file = folder.join(format!("f{i:05}.txt"));
        std::fs::write(&file, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
    }
    run(git_command(git, root).args(["init", "-q", "-b", "main"]));
    run(git_command(git, root).args(["add", "-A"]));
    check_interrupted();
    run(git_command(git, root).args(["-c", "gc.auto=0", "commit", "-q", "-m", "benchmark files"]));
    check_interrupted();
    run(git_command(git, root).args(["repack", "-a", "-d", "-q"]));
    (files.div_ceil(FILES_PER_FOLDER), bytes)
}

/// Files under `dir`, not counting a worktree's `.git` file.
fn count_files(dir: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let entries = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", folder.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", folder.display()));
            let kind = entry
                .file_type()
                .unwrap_or_else(|e| panic!("cannot stat {}: {e}", entry.path().display()));
            if kind.is_dir() {
                stack.push(entry.path());
            } else if entry.file_name() != ".git" {
                count += 1;
            }
        }
    }
    count
}

/// How one way makes and removes a worktree.
enum Driver {
    GitCli,
    Dispatch { repo: Repo, checkout: Checkout },
}

impl Driver {
    fn new(way: Way, bench: &Bench, detected: &Checkout) -> Driver {
        let dispatch = |checkout: Checkout| Driver::Dispatch {
            repo: Repo::open(&bench.repo)
                .unwrap_or_else(|e| panic!("dispatch cannot open {}: {e}", bench.repo.display())),
            checkout,
        };
        match way {
            Way::GitCli => Driver::GitCli,
            Way::DispatchGit => dispatch(detected.clone()),
            Way::DispatchLibgit2 => dispatch(Checkout::Libgit2),
        }
    }

    fn create(&self, bench: &Bench, path: &Path, branch: &str) {
        match self {
            Driver::GitCli => {
                run(bench
                    .git(&bench.repo)
                    .args(["worktree", "add", "--quiet", "-b", branch])
                    .arg(path)
                    .arg("HEAD"));
            }
            Driver::Dispatch { repo, checkout } => {
                let spec = Spec {
                    path,
                    branch,
                    base: "HEAD",
                    reuse: false,
                };
                repo.create(&spec, checkout).unwrap_or_else(|e| {
                    panic!(
                        "dispatch ({checkout:?}) could not create {}: {e} ({})",
                        path.display(),
                        e.help()
                    )
                });
            }
        }
    }

    fn remove(&self, bench: &Bench, path: &Path) {
        match self {
            Driver::GitCli => {
                run(bench
                    .git(&bench.repo)
                    .args(["worktree", "remove"])
                    .arg(path));
            }
            Driver::Dispatch { repo, .. } => {
                let state = repo.remove(path, false, &[]).unwrap_or_else(|e| {
                    panic!(
                        "dispatch could not remove {}: {e} ({})",
                        path.display(),
                        e.help()
                    )
                });
                assert_eq!(
                    state,
                    FolderState::Removed,
                    "dispatch did not remove {}",
                    path.display()
                );
            }
        }
    }

    /// Not timed: a later round starts from the same set of branches.
    fn delete_branches(&self, bench: &Bench, branches: &[String]) {
        match self {
            Driver::GitCli => {
                run(bench
                    .git(&bench.repo)
                    .args(["branch", "-q", "-D"])
                    .args(branches));
            }
            Driver::Dispatch { repo, .. } => {
                for branch in branches {
                    repo.delete_branch(branch)
                        .unwrap_or_else(|e| panic!("dispatch could not delete {branch}: {e}"));
                }
            }
        }
    }
}

/// One way's round: `count` worktrees created one after another, then all
/// removed.
#[derive(Clone, Copy, Debug)]
struct Round {
    create: Duration,
    remove: Duration,
}

fn run_round(way: Way, bench: &Bench, detected: &Checkout, tag: &str) -> Round {
    let driver = Driver::new(way, bench, detected);
    let paths: Vec<PathBuf> = (0..bench.count)
        .map(|i| bench.worktrees.join(format!("{}-{tag}-{i:02}", way.slug())))
        .collect();
    let branches: Vec<String> = (0..bench.count)
        .map(|i| format!("bench/{}/{tag}/{i:02}", way.slug()))
        .collect();

    let mut create = Duration::ZERO;
    for (path, branch) in paths.iter().zip(&branches) {
        check_interrupted();
        let start = Instant::now();
        driver.create(bench, path, branch);
        create += start.elapsed();
    }
    // Every file is there (checked on one worktree, outside the timing).
    let found = count_files(&paths[0]);
    assert_eq!(
        found,
        bench.files,
        "{} has {found} files, not {}",
        paths[0].display(),
        bench.files
    );

    let mut remove = Duration::ZERO;
    for path in &paths {
        check_interrupted();
        let start = Instant::now();
        driver.remove(bench, path);
        remove += start.elapsed();
    }

    driver.delete_branches(bench, &branches);
    // Nothing is left for the next round: no folder, no worktree record, no
    // branch.
    let left: Vec<_> = std::fs::read_dir(&bench.worktrees)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", bench.worktrees.display()))
        .flatten()
        .map(|entry| entry.file_name())
        .collect();
    assert!(left.is_empty(), "{way:?} left folders behind: {left:?}");
    let list = run(bench
        .git(&bench.repo)
        .args(["worktree", "list", "--porcelain"]));
    let records = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|line| line.starts_with("worktree "))
        .count();
    assert_eq!(records, 1, "{way:?} left worktree records behind");
    let branches_left = run(bench.git(&bench.repo).args(["branch", "--list", "bench/*"]));
    assert!(
        branches_left.stdout.is_empty(),
        "{way:?} left branches behind: {}",
        String::from_utf8_lossy(&branches_left.stdout)
    );
    Round { create, remove }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The file system `dir` is on, from `/proc/self/mounts` (`unknown`
/// elsewhere).
fn filesystem(dir: &Path) -> String {
    let unknown = || "unknown".to_owned();
    let Ok(dir) = dir.canonicalize() else {
        return unknown();
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return unknown();
    };
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let point = fields.next()?.replace("\\040", " ");
            let kind = fields.next()?;
            Some((point, kind.to_owned()))
        })
        .filter(|(point, _)| dir.starts_with(point))
        // The longest mount point holds it; among equal ones, the last
        // mounted.
        .max_by_key(|(point, _)| point.len())
        .map_or_else(unknown, |(_, kind)| kind)
}

fn main() {
    let settings = Settings::from_env();
    let git = match Checkout::detect() {
        Checkout::GitCommand(git) => git,
        Checkout::Libgit2 => fail("`git` is not on PATH; the benchmark compares against it"),
    };
    let detected = Checkout::GitCommand(git.clone());
    let git_version = match git_command(&git, &settings.dir).arg("--version").output() {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .trim()
            .trim_start_matches("git version ")
            .to_owned(),
        _ => fail(&format!("`{} --version` does not run", git.display())),
    };
    stop_cleanly_on_interrupt();

    // Everything goes in one temporary folder, removed on the way out (also
    // when a step panics, or on Ctrl-C between steps).
    let temp = tempfile::Builder::new()
        .prefix("dispatch-worktree-bench-")
        .tempdir_in(&settings.dir)
        .unwrap_or_else(|e| {
            fail(&format!(
                "cannot make a temporary folder in {}: {e}",
                settings.dir.display()
            ))
        });
    let fs = filesystem(temp.path());
    if settings.smoke {
        eprintln!(
            "worktrees benchmark: smoke run (no --bench argument); `cargo bench --bench worktrees` runs the full one"
        );
    }
    eprintln!(
        "worktrees benchmark: {} files in {} ({fs}); git {git_version}",
        settings.files,
        temp.path().display()
    );

    let bench = Bench {
        repo: temp.path().join("repo"),
        worktrees: temp.path().join("worktrees"),
        git: git.clone(),
        files: settings.files,
        count: settings.worktrees,
    };
    let start = Instant::now();
    let (folders, bytes) = build_repository(&git, &bench.repo, settings.files);
    std::fs::create_dir(&bench.worktrees)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", bench.worktrees.display()));
    let mb = bytes as f64 / 1e6;
    eprintln!(
        "repository: {} files in {folders} folders, {mb:.1} MB, committed and packed in {:.1} s",
        settings.files,
        start.elapsed().as_secs_f64()
    );

    // One worktree each, untimed: loads the pack and the checkout code into
    // memory before anything is measured.
    let warm_up = Bench { count: 1, ..bench };
    for way in Way::ALL {
        run_round(way, &warm_up, &detected, "warm");
    }
    let bench = Bench {
        count: settings.worktrees,
        ..warm_up
    };

    // The ways take turns, in an order rotated each repetition, so that a
    // slow stretch of the machine (or of the file system) is shared.
    let mut rounds: Vec<Vec<Round>> = vec![Vec::new(); Way::ALL.len()];
    for repetition in 0..settings.repetitions {
        for k in 0..Way::ALL.len() {
            let index = (repetition + k) % Way::ALL.len();
            let way = Way::ALL[index];
            let round = run_round(way, &bench, &detected, &format!("r{repetition}"));
            let n = bench.count as f64;
            eprintln!(
                "repetition {}/{}, {:<16}: create {:7.1} ms, remove {:7.1} ms per worktree",
                repetition + 1,
                settings.repetitions,
                way.slug(),
                ms(round.create) / n,
                ms(round.remove) / n,
            );
            rounds[index].push(round);
        }
    }
    if let Err(e) = temp.close() {
        eprintln!("worktrees benchmark: could not remove the temporary folder: {e}");
    }

    // Per worktree: the median over repetitions of each round's average.
    let n = bench.count as f64;
    let per_worktree = |rounds: &[Round]| {
        let mut create: Vec<f64> = rounds.iter().map(|r| ms(r.create) / n).collect();
        let mut remove: Vec<f64> = rounds.iter().map(|r| ms(r.remove) / n).collect();
        let mut total: Vec<f64> = rounds.iter().map(|r| ms(r.create + r.remove) / n).collect();
        let low = total.iter().copied().fold(f64::INFINITY, f64::min);
        let high = total.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (
            median(&mut create),
            median(&mut remove),
            median(&mut total),
            low,
            high,
        )
    };
    let git_total = per_worktree(&rounds[0]).2;

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "{} worktrees created one after another, then removed, by each way; {} repetition{}, \
         ways in rotated order; a repository of {} files in {folders} folders, {mb:.1} MB \
         (one commit, packed); temporary folders on {fs} ({}); git {git_version}, {cpus} CPUs, {}.",
        bench.count,
        settings.repetitions,
        if settings.repetitions == 1 { "" } else { "s" },
        settings.files,
        settings.dir.display(),
        std::env::consts::OS,
    );
    println!();
    println!(
        "| Way | Create (ms per worktree) | Remove (ms per worktree) | Total (ms per worktree) | Total, range over repetitions | Total / git CLI |"
    );
    println!("|---|---|---|---|---|---|");
    for (way, rounds) in Way::ALL.iter().zip(&rounds) {
        let (create, remove, total, low, high) = per_worktree(rounds);
        println!(
            "| {} | {create:.1} | {remove:.1} | {total:.1} | {low:.1}–{high:.1} | {:.2}× |",
            way.label(),
            total / git_total
        );
    }
    println!();
    println!("Medians over repetitions of each round's average per worktree.");
    let mut command = settings.overrides.join(" ");
    if !command.is_empty() {
        command.push(' ');
    }
    command.push_str("cargo bench --bench worktrees");
    println!("Reproduce: `{command}`");
}
