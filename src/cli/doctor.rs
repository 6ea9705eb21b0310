//! `dispatch doctor [FILE]`: the agent CLIs on this machine and, for a
//! manifest, whether each of its models (and commands) can be served.

use std::fmt::Write as _;
use std::path::PathBuf;

use indexmap::IndexMap;
use serde::Serialize;

use super::{exit, print_stdout, report, DoctorArgs};
use crate::agents::doctor::{self, CliCheck, Setup};
use crate::manifest::models;

/// What a manifest's tasks need, grouped by model (or by command).
#[derive(Debug, Serialize)]
struct Need {
    /// The model name, or the command for tasks without a model.
    model: String,
    backend: String,
    tasks: Vec<String>,
    ready: bool,
    /// Why not, and what to do.
    problem: Option<String>,
    /// The tasks whose CLI will lack credentials, and what they lack.
    #[serde(skip)]
    lacking: Vec<String>,
    #[serde(skip)]
    missing: Option<String>,
}

/// Whether `sandbox:` tasks can run here.
#[derive(Debug, Serialize)]
struct SandboxCheck {
    ready: bool,
    /// bubblewrap's path, when it can make a sandbox.
    bwrap: Option<PathBuf>,
    /// Why not, and what to do.
    problem: Option<String>,
}

impl SandboxCheck {
    fn run() -> Self {
        match crate::isolation::sandbox::probe() {
            Ok(bwrap) => SandboxCheck {
                ready: true,
                bwrap: Some(bwrap),
                problem: None,
            },
            Err(e) => SandboxCheck {
                ready: false,
                bwrap: None,
                problem: Some(format!("{e}; {}", e.help())),
            },
        }
    }
}

#[derive(Debug, Serialize)]
struct Doctor {
    clis: Vec<CliCheck>,
    sandbox: SandboxCheck,
    manifest: Option<String>,
    needs: Vec<Need>,
}

pub fn run(args: &DoctorArgs) -> u8 {
    let env = |name: &str| std::env::var(name).ok();
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut doctor = Doctor {
        clis: models::builtin_backends()
            .iter()
            .filter(|b| !b.command.is_empty())
            .map(|b| doctor::check(b, &env, &home))
            .collect(),
        sandbox: SandboxCheck::run(),
        manifest: None,
        needs: Vec::new(),
    };
    if let Some(file) = &args.file {
        let loaded = match crate::manifest::load_with_user_config(file) {
            Ok(loaded) => loaded,
            Err(invalid) => {
                report(&invalid);
                return exit::USAGE;
            }
        };
        let plan = match crate::plan::build(&loaded, &crate::plan::PlanOptions::default()) {
            Ok(plan) => plan,
            Err(invalid) => {
                report(&invalid);
                return exit::USAGE;
            }
        };
        let all = models::backends(&loaded.manifest);
        let mut needs: IndexMap<(String, String), Need> = IndexMap::new();
        for task in &plan.tasks {
            let model = task.model.as_ref().map_or_else(
                || task.argv.first().cloned().unwrap_or_default(),
                |m| m.name.clone(),
            );
            let key = (model.clone(), task.backend.to_string());
            let need = needs.entry(key).or_insert_with(|| {
                let problem = match all.get(&*task.backend) {
                    Some(backend) if !backend.command.is_empty() => {
                        let check = doctor
                            .clis
                            .iter()
                            .find(|c| c.backend == backend.name)
                            .cloned()
                            .filter(|_| backend.builtin)
                            .unwrap_or_else(|| doctor::check(backend, &env, &home));
                        problem_of(&check)
                    }
                    _ => task.argv.first().and_then(|program| {
                        crate::agents::find_program(program, &loaded.dir)
                            .is_none()
                            .then(|| format!("`{program}` is not an executable file or on PATH"))
                    }),
                };
                Need {
                    model,
                    backend: task.backend.to_string(),
                    tasks: Vec::new(),
                    ready: problem.is_none(),
                    problem,
                    lacking: Vec::new(),
                    missing: None,
                }
            });
            need.tasks.push(task.id.clone());
            let program = task.argv.first().map(String::as_str).unwrap_or_default();
            let model_id = task.model.as_ref().map(|m| m.id.as_str());
            if let Some(missing) = doctor::missing_credentials(
                &task.backend,
                program,
                model_id,
                &task.env,
                &env,
                Some(&home),
            ) {
                need.lacking.push(task.id.clone());
                need.missing = Some(missing);
            }
        }
        for need in needs.values_mut() {
            // Judged per task, with each task's own `env:`; a CLI that is
            // not installed says so first.
            if let (None, Some(missing)) = (&need.problem, &need.missing) {
                need.problem = Some(format!(
                    "{missing}; tasks without: {}",
                    need.lacking.join(", ")
                ));
                need.ready = false;
            }
        }
        let sandboxed: Vec<String> = plan
            .tasks
            .iter()
            .filter(|t| t.sandbox.is_some())
            .map(|t| t.id.clone())
            .collect();
        if !sandboxed.is_empty() {
            needs.insert(
                ("sandbox".to_owned(), "bubblewrap".to_owned()),
                Need {
                    model: "sandbox".to_owned(),
                    backend: "bubblewrap".to_owned(),
                    tasks: sandboxed,
                    ready: doctor.sandbox.ready,
                    problem: doctor.sandbox.problem.clone(),
                    lacking: Vec::new(),
                    missing: None,
                },
            );
        }
        doctor.manifest = Some(file.display().to_string());
        doctor.needs = needs.into_values().collect();
    }
    if args.json {
        let mut text = serde_json::to_string_pretty(&doctor).unwrap_or_default();
        text.push('\n');
        print_stdout(&text);
    } else {
        print_stdout(&render(&doctor));
    }
    if doctor.needs.iter().all(|n| n.ready) {
        exit::OK
    } else {
        exit::TASK_FAILED
    }
}

fn problem_of(check: &CliCheck) -> Option<String> {
    match (&check.path, &check.setup) {
        (None, _) => Some(format!(
            "`{}` is not installed{}",
            check.program,
            check
                .install
                .as_deref()
                .map(|i| format!(" ({i})"))
                .unwrap_or_default()
        )),
        // Credentials are judged per task, with its `env:`
        // (`doctor::missing_credentials`).
        _ => None,
    }
}

fn render(doctor: &Doctor) -> String {
    let mut out = String::from("Agent CLIs on this machine:\n");
    for cli in &doctor.clis {
        let state = match (&cli.path, &cli.setup) {
            (None, _) => format!(
                "not installed — {}",
                cli.install.as_deref().unwrap_or("install it")
            ),
            (Some(path), setup) => {
                let version = cli.version.as_deref().unwrap_or("version unknown");
                let setup = match setup {
                    Setup::Configured(how) => format!("configured ({how})"),
                    Setup::NotConfigured(todo) => format!("NOT CONFIGURED: {todo}"),
                    Setup::Unknown => "setup unknown".to_owned(),
                };
                format!("{version}, {} — {setup}", path.display())
            }
        };
        let _ = writeln!(out, "  {:<9} {state}", cli.backend);
        if !cli.left_out.is_empty() {
            let _ = writeln!(
                out,
                "            note: {}",
                crate::agents::cli_home::left_out_warning(&cli.left_out)
            );
        }
    }
    let sandbox = match (&doctor.sandbox.bwrap, &doctor.sandbox.problem) {
        (Some(bwrap), _) => format!("ready, {}", bwrap.display()),
        (None, problem) => format!("NOT AVAILABLE: {}", problem.as_deref().unwrap_or("")),
    };
    let _ = writeln!(out, "\nSandbox (`sandbox:` tasks): {sandbox}");
    if let Some(manifest) = &doctor.manifest {
        let _ = writeln!(out, "\nWhat {manifest} needs:");
        for need in &doctor.needs {
            let count = need.tasks.len();
            let verdict = match &need.problem {
                None => "ready".to_owned(),
                Some(problem) => format!("NOT READY: {problem}"),
            };
            let _ = writeln!(
                out,
                "  {} via {} ({count} task{}): {verdict}",
                need.model,
                need.backend,
                if count == 1 { "" } else { "s" }
            );
        }
    }
    out
}
