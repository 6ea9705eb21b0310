use super::*;

#[test]
fn agent_clis_get_an_idle_timeout_and_command_workers_none_unless_set() {
    use crate::manifest::types::DurationText;
    let own = DurationText("2m".to_owned());
    let defaults = DurationText("0s".to_owned());
    assert_eq!(
        idle_timeout_of(None, None, EventFormat::Claude).as_deref(),
        Some(DEFAULT_IDLE_TIMEOUT)
    );
    assert_eq!(idle_timeout_of(None, None, EventFormat::None), None);
    assert_eq!(
        idle_timeout_of(None, Some(&defaults), EventFormat::Codex).as_deref(),
        Some("0s")
    );
    assert_eq!(
        idle_timeout_of(Some(&own), Some(&defaults), EventFormat::None).as_deref(),
        Some("2m")
    );
}

/// A sweep large enough to be rendered on several threads.
fn large_sweep(extra: impl Fn(usize) -> String) -> String {
    let mut text = String::from("version: 1\ntasks:\n");
    for i in 0..crate::util::parallel::MIN_ITEMS * 3 {
        let priority = ["low", "normal", "high"][i % 3];
        text.push_str(&format!(
            "  t{i:03}:\n    command: [./work.sh]\n    prompt: \"Task {{{{ task.id }}}}\"\n    priority: {priority}\n{}",
            extra(i)
        ));
    }
    text
}

#[test]
fn a_large_sweep_is_planned_in_schedule_order_each_task_with_its_own_context() {
    let loaded = crate::manifest::parse("large.yaml", &large_sweep(|_| String::new()))
        .expect("a valid manifest");
    let plan = build(&loaded, &PlanOptions::default()).expect("plans");
    let count = crate::util::parallel::MIN_ITEMS * 3;
    assert_eq!(plan.tasks.len(), count);
    for (i, task) in plan.tasks.iter().enumerate() {
        assert_eq!(task.position, i + 1, "{}", task.id);
        assert!(
            task.prompt.contains(&format!("Task {}", task.id)),
            "{} was rendered with another task's context",
            task.id
        );
    }
    // High priority first, then normal, then low; manifest order within.
    let first_normal = plan.tasks.iter().position(|t| &*t.priority == "normal");
    let last_high = plan.tasks.iter().rposition(|t| &*t.priority == "high");
    assert!(last_high < first_normal, "the schedule's order is kept");
    assert_eq!(plan.tasks[0].id, "t002");
}

/// A matrix task's entries share their place in the manifest, and
/// rendered on several threads their problems arrive in any order: the
/// list comes out the same whatever that order was.
#[test]
fn problems_at_one_place_come_out_in_one_order() {
    let loaded = crate::manifest::parse(
        "one.yaml",
        "version: 1\ntasks:\n  a:\n    command: [./x]\n    prompt: Go.\n",
    )
    .expect("a valid manifest");
    let options = PlanOptions::default();
    let found = |order: &[&str]| -> Vec<String> {
        let builder = Builder::new(&loaded, &options);
        for message in order {
            builder.fail(loaded.error_at(&["tasks", "a", "prompt"], message.to_string()));
        }
        builder
            .finish(())
            .expect_err("problems")
            .0
            .into_iter()
            .map(|d| d.message)
            .collect()
    };
    let expected = ["entry 1 failed", "entry 2 failed", "entry 3 failed"];
    assert_eq!(
        found(&["entry 2 failed", "entry 3 failed", "entry 1 failed"]),
        expected
    );
    assert_eq!(
        found(&["entry 3 failed", "entry 1 failed", "entry 2 failed"]),
        expected
    );
}

/// Tasks rendered on different threads still cannot share a worktree
/// branch, and the later one in the schedule is the one told.
#[test]
fn a_worktree_branch_shared_across_a_large_sweep_blames_the_later_task() {
    let text = large_sweep(|i| {
        if i == 2 || i == 191 {
            "    worktree: { branch: shared }\n".to_owned()
        } else {
            String::new()
        }
    });
    let loaded = crate::manifest::parse("large.yaml", &text).expect("a valid manifest");
    let invalid = build(&loaded, &PlanOptions::default()).expect_err("refused");
    let messages: Vec<&str> = invalid.0.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        ["task `t191` gets the worktree branch `shared`, which task `t002` has too"]
    );
}

/// Every task's paths hold the plan's one root rather than a copy, and a
/// task that runs in the root keeps no working folder of its own: a
/// 50,000-task sweep kept nine owned paths per task.
#[test]
fn the_tasks_of_a_plan_share_one_root_and_derive_their_paths() {
    let loaded = crate::manifest::parse("large.yaml", &large_sweep(|_| String::new()))
        .expect("a valid manifest");
    let options = PlanOptions {
        root: Some(PathBuf::from("/project")),
        ..PlanOptions::default()
    };
    let plan = build(&loaded, &options).expect("plans");
    let first = &plan.tasks[0].paths;
    for task in &plan.tasks {
        assert!(task.paths.shares_root_with(first), "{}", task.id);
        assert_eq!(task.paths.workdir(), "/project");
        assert_eq!(
            task.paths.plan(),
            format!("/project/.dispatch/tasks/{}/plan.md", task.id)
        );
    }
}

/// `dispatch run`'s mode keeps the prompts of a plan up to its size and
/// renders those of a wider one at launch (their argv holding the marker).
#[test]
fn a_plan_keeps_its_prompts_up_to_a_size_and_no_further() {
    let loaded = crate::manifest::parse(
        "two.yaml",
        "version: 1\ntasks:\n  a:\n    command: [./work.sh, '{{ prompt }}']\n    plan: [One]\n  b:\n    command: [./work.sh, '{{ prompt }}']\n    plan: [One]\n",
    )
    .expect("a valid manifest");
    let with = |prompts| PlanOptions {
        prompts,
        ..PlanOptions::default()
    };
    let kept = build(&loaded, &with(Prompts::RenderUpTo(2))).expect("plans");
    for task in &kept.tasks {
        assert!(
            task.prompt.contains("# Task: "),
            "{}: {:?}",
            task.id,
            task.prompt
        );
        assert_eq!(task.argv[1], task.prompt);
    }
    let lazy = build(&loaded, &with(Prompts::RenderUpTo(1))).expect("plans");
    for task in &lazy.tasks {
        assert_eq!(task.prompt, "");
        assert_eq!(task.argv[1], prompt::MARKER);
    }
}
