//! A task's confinement, resolved from the sweep, `defaults` and the task:
//! which inherited variables pass (`env_policy`) and its sandbox.

use super::*;
use crate::manifest::confine::{EnvMode, Network, NetworkMode, SandboxSetting};
pub use crate::manifest::confine::{EnvPlan, NetworkPlan, SandboxPlan};

impl<'a> Builder<'a> {
    /// The sandbox: the task's setting, else the defaults'.
    pub(super) fn sandbox(&self, task: &Task) -> Option<SandboxPlan> {
        let setting = task
            .sandbox
            .as_ref()
            .or(self.loaded.manifest.defaults.sandbox.as_ref())
            .filter(|s| s.enabled())?;
        let network = match SandboxSetting::network(setting) {
            None | Some(Network::Mode(NetworkMode::Full)) => NetworkPlan::Full,
            Some(Network::Mode(NetworkMode::None)) => NetworkPlan::None,
            Some(Network::Allow(allow)) => NetworkPlan::Allow(allow.allow.clone()),
        };
        Some(SandboxPlan { network })
    }

    /// The environment policy: allow lists of the sweep, `defaults` and
    /// the task together; the most specific mode; else `scoped` in a
    /// sandbox (a confined worker holding every secret of the CI job's
    /// environment would be half confined) and `inherit` outside one
    /// (what a CLI run by hand sees, so nothing it needs goes missing).
    pub(super) fn env_plan(&self, task: &Task, sandboxed: bool) -> EnvPlan {
        let manifest = &self.loaded.manifest;
        let levels = [
            task.env_policy.as_ref(),
            manifest.defaults.env_policy.as_ref(),
            manifest.env_policy.as_ref(),
        ];
        let mode = levels
            .iter()
            .flatten()
            .find_map(|p| p.mode())
            .unwrap_or(if sandboxed {
                EnvMode::Scoped
            } else {
                EnvMode::Inherit
            });
        let mut allow: Vec<String> = Vec::new();
        for policy in levels.iter().rev().flatten() {
            for name in policy.allow() {
                if !allow.contains(name) {
                    allow.push(name.clone());
                }
            }
        }
        EnvPlan { mode, allow }
    }
}
