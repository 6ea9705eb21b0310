//! A launch's confinement: the environment its `env_policy` lets through,
//! and its command wrapped in the bubblewrap sandbox with the endpoints it
//! may reach forwarded. Called by `launch.rs` just before the worker
//! starts, so what a task is confined by is decided from the plan and the
//! environment of that moment.

use std::path::{Path, PathBuf};

use tokio::task::JoinHandle;

use super::Sweep;
use crate::isolation::{env, forward, sandbox};
use crate::manifest::confine::EnvMode;
use crate::plan::PlannedTask;
use crate::state::layout;
use crate::supervise::process::SpawnError;

/// What a worker is launched with once confined.
pub(super) struct Confined {
    pub(super) argv: Vec<String>,
    pub(super) env: Vec<(String, String)>,
    /// The worker gets `env` only, not dispatch's environment under it.
    pub(super) clear_env: bool,
    /// bwrap is the program: start it with SIGTERM ignored.
    pub(super) ignore_term: bool,
    /// Names of dispatch's variables the worker does not get.
    pub(super) left_out: Vec<String>,
    /// The outside ends of forwarded endpoints, stopped when it ends.
    pub(super) forwards: Vec<JoinHandle<()>>,
}

impl Sweep {
    /// Apply the task's `env_policy` and `sandbox` to its command and
    /// environment (`env` is what dispatch sets for it, which always
    /// passes).
    pub(super) fn confine(
        &self,
        index: usize,
        argv: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Result<Confined, SpawnError> {
        let task = &self.slots[index].task;
        let mut confined = Confined {
            argv,
            env,
            clear_env: false,
            ignore_term: false,
            left_out: Vec::new(),
            forwards: Vec::new(),
        };
        if task.env_policy.mode == EnvMode::Scoped {
            // `env::vars` would panic on a variable that is not UTF-8;
            // such a one cannot be passed on as text, so it is left out.
            let mut unreadable = Vec::new();
            let vars = std::env::vars_os().filter_map(|(name, value)| {
                match (name.into_string(), value.into_string()) {
                    (Ok(name), Ok(value)) => Some((name, value)),
                    (Ok(name), Err(_)) => {
                        unreadable.push(name);
                        None
                    }
                    (Err(name), _) => {
                        unreadable.push(name.to_string_lossy().into_owned());
                        None
                    }
                }
            });
            let (mut pass, mut left_out) =
                env::split(&task.env_policy, &task.backend, task.events, vars);
            left_out.append(&mut unreadable);
            left_out.sort();
            pass.retain(|(name, _)| !confined.env.iter().any(|(set, _)| set == name));
            pass.append(&mut confined.env);
            confined.env = pass;
            confined.clear_env = true;
            confined.left_out = left_out;
        }
        let Some(plan) = &task.sandbox else {
            return Ok(confined);
        };
        let program = self.slots[index].program.as_deref().map(Path::to_path_buf);
        let spec = self.sandbox_spec(task, program, &confined.env, plan.network.clone())?;
        let wrapped =
            sandbox::wrap(&spec, &confined.argv).map_err(|e| SpawnError::Sandbox(e.to_string()))?;
        for item in &wrapped.forwards {
            let started = forward::start(item).map_err(|e| {
                SpawnError::Sandbox(format!(
                    "cannot listen on {} for {}: {e}",
                    item.socket.display(),
                    item.address
                ))
            });
            match started {
                Ok(handle) => confined.forwards.push(handle),
                Err(e) => {
                    confined.forwards.iter().for_each(JoinHandle::abort);
                    return Err(e);
                }
            }
        }
        confined.argv = wrapped.argv;
        confined
            .env
            .retain(|(name, _)| !wrapped.env.iter().any(|(set, _)| set == name));
        confined.env.extend(wrapped.env);
        confined.ignore_term = true;
        Ok(confined)
    }

    fn sandbox_spec(
        &self,
        task: &PlannedTask,
        program: Option<PathBuf>,
        env: &[(String, String)],
        network: crate::manifest::confine::NetworkPlan,
    ) -> Result<sandbox::Spec, SpawnError> {
        let bwrap = crate::agents::find_program(sandbox::BWRAP, Path::new("/"))
            .ok_or_else(|| SpawnError::Sandbox(sandbox::SandboxError::Missing.to_string()))?;
        let lookup = |name: &str| {
            env.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(name).ok())
        };
        let root = PathBuf::from(task.paths.root());
        Ok(sandbox::Spec {
            bwrap,
            helper: PathBuf::from(&self.dispatch_bin),
            state: PathBuf::from(task.paths.state()),
            task_dir: PathBuf::from(task.paths.task_dir()),
            workdir: PathBuf::from(task.paths.workdir()),
            needs: task
                .needs
                .iter()
                .map(|id| root.join(layout::task_dir(id)))
                .collect(),
            root,
            home: std::env::var_os("HOME").map(PathBuf::from),
            login_file: task
                .cli_home
                .as_ref()
                .and_then(|_| self.user_config.login_file(&task.backend)),
            program,
            path: lookup("PATH"),
            branch: task.worktree.as_ref().map(|w| w.branch.clone()),
            network: Some(network),
        })
    }
}

impl Confined {
    /// What a launch that fails before its start carries: nothing runs.
    pub(super) fn failed(task: &PlannedTask) -> Self {
        Confined {
            argv: task.argv.clone(),
            env: Vec::new(),
            clear_env: true,
            ignore_term: false,
            left_out: Vec::new(),
            forwards: Vec::new(),
        }
    }
}

/// A sandbox task never runs unconfined: where bubblewrap is missing or
/// cannot make a sandbox (no unprivileged user namespaces), the run stops
/// before anything starts, at the first such task's `sandbox:`.
pub(super) fn preflight(
    loaded: &crate::manifest::LoadedManifest,
    plan: &crate::plan::SweepPlan,
    fates: &[super::carry::Fate],
) -> Result<(), crate::manifest::Invalid> {
    let Some(first) = plan
        .tasks
        .iter()
        .zip(fates)
        .find(|(t, fate)| t.sandbox.is_some() && fate.runs())
        .map(|(t, _)| t)
    else {
        return Ok(());
    };
    let Err(e) = sandbox::probe() else {
        return Ok(());
    };
    let own = loaded
        .manifest
        .tasks
        .get(&*first.source_id)
        .is_some_and(|t| t.sandbox.is_some());
    let path: Vec<&str> = if own {
        vec!["tasks", &*first.source_id, "sandbox"]
    } else {
        vec!["defaults", "sandbox"]
    };
    Err(crate::manifest::Invalid::one(
        loaded
            .error_at(
                &path,
                format!(
                    "task `{}` is to run in a sandbox, and {e}; it would run unconfined, so nothing starts",
                    first.id
                ),
            )
            .with_help(format!("{} (`dispatch doctor` checks this)", e.help())),
    ))
}
