//! The worktree a task gets: its folder and branch (each claimed by one
//! task only), its base, and the setup that makes it usable.

use super::*;

impl<'a> Builder<'a> {
    /// Two tasks cannot share a worktree branch or folder: each is claimed
    /// in schedule order, and the later claimant is the one told.
    pub(super) fn claim_worktrees(
        &self,
        instances: &[Instance<'a>],
        basics: &[Basics],
        slots: &[order::Slot],
    ) {
        let mut taken: HashMap<String, &str> = HashMap::new();
        for slot in slots {
            let (instance, own) = (&instances[slot.index], &basics[slot.index]);
            if !own.worktree {
                continue;
            }
            for (what, value) in [
                ("branch", own.branch.as_deref().unwrap_or_default()),
                ("path", own.paths.workdir()),
            ] {
                let key = format!("{what}\0{value}");
                match taken.get(&key) {
                    Some(other) => {
                        let d = self
                            .loaded
                            .error_at(
                                &["tasks", instance.source_id, "worktree"],
                                format!("task `{}` gets the worktree {what} `{value}`, which task `{other}` has too", instance.id),
                            )
                            .with_help(format!("give each task its own {what}, for example with `{{{{ task.id }}}}` in `worktree.{what}`"));
                        self.fail(d);
                    }
                    None => {
                        taken.insert(key, &instance.id);
                    }
                }
            }
        }
    }

    pub(super) fn worktree(
        &self,
        instance: &Instance<'a>,
        own: &Basics,
        context: &Json,
    ) -> Option<WorktreePlan> {
        if !own.worktree {
            return None;
        }
        let manifest = &self.loaded.manifest;
        let options = worktree_options(instance.task, manifest);
        let options = options.as_ref();
        let path = ["tasks", instance.source_id, "worktree", "base"];
        let base = match options.and_then(|o| o.base.clone()) {
            Some(base) => {
                let rendered = self.render_field(&path, &base, context);
                if rendered.trim().is_empty() || rendered == "none" {
                    let d = self
                        .loaded
                        .error_at(&path, format!("the base `{base}` renders to nothing"))
                        .with_help("a task that is not in a worktree has no branch; give that task `worktree: true`, or start from a ref such as `main`");
                    self.fail(d);
                }
                rendered
            }
            None => "HEAD".to_owned(),
        };
        if let Some(setup) = options.and_then(|o| o.setup.as_ref()) {
            self.check_setup(instance.source_id, setup);
        }
        Some(WorktreePlan {
            path: own.paths.workdir().to_owned(),
            branch: own.branch.clone().unwrap_or_default(),
            base,
            keep: options.and_then(|o| o.keep),
            reuse: options.and_then(|o| o.reuse).unwrap_or(false),
            setup: options.and_then(|o| o.setup.clone()),
            commit: options
                .and_then(|o| o.commit)
                .unwrap_or(CommitPolicy::Never),
        })
    }

    /// Setup paths must stay inside the project, and its timeout parse.
    pub(super) fn check_setup(
        &self,
        source_id: &str,
        setup: &crate::manifest::types::WorktreeSetup,
    ) {
        for (key, paths) in [("copy", &setup.copy), ("link", &setup.link)] {
            for (i, path) in paths.iter().enumerate() {
                if !crate::isolation::setup::is_inside(path) {
                    let index = i.to_string();
                    let d = self
                        .loaded
                        .error_at(
                            &["tasks", source_id, "worktree", "setup", key, &index],
                            format!("`{path}` is not a path inside the project"),
                        )
                        .with_help("give a path relative to the project root, without `..` (e.g. `.env`, `node_modules`)");
                    self.fail(d);
                }
            }
        }
        if let Some(timeout) = &setup.timeout {
            if crate::manifest::duration::parse(timeout).is_none() {
                let d = self
                    .loaded
                    .error_at(
                        &["tasks", source_id, "worktree", "setup", "timeout"],
                        format!("`{timeout}` is not a duration"),
                    )
                    .with_help("write a duration such as `90s`, `10m` or `1h30m`");
                self.fail(d);
            }
        }
    }
}

/// A task's worktree settings: its own, each missing one taken from
/// `defaults.worktree` (so `worktree: true` gets the defaults' setup).
pub(super) fn worktree_options(
    task: &Task,
    manifest: &crate::manifest::Manifest,
) -> Option<crate::manifest::types::WorktreeOptions> {
    let defaults = match &manifest.defaults.worktree {
        Some(WorktreeSetting::Options(options)) => Some(options),
        _ => None,
    };
    let own = match &task.worktree {
        Some(WorktreeSetting::Options(options)) => Some(options),
        _ => None,
    };
    match (own, defaults) {
        (Some(own), Some(defaults)) => Some(crate::manifest::types::WorktreeOptions {
            base: own.base.clone().or_else(|| defaults.base.clone()),
            branch: own.branch.clone().or_else(|| defaults.branch.clone()),
            path: own.path.clone().or_else(|| defaults.path.clone()),
            reuse: own.reuse.or(defaults.reuse),
            keep: own.keep.or(defaults.keep),
            commit: own.commit.or(defaults.commit),
            setup: own.setup.clone().or_else(|| defaults.setup.clone()),
        }),
        (own, defaults) => own.or(defaults).cloned(),
    }
}
