//! A second `dispatch run` of the same worktree sweep just works, and loses
//! nothing of the first: a branch with commits of its own is kept under
//! `BRANCH@COMMIT`, one with nothing of its own starts again, a clean
//! worktree folder left behind is removed, and uncommitted work left
//! behind stops the run (docs/worktrees.md, "Running again").

mod common;

use std::process::Output;

use serde_json::Value;

use common::{git, init_repo, Project};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn run_ok(project: &Project) -> Vec<Value> {
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    events
}

fn warnings(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "warning")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn branches(project: &Project) -> Vec<String> {
    git(
        project.path(),
        &["branch", "--list", "--format=%(refname:short)"],
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

const COMMITS: &str = "version: 1
tasks:
  solo:
    command: [AGENT, 'write:x.txt=RUN', 'commit:Run RUN', check-all]
    plan: [Work]
    worktree: true
";

#[test]
fn a_rerun_keeps_the_first_runs_commits_aside_and_starts_the_branch_again() {
    let project = Project::new();
    project.manifest(&COMMITS.replace("RUN", "one"));
    init_repo(project.path());
    run_ok(&project);
    let first = git(project.path(), &["rev-parse", "dispatch/solo"]);
    let main = git(project.path(), &["rev-parse", "main"]);

    project.manifest(&COMMITS.replace("RUN", "two"));
    let events = run_ok(&project);

    let aside = format!("dispatch/solo@{}", &first[..8]);
    assert_eq!(
        git(project.path(), &["rev-parse", &aside]),
        first,
        "the first run's commit is kept: {:?}",
        branches(&project)
    );
    assert_eq!(
        git(project.path(), &["show", "dispatch/solo:x.txt"]),
        "two",
        "the second run's work is on the branch"
    );
    assert_eq!(
        git(project.path(), &["rev-parse", "dispatch/solo~1"]),
        main,
        "the branch started again from the base, not from the first run's"
    );
    let said = warnings(&events);
    assert!(
        said.iter()
            .any(|w| w.contains(&format!("they are kept on `{aside}`"))),
        "{said:?}"
    );
    assert_eq!(project.task_json("solo")["branch"]["reused"], false);

    // And a third time: each earlier run's commits under their own name.
    project.manifest(&COMMITS.replace("RUN", "three"));
    let second = git(project.path(), &["rev-parse", "dispatch/solo"]);
    run_ok(&project);
    assert_eq!(
        git(
            project.path(),
            &["rev-parse", &format!("dispatch/solo@{}", &second[..8])]
        ),
        second
    );
    assert_eq!(git(project.path(), &["rev-parse", &aside]), first);

    // `clean --branches` deals with what was set aside as with the branch:
    // kept while its commits are merged nowhere, deleted once they are.
    let clean = |args: &[&str]| {
        let output = project.command(args).output().expect("clean");
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let said = clean(&["clean", "--branches"]);
    assert!(
        said.contains(&format!(
            "kept branch {aside}: it has commits that are not merged anywhere"
        )),
        "{said}"
    );
    git(project.path(), &["merge", "-q", "--no-edit", &aside]);
    let said = clean(&["clean", "--branches"]);
    assert!(said.contains(&format!("deleted branch {aside}")), "{said}");
    assert!(
        !branches(&project).contains(&aside),
        "{:?}",
        branches(&project)
    );
    let said = clean(&["clean", "--branches", "--force"]);
    assert!(
        branches(&project) == ["main"],
        "{said}: {:?}",
        branches(&project)
    );
}

#[test]
fn a_branch_with_nothing_of_its_own_is_simply_made_again() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  idle:
    command: [AGENT, check-all]
    plan: [Look around]
    worktree: true
",
    );
    init_repo(project.path());
    run_ok(&project);
    assert!(branches(&project).contains(&"dispatch/idle".to_owned()));
    let events = run_ok(&project);
    assert_eq!(
        branches(&project),
        ["dispatch/idle", "main"],
        "no branch set aside"
    );
    assert!(warnings(&events).is_empty(), "{:?}", warnings(&events));
}

#[test]
fn a_clean_folder_kept_by_the_first_run_is_removed_and_its_commits_kept() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  kept:
    command: [AGENT, 'write:k.txt=k', 'commit:Keep me', check-all]
    plan: [Work]
    worktree: { keep: always }
",
    );
    init_repo(project.path());
    run_ok(&project);
    let folder = project.path().join(".dispatch/worktrees/kept");
    assert!(folder.join("k.txt").is_file());
    let first = git(project.path(), &["rev-parse", "dispatch/kept"]);
    run_ok(&project);
    assert_eq!(
        git(
            project.path(),
            &["rev-parse", &format!("dispatch/kept@{}", &first[..8])]
        ),
        first
    );
    assert!(folder.join("k.txt").is_file(), "the second run's worktree");
    assert_eq!(project.task_json("kept")["status"], "complete");
}

#[test]
fn uncommitted_work_left_by_the_first_run_stops_the_second_and_is_untouched() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  dirty:
    command: [AGENT, 'write:draft.txt=draft', check-all]
    plan: [Work]
    worktree: true
",
    );
    init_repo(project.path());
    run_ok(&project);
    let draft = project.path().join(".dispatch/worktrees/dirty/draft.txt");
    assert!(draft.is_file(), "kept with its uncommitted work");
    let (output, events) = project.run(&[]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("an earlier run left uncommitted work in")
            && err.contains("on branch `dispatch/dirty`"),
        "{err}"
    );
    assert!(err.contains("dispatch clean --force"), "{err}");
    assert!(!events.iter().any(|e| e["event"] == "task-started"));
    assert_eq!(
        std::fs::read_to_string(&draft).expect("still there"),
        "draft\n"
    );
    assert_eq!(branches(&project), ["dispatch/dirty", "main"]);
}
