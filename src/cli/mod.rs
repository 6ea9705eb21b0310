//! The command line: clap definitions, and each command mapped onto the
//! library. Printing and exit codes live here, nowhere else.

mod answer;
mod clean;
mod doctor;
mod plan;
mod run;
mod sandboxed;
pub mod setup;
mod shard;
pub mod status;
mod validate;
mod worker;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::manifest::Invalid;

use crate::domain::exit;

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    every task complete, no escalation (for validate and plan: the manifest is valid)
  1    a task failed, timed out, went over budget, was skipped or left items undone
  2    bad usage, an invalid manifest, a missing agent CLI, or a state folder in use
  3    an escalation rule fired (a rule may set its own code)
  4    a question was left unanswered (and nothing failed)
  129  stopped by a hang-up (SIGHUP: the terminal closed), reports written
  130  interrupted (Ctrl-C), reports written
  143  stopped by SIGTERM, reports written";

/// Run a sweep of AI coding-agent tasks described in a YAML manifest.
#[derive(Debug, Parser)]
#[command(name = "dispatch", version, about, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Read manifests without ~/.config/dispatch/config.yaml and
    /// ~/.dispatch/config.yaml, as CI (where they do not exist) reads
    /// them. Also: DISPATCH_NO_USER_CONFIG=1.
    #[arg(long, global = true)]
    pub no_user_config: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check manifests against the schema and for meaning (names, cycles,
    /// templates); print every problem with its file:line:column.
    #[command(after_help = EXIT_CODES_HELP)]
    Validate(ValidateArgs),
    /// Show what a sweep would do, without running anything: each task's
    /// plan, worker prompt, backend command, worktree and place in the
    /// schedule.
    #[command(after_help = EXIT_CODES_HELP)]
    Plan(PlanArgs),
    /// Run a sweep: write each task's plan, launch the workers (at most
    /// `concurrency` at once, dependencies first, then priority), watch
    /// their plans fill in, and exit with a code a pipeline can act on.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(RunArgs),
    /// Continue a run that ended without finishing (interrupted, killed,
    /// halted, blocked): complete tasks are kept; failed, incomplete,
    /// cancelled and never-started ones run again from where they
    /// stopped; blocked ones whose question was answered since go on with
    /// the answer. Resuming a finished run is harmless and says so.
    #[command(after_help = EXIT_CODES_HELP)]
    Resume(ResumeArgs),
    /// Stop a running sweep, or some of its tasks, cleanly from another
    /// terminal (through the running dispatch, or directly if it is gone).
    Cancel(CancelArgs),
    /// Show where a run stands (the latest, or RUN), from any terminal,
    /// while it goes on or after it ended.
    Status(StatusArgs),
    /// List the questions workers are waiting on (higher priority first).
    Questions(QuestionsArgs),
    /// Answer a worker's question from any terminal.
    Answer(AnswerArgs),
    /// The worker side of the protocol, for agents that would rather run a
    /// command than write files (uses the `DISPATCH_*` environment).
    Worker(WorkerArgs),
    /// Render a run's report again from its state (the latest, or RUN).
    Report(ReportArgs),
    /// Remove the worktrees (and with --branches, the branches) that runs
    /// left. Never removes uncommitted work or deletes a branch whose
    /// commits are not merged anywhere, unless told --force.
    Clean(CleanArgs),
    /// Whether each worktree branch of a run (the latest, or RUN) merges
    /// cleanly into its base, and which branches conflict with each other,
    /// as the repository is now. Exit 1 when something conflicts.
    MergeCheck(MergeCheckArgs),
    /// Print the GitHub Actions matrix of a sweep (JSON for
    /// `strategy.matrix`): one entry per shard with --shards N (for `run
    /// --shard`), else one per task.
    Matrix(shard::MatrixArgs),
    /// Combine the reports of a sweep's shards into one report, one JUnit
    /// file and one exit code, as if one machine had run the sweep.
    #[command(after_help = EXIT_CODES_HELP)]
    Merge(shard::MergeArgs),
    /// Which agent CLIs are installed, their versions, whether each looks
    /// logged in or configured, and (given a manifest) whether each of its
    /// models can be served. Exit 1 when a manifest's model cannot.
    Doctor(DoctorArgs),
    /// Print the manifest's JSON Schema (for editors and other tools), or
    /// with --report the JSON report's.
    Schema {
        /// The schema of `report.json` instead of the manifest's.
        #[arg(long)]
        report: bool,
    },
    /// Write a commented starter manifest (or, with --example, one of the
    /// examples) with the schema hint editors read, at the top of the
    /// repository.
    Init(setup::InitArgs),
    /// Print the completion script of a shell (bash, zsh, fish,
    /// powershell, elvish).
    Completions(setup::CompletionsArgs),
    /// Print the man page (roff), or write every command's page into a
    /// folder with --out.
    Man(setup::ManArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run id (default: the latest run).
    #[arg(value_name = "RUN", value_parser = crate::domain::ids::run_id)]
    pub run: Option<String>,
    /// Which report.
    #[arg(long, value_enum, default_value = "md")]
    pub format: ReportFormat,
    /// The project root that holds `.dispatch/`.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// The formats of `dispatch report`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportFormat {
    Md,
    Json,
    Junit,
    /// The self-contained HTML page (timeline, task table, findings).
    Html,
}

#[derive(Debug, Args)]
pub struct QuestionsArgs {
    /// The run id (default: the latest run).
    #[arg(value_name = "RUN", value_parser = crate::domain::ids::run_id)]
    pub run: Option<String>,
    /// Print the questions as JSON.
    #[arg(long)]
    pub json: bool,
    /// The project root that holds `.dispatch/`.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// The task whose question to answer.
    #[arg(value_name = "TASK", value_parser = crate::domain::ids::task_id)]
    pub task: String,
    /// The answer.
    #[arg(value_name = "TEXT")]
    pub text: String,
    /// Which question (default: the oldest one waiting).
    #[arg(long, value_name = "N")]
    pub seq: Option<u32>,
    /// The project root that holds `.dispatch/`.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(subcommand)]
    pub command: WorkerCommand,
}

#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// Ask a question and wait for the answer, which is printed. Exits 4
    /// after marking the current plan item `[?]` if none comes in time.
    Ask {
        /// The question.
        #[arg(value_name = "QUESTION")]
        question: String,
        /// How long to wait (default: until answered).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        timeout: Option<std::time::Duration>,
    },
    /// Report a finding as soon as it is found.
    Finding {
        /// critical, high, medium, low or info.
        #[arg(long, value_parser = parse_severity)]
        severity: crate::manifest::types::Severity,
        /// One line saying what was found.
        #[arg(value_name = "TITLE")]
        title: String,
        /// Where: FILE or FILE:LINE.
        #[arg(long, value_name = "FILE:LINE")]
        location: Option<String>,
        /// More detail.
        #[arg(long, value_name = "TEXT")]
        detail: Option<String>,
    },
    /// The first process in a task's sandbox (started by `dispatch run`).
    #[command(hide = true)]
    Sandboxed {
        /// A loopback address inside and the socket it is carried to.
        #[arg(long, value_name = "ADDRESS=SOCKET")]
        forward: Vec<String>,
        /// The worker's command.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

fn parse_severity(text: &str) -> Result<crate::manifest::types::Severity, String> {
    serde_json::from_value(serde_json::Value::String(text.to_ascii_lowercase()))
        .map_err(|_| format!("`{text}` is not a severity (critical, high, medium, low, info)"))
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The manifest.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub vars: VarArgs,
    #[command(flatten)]
    pub supervision: SupervisionArgs,
    /// Run only these tasks (repeatable; a matrix task's id stands for all
    /// its entries). What they `need` must be selected too.
    #[arg(long, value_name = "ID")]
    pub only: Vec<String>,
    /// Leave these tasks out (repeatable); nothing selected may need them.
    #[arg(long, value_name = "ID")]
    pub skip: Vec<String>,
    /// Run only the tasks with this tag (repeatable: any of them).
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Run shard K of N: a partition of the tasks that keeps each task
    /// with everything it needs and does not change when the manifest is
    /// reordered, so N CI jobs can share a sweep (see `dispatch matrix`,
    /// `dispatch merge`).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<crate::plan::shard::Shard>,
    /// With --shard: balance the shards by how long each task took in this
    /// report.json (an earlier run's, or the one `dispatch merge` wrote)
    /// instead of by task count and `weight:`. Give every shard the same
    /// file (see docs/sharding.md).
    #[arg(long, value_name = "REPORT.json", requires = "shard")]
    pub durations: Option<PathBuf>,
    /// Rerun the failed, timed-out and over-budget tasks of run RUN (or
    /// `latest`) from where they stopped, and the tasks they kept from
    /// starting; every other task is carried over as it ended, so this
    /// run's reports cover the whole sweep.
    #[arg(long, value_name = "RUN", conflicts_with = "rerun", value_parser = crate::domain::ids::run_id)]
    pub retry_failed: Option<String>,
    /// Run TASK again from a fresh plan (repeatable), carrying every other
    /// task over from the latest run (or --from RUN).
    #[arg(long, value_name = "TASK", value_parser = crate::domain::ids::task_id)]
    pub rerun: Vec<String>,
    /// The run --rerun starts from (default: the latest).
    #[arg(long, value_name = "RUN", requires = "rerun", value_parser = crate::domain::ids::run_id)]
    pub from: Option<String>,
    /// Print the plan of the tasks this run would start (as `dispatch
    /// plan` does; JSON with --json) and run nothing.
    #[arg(long, conflicts_with_all = ["retry_failed", "rerun"])]
    pub dry_run: bool,
}

/// How a run (or a resumed one) is supervised and reported.
#[derive(Debug, Args)]
pub struct SupervisionArgs {
    /// How many workers run at once, overriding the manifest.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: Option<u32>,
    /// The project root that holds `.dispatch/` (default: the git work tree
    /// around the current folder, or the current folder).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Print only the end summary (and escalations).
    #[arg(long, conflicts_with = "json")]
    pub quiet: bool,
    /// Stream the run's events as JSON lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// List every task in the end summary, not only those that need
    /// attention (complete tasks are listed anyway when there are few).
    #[arg(long)]
    pub verbose: bool,
    /// How long a stopped worker gets between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub grace: std::time::Duration,
    /// The back-off before the first retry of a failed task (doubling for
    /// each further one).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub retry_delay: std::time::Duration,
    /// Ask for answers to questions no rule answers on this terminal's
    /// standard input, one line each (the default when stdin is a terminal
    /// and the live view is on).
    #[arg(long)]
    pub answer_here: bool,
    /// How long an escalation rule's `run:` command may take before it is
    /// killed.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub hook_timeout: std::time::Duration,
    /// Also write the JUnit file here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Also write report.md, report.json and junit.xml into this folder.
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run to continue (default: the latest).
    #[arg(value_name = "RUN", value_parser = crate::domain::ids::run_id)]
    pub run: Option<String>,
    /// Secret `--var`s the run was started with are not stored: give them
    /// again here (other vars are kept; given ones replace them).
    #[command(flatten)]
    pub vars: VarArgs,
    #[command(flatten)]
    pub supervision: SupervisionArgs,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The run (default: the latest).
    #[arg(value_name = "RUN", value_parser = crate::domain::ids::run_id)]
    pub run: Option<String>,
    /// Only these tasks (default: the whole run).
    #[arg(long = "task", value_name = "ID", value_parser = crate::domain::ids::task_id)]
    pub tasks: Vec<String>,
    /// The project root that holds `.dispatch/`.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run id (default: the latest run).
    #[arg(value_name = "RUN", value_parser = crate::domain::ids::run_id)]
    pub run: Option<String>,
    /// Print the run as JSON.
    #[arg(long)]
    pub json: bool,
    /// Refresh every second until the run ends.
    #[arg(long)]
    pub watch: bool,
    /// Only the tasks that fail the sweep (failed, timed-out,
    /// budget-exceeded, incomplete, cancelled, skipped).
    #[arg(long)]
    pub failed: bool,
    /// Only the tasks with this status (repeatable).
    #[arg(long = "status", value_name = "STATUS", value_parser = parse_status)]
    pub statuses: Vec<crate::domain::status::TaskStatus>,
    /// Only the tasks with this id, or matching this glob (`audit-*`;
    /// repeatable).
    #[arg(long = "task", value_name = "ID|GLOB")]
    pub tasks: Vec<String>,
    /// The project root that holds `.dispatch/`.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// A manifest whose models (and commands) to check.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MergeCheckArgs {
    /// The run id (default: the latest run).
    #[arg(value_name = "RUN", value_parser = crate::domain::ids::run_id)]
    pub run: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// The project root that holds `.dispatch/`.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Remove the runs' worktree folders that hold no uncommitted work (the
    /// default when neither --worktrees nor --branches is given).
    #[arg(long)]
    pub worktrees: bool,
    /// Delete the runs' branches whose commits are merged somewhere else
    /// (another branch, a remote, a tag). A branch whose worktree is still
    /// there is kept.
    #[arg(long)]
    pub branches: bool,
    /// Only what this run left (default: every run's).
    #[arg(long, value_name = "RUN", value_parser = crate::domain::ids::run_id)]
    pub run: Option<String>,
    /// Also remove worktrees with uncommitted changes and delete branches
    /// with unmerged commits. That work is lost.
    #[arg(long)]
    pub force: bool,
    /// Say what would be removed, and how much disk it holds; change
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The project root that holds `.dispatch/`.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// A task status as `dispatch status --status` takes it (`timed-out`).
fn parse_status(text: &str) -> Result<crate::domain::status::TaskStatus, String> {
    use crate::domain::status::TaskStatus;
    TaskStatus::from_label(text).ok_or_else(|| {
        let known: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.label()).collect();
        format!("not a task status; use one of {}", known.join(", "))
    })
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::manifest::duration::parse(text)
        .ok_or_else(|| format!("`{text}` is not a duration (e.g. 500ms, 10s, 2m)"))
}

/// Template variables given on the command line.
#[derive(Debug, Args, Clone, Default)]
pub struct VarArgs {
    /// Set a template variable, overriding the manifest's `vars:`
    /// (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The manifests to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub vars: VarArgs,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The manifest.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Show only this task (a task id, or the id of a matrix task for all its
    /// entries). Repeatable.
    #[arg(long = "task", value_name = "ID")]
    pub tasks: Vec<String>,
    /// Also write each task's plan.md, prompt.md and task.json under
    /// DIR/<task-id>/, and the whole plan as DIR/plan.json.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the plan as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show every task's worker prompt. Without it, a sweep of more than
    /// 100 tasks shows the prompts only of the tasks named with --task.
    #[arg(long)]
    pub prompts: bool,
    #[command(flatten)]
    pub vars: VarArgs,
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "`{name}` is not a variable name (letters, digits and `_`, not starting with a digit)"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Parse the arguments and run the command; the process's exit code.
pub fn main_with_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            return ExitCode::from(code);
        }
    };
    ExitCode::from(run(cli))
}

fn run(cli: Cli) -> u8 {
    crate::manifest::user_config::set_ignored(cli.no_user_config);
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Resume(args) => run::resume(&args),
        Command::Cancel(args) => run::cancel(&args),
        Command::Questions(args) => answer::questions(&args),
        Command::Answer(args) => answer::answer(&args),
        Command::Worker(args) => worker::run(&args),
        Command::Report(args) => report_command(&args),
        Command::Clean(args) => clean::run(&args),
        Command::MergeCheck(args) => clean::merge_check(&args),
        Command::Matrix(args) => shard::matrix(&args),
        Command::Doctor(args) => doctor::run(&args),
        Command::Merge(args) => shard::merge(&args),
        Command::Init(args) => setup::init(&args),
        Command::Completions(args) => setup::completions(&args),
        Command::Man(args) => setup::man(&args),
        Command::Schema { report } => {
            print_stdout(&if report {
                crate::report::schema_text()
            } else {
                crate::manifest::schema::manifest_schema_text()
            });
            exit::OK
        }
    }
}

/// The state folder a command works on: under `--root DIR`, else under
/// the git work tree around the current folder (or the current folder).
pub(crate) fn state_dir(root: Option<&PathBuf>) -> crate::state::StateDir {
    let cwd = std::env::current_dir().unwrap_or_default();
    let root = root.map_or_else(|| crate::state::find_root(&cwd), |r| cwd.join(r));
    crate::state::StateDir::new(&root)
}

fn report_command(args: &ReportArgs) -> u8 {
    use crate::record::snapshot;
    let state = state_dir(args.root.as_ref());
    match snapshot::load_run(&state, args.run.as_deref()) {
        Ok(run) => {
            if crate::report::repair::needs_restore(&state, &run) {
                if let Ok(snapshot) = snapshot::load_for_report(&state, Some(&run.run_id)) {
                    for line in crate::report::repair::restore_and_say(&state, &snapshot) {
                        eprintln!("{line}");
                    }
                }
            }
            let redactor = snapshot::redactor(&run);
            use crate::report::write::{write_one, Format};
            let format = match args.format {
                ReportFormat::Md => Format::Markdown,
                ReportFormat::Json => Format::Json,
                ReportFormat::Junit => Format::Junit,
                ReportFormat::Html => Format::Html,
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            // A closed pipe (`dispatch report | head`) is not an error.
            let _ = write_one(&state, run, &redactor, format, &mut out).and_then(|()| out.flush());
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}

/// Print to stdout; a closed pipe (`dispatch plan | head`) is not an error.
fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Print diagnostics to stderr.
fn report(invalid: &Invalid) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{invalid}");
}
