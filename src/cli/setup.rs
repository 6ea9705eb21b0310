//! Getting started and fitting in: `dispatch init` (a starter manifest, or
//! one of the examples, with the schema hint editors read),
//! `dispatch completions SHELL` and `dispatch man`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};

use super::{exit, print_stdout, Cli};
use crate::manifest::diagnostic::did_you_mean;
use crate::manifest::schema::SCHEMA_URL;

/// The file `dispatch init` writes when given none, at the repository's
/// top (the folder other commands look for `.dispatch/` in).
pub const DEFAULT_FILE: &str = "dispatch.yaml";

/// The commented starter; `SCHEMA_URL` on its first line is replaced.
const STARTER: &str = include_str!("../../templates/starter.yaml");

/// The manifests `--example` starts from: the checked-in scenarios. The
/// demo is not one: its workers are scripts of this repository.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "pre-launch",
        include_str!("../../manifests/pre-launch.yaml"),
    ),
    ("fix-typo", include_str!("../../manifests/fix-typo.yaml")),
    (
        "security-review",
        include_str!("../../manifests/security-review.yaml"),
    ),
    (
        "auth-refactor",
        include_str!("../../manifests/auth-refactor.yaml"),
    ),
    (
        "payment-module",
        include_str!("../../manifests/payment-module.yaml"),
    ),
    (
        "module-audit-matrix",
        include_str!("../../manifests/module-audit-matrix.yaml"),
    ),
];

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write the manifest (default: dispatch.yaml at the top of
    /// the git work tree around the current folder, or in it).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Start from an example instead of the starter: pre-launch, fix-typo,
    /// security-review, auth-refactor, payment-module or
    /// module-audit-matrix.
    #[arg(long, value_name = "NAME")]
    pub example: Option<String>,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, powershell or elvish.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write dispatch.1 and a page per command (dispatch-run.1, …) into
    /// DIR instead of printing dispatch.1.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The text `init` writes: the starter or an example, its first line the
/// schema hint with the published URL (the examples' own point into this
/// repository's tree, which a copy elsewhere does not have).
pub fn manifest_text(example: Option<&str>) -> Result<String, String> {
    let hint = format!("# yaml-language-server: $schema={SCHEMA_URL}");
    let Some(name) = example else {
        return Ok(STARTER.replacen("# yaml-language-server: $schema=SCHEMA_URL", &hint, 1));
    };
    let Some((_, text)) = EXAMPLES.iter().find(|(known, _)| *known == name) else {
        let known: Vec<&str> = EXAMPLES.iter().map(|(n, _)| *n).collect();
        let help = did_you_mean(name, known.iter().copied())
            .map(|close| format!("\n  = help: did you mean `{close}`?"))
            .unwrap_or_default();
        return Err(format!(
            "--example {name}: no such example (known: {}){help}",
            known.join(", ")
        ));
    };
    let body = text
        .split_once('\n')
        .filter(|(first, _)| first.starts_with("# yaml-language-server:"))
        .map_or(*text, |(_, rest)| rest);
    Ok(format!("{hint}\n{body}"))
}

pub fn init(args: &InitArgs) -> u8 {
    let text = match manifest_text(args.example.as_deref()) {
        Ok(text) => text,
        Err(message) => {
            eprintln!("error: {message}");
            return exit::USAGE;
        }
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let path = match &args.file {
        Some(file) => cwd.join(file),
        None => crate::state::find_root(&cwd).join(DEFAULT_FILE),
    };
    let shown = shown_path(&path, &cwd);
    match write_new(&path, &text, args.force) {
        Ok(()) => {
            let from = args
                .example
                .as_deref()
                .map_or_else(|| "the starter".to_owned(), |e| format!("example {e}"));
            print_stdout(&format!(
                "wrote {shown} ({from})\nnext: dispatch validate {shown}, then dispatch plan {shown}\n"
            ));
            exit::OK
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!(
                "error: {shown}: already exists; pass --force to replace it, or name another FILE (dispatch init FILE)"
            );
            exit::USAGE
        }
        Err(e) => {
            eprintln!("error: {shown}: cannot write the manifest: {e}");
            exit::USAGE
        }
    }
}

/// Write `text` to `path`; without `force`, never over an existing file
/// (nor through a link where one is), decided by the open itself.
fn write_new(path: &Path, text: &str, force: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    options.open(path)?.write_all(text.as_bytes())
}

/// `path` relative to the current folder when it is under it.
fn shown_path(path: &Path, cwd: &Path) -> String {
    path.strip_prefix(cwd).unwrap_or(path).display().to_string()
}

pub fn completions(args: &CompletionsArgs) -> u8 {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "dispatch", &mut script);
    print_stdout(&String::from_utf8_lossy(&script));
    exit::OK
}

pub fn man(args: &ManArgs) -> u8 {
    let command = Cli::command();
    let Some(dir) = &args.out else {
        let mut page = Vec::new();
        if let Err(e) = clap_mangen::Man::new(command).render(&mut page) {
            eprintln!("error: cannot render the man page: {e}");
            return exit::USAGE;
        }
        print_stdout(&String::from_utf8_lossy(&page));
        return exit::OK;
    };
    let written =
        std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(command, dir));
    match written {
        Ok(()) => {
            print_stdout(&format!("wrote the man pages into {}\n", dir.display()));
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {}: cannot write the man pages: {e}", dir.display());
            exit::USAGE
        }
    }
}
