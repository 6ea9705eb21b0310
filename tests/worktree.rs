//! Worktree isolation end to end: tasks with `worktree:` run their worker
//! (the scripted test agent) in a git worktree on branch `dispatch/<id>`,
//! and what they committed is recorded for review. Every repository here is
//! a throwaway one made by `common::init_repo`, with a fixed identity and no
//! user configuration.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use common::{git, init_repo, project_named, Project};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The project root as dispatch sees it (canonical).
fn root(project: &Project) -> PathBuf {
    std::fs::canonicalize(project.path()).expect("canonical root")
}

fn worktree_dir(project: &Project, id: &str) -> PathBuf {
    root(project).join(".dispatch/worktrees").join(id)
}

/// `dispatch run`, which must exit 0; its events.
fn run_ok(project: &Project) -> Vec<Value> {
    let (output, events) = project.run(&[]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\n{}",
        stderr(&output),
        String::from_utf8_lossy(&output.stdout)
    );
    events
}

fn branch_of(project: &Project, id: &str) -> Value {
    let record = project.task_json(id);
    assert!(record["branch"].is_object(), "{id} has no branch: {record}");
    record["branch"].clone()
}

/// The messages of the run's warning events.
fn warnings(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "warning")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn run_dir(project: &Project, events: &[Value]) -> PathBuf {
    let run_id = events[0]["run_id"].as_str().expect("run id");
    project.path().join(".dispatch/runs").join(run_id)
}

/// `git worktree list --porcelain`, one block per worktree; checks that no
/// entry is stale.
fn worktree_list(project: &Project) -> Vec<String> {
    let text = git(project.path(), &["worktree", "list", "--porcelain"]);
    let blocks: Vec<String> = text
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(str::to_owned)
        .collect();
    for block in &blocks {
        assert!(block.starts_with("worktree "), "unparsable: {text}");
        assert!(
            !block.contains("prunable") && !block.contains("locked"),
            "stale worktree entry: {text}"
        );
    }
    blocks
}

fn branch_exists(project: &Project, name: &str) -> bool {
    !git(project.path(), &["branch", "--list", name]).is_empty()
}

fn rev_parse(dir: &Path, rev: &str) -> String {
    git(dir, &["rev-parse", rev])
}

#[test]
fn a_worktree_tasks_worker_runs_in_its_worktree_and_leaves_the_main_checkout_alone() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  iso:
    command: [AGENT, env, 'write:made-by-worker.txt=hello', check-all]
    plan: [Write a file]
    worktree: true
",
    );
    init_repo(project.path());
    let head_before = rev_parse(project.path(), "HEAD");
    run_ok(&project);
    let root = root(&project);
    let worktree = worktree_dir(&project, "iso");
    let log = project.task_file("iso", "worker.log");
    assert!(
        log.contains(&format!("CWD={}\n", worktree.display())),
        "{log}"
    );
    let plan = root.join(".dispatch/tasks/iso/plan.md");
    assert!(
        log.contains(&format!("DISPATCH_PLAN={}\n", plan.display())),
        "{log}"
    );
    assert!(
        project
            .task_file("iso", "plan.md")
            .contains("- [x] Write a file"),
        "the plan is updated in the main state folder"
    );
    assert!(
        !worktree.join(".dispatch").exists(),
        "no plan in the worktree"
    );
    assert_eq!(
        std::fs::read_to_string(worktree.join("made-by-worker.txt")).expect("in the worktree"),
        "hello\n"
    );
    assert!(!root.join("made-by-worker.txt").exists());
    assert_eq!(git(&root, &["status", "--porcelain"]), "", "main is clean");
    assert_eq!(rev_parse(&root, "HEAD"), head_before);
    assert_eq!(git(&root, &["branch", "--show-current"]), "main");
    assert_eq!(branch_of(&project, "iso")["folder"], "kept-with-changes");
    assert_eq!(
        git(&worktree, &["branch", "--show-current"]),
        "dispatch/iso"
    );
}

#[test]
fn commits_on_the_branch_are_recorded_and_reported_for_review() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  docs:
    command: [AGENT, 'write:README.md=rewritten', 'commit:Rewrite the readme', 'write:notes.txt=hello', 'commit:Add notes', check-all]
    plan: [Edit docs]
    worktree: true
",
    );
    init_repo(project.path());
    let events = run_ok(&project);
    let branch = branch_of(&project, "docs");
    assert_eq!(branch["name"], "dispatch/docs");
    assert_eq!(branch["ahead"], 2, "{branch}");
    let subjects: Vec<&str> = branch["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .map(|c| c["subject"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        subjects,
        ["Add notes", "Rewrite the readme"],
        "newest first"
    );
    assert_eq!(branch["files_changed"], 2, "{branch}");
    assert_eq!(branch["insertions"], 2, "{branch}");
    assert_eq!(branch["deletions"], 1, "{branch}");
    assert_eq!(branch["uncommitted"], 0, "{branch}");
    assert_eq!(
        branch["head"].as_str(),
        Some(rev_parse(project.path(), "dispatch/docs").as_str())
    );
    assert_eq!(
        branch["base_commit"].as_str(),
        Some(rev_parse(project.path(), "main").as_str())
    );

    let run = run_dir(&project, &events);
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("report.json")).expect("report.json"),
    )
    .expect("json");
    let task = report["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["id"] == "docs")
        .expect("docs in report");
    assert_eq!(task["branch"]["name"], "dispatch/docs");
    assert_eq!(task["branch"]["ahead"], 2);
    assert_eq!(task["branch"]["head"], branch["head"]);

    let markdown = std::fs::read_to_string(run.join("report.md")).expect("report.md");
    let section = markdown
        .split("## Branches for review")
        .nth(1)
        .unwrap_or_else(|| panic!("no branches section:\n{markdown}"));
    assert!(
        section.contains("| docs | `dispatch/docs` | 2 |"),
        "{markdown}"
    );

    let output = project.command(&["status"]).output().expect("status runs");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("  branch dispatch/docs: 2 commits, 2 files +2 -1; worktree removed"),
        "{text}"
    );
}

#[test]
fn commit_auto_commits_what_the_worker_left_uncommitted() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  auto:
    title: Write a summary
    command: [AGENT, 'write:summary.txt=done', check-all]
    plan: [Summarise]
    worktree: { commit: auto }
",
    );
    init_repo(project.path());
    run_ok(&project);
    let branch = branch_of(&project, "auto");
    let auto_commit = branch["auto_commit"].as_str().expect("auto_commit set");
    assert_eq!(
        Some(auto_commit),
        branch["head"].as_str(),
        "the auto-commit is the head"
    );
    assert_eq!(branch["uncommitted"], 0, "{branch}");
    assert_eq!(branch["ahead"], 1, "{branch}");
    let subject = branch["commits"][0]["subject"].as_str().unwrap_or_default();
    assert_eq!(
        subject, "dispatch: auto — Write a summary",
        "names the task"
    );
    assert_eq!(branch["folder"], "removed", "nothing left to keep");
    assert_eq!(
        git(project.path(), &["show", "dispatch/auto:summary.txt"]),
        "done"
    );
}

#[test]
fn uncommitted_work_is_counted_and_its_folder_kept() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  dirty:
    command: [AGENT, 'write:one.txt=1', 'write:two.txt=2', check-all]
    plan: [Write files]
    worktree: true
",
    );
    init_repo(project.path());
    run_ok(&project);
    let branch = branch_of(&project, "dirty");
    assert_eq!(branch["uncommitted"], 2, "{branch}");
    assert_eq!(branch["ahead"], 0, "{branch}");
    assert!(branch["auto_commit"].is_null(), "{branch}");
    assert_eq!(branch["folder"], "kept-with-changes", "{branch}");
    assert!(worktree_dir(&project, "dirty").join("one.txt").is_file());
}

#[test]
fn a_clean_worktree_is_removed_by_default_and_its_branch_kept() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  tidy:
    command: [AGENT, 'write:a.txt=a', 'commit:Add a', check-all]
    plan: [Work]
    worktree: true
",
    );
    init_repo(project.path());
    run_ok(&project);
    let branch = branch_of(&project, "tidy");
    assert_eq!(branch["folder"], "removed", "{branch}");
    assert!(!worktree_dir(&project, "tidy").exists());
    assert!(branch_exists(&project, "dispatch/tidy"));
    assert_eq!(
        git(
            project.path(),
            &["log", "-1", "--format=%s", "dispatch/tidy"]
        ),
        "Add a"
    );
    assert_eq!(worktree_list(&project).len(), 1, "only the main checkout");
}

#[test]
fn keep_always_keeps_a_clean_folder() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  kept:
    command: [AGENT, check-all]
    plan: [Nothing to change]
    worktree: { keep: always }
",
    );
    init_repo(project.path());
    run_ok(&project);
    let branch = branch_of(&project, "kept");
    assert_eq!(branch["folder"], "present", "{branch}");
    assert_eq!(branch["uncommitted"], 0, "{branch}");
    assert!(worktree_dir(&project, "kept").join("README.md").is_file());
    assert_eq!(worktree_list(&project).len(), 2);
}

#[test]
fn keep_on_failure_keeps_only_the_folder_of_a_failed_task() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  broken:
    command: [AGENT, 'fail-item:cannot build']
    plan: [Build]
    worktree: { keep: on-failure }
  fine:
    command: [AGENT, check-all]
    plan: [Build]
    worktree: { keep: on-failure }
",
    );
    init_repo(project.path());
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(project.task_json("broken")["status"], "failed");
    assert_eq!(project.task_json("fine")["status"], "complete");
    assert_eq!(branch_of(&project, "broken")["folder"], "present");
    assert!(worktree_dir(&project, "broken").is_dir());
    assert_eq!(branch_of(&project, "fine")["folder"], "removed");
    assert!(!worktree_dir(&project, "fine").exists());
}

#[test]
fn a_stage_starts_from_the_branch_of_the_task_it_needs() {
    let project = Project::new();
    project.manifest(
        r#"version: 1
tasks:
  research:
    command: [AGENT, 'write:findings.txt=found it', 'commit:Record findings', check-all]
    plan: [Research]
    worktree: true
  build:
    needs: research
    command: [AGENT, 'write:build.txt=built', 'commit:Build on findings', check-all]
    plan: [Build]
    worktree: { base: "{{ needs['research'].branch }}" }
"#,
    );
    init_repo(project.path());
    run_ok(&project);
    let research = branch_of(&project, "research");
    let build = branch_of(&project, "build");
    assert_eq!(build["base"], "dispatch/research");
    assert!(research["head"].is_string(), "{research}");
    assert_eq!(build["base_commit"], research["head"], "{build}");
    assert_ne!(
        research["head"].as_str(),
        Some(rev_parse(project.path(), "main").as_str()),
        "research committed something"
    );
    let log = git(project.path(), &["log", "--format=%s", "dispatch/build"]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["Build on findings", "Record findings", "first commit"]
    );
    assert_eq!(
        git(project.path(), &["show", "dispatch/build:findings.txt"]),
        "found it"
    );
    assert_eq!(build["ahead"], 1, "only its own commit is ahead: {build}");
}

#[test]
fn eight_worktree_tasks_run_at_once_each_on_its_own_branch() {
    let project = Project::new();
    let mut manifest = String::from("version: 1\nconcurrency: 8\ntasks:\n");
    // Each worker waits (30 s at most) until all eight have started, so
    // the test proves they run at once without betting on a sleep being
    // longer than making eight worktrees on a busy machine.
    let gate = project.path().join("started");
    std::fs::create_dir_all(&gate).expect("gate folder");
    let gate = gate.display();
    for i in 0..8 {
        manifest.push_str(&format!(
            "  t{i}:\n    command: [sh, -c, 'touch {gate}/t{i}; n=0; while [ $(ls {gate} | wc -l) -lt 8 ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done; exec AGENT \"write:f{i}.txt=task {i}\" \"commit:Task {i}\" check-all']\n    plan: [Work]\n    worktree: true\n"
        ));
    }
    project.manifest(&manifest);
    init_repo(project.path());
    let events = run_ok(&project);
    let started: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["event"] == "task-started")
        .map(|(i, _)| i)
        .collect();
    let first_end = events
        .iter()
        .position(|e| e["event"] == "task-ended")
        .expect("tasks ended");
    assert_eq!(started.len(), 8);
    assert!(
        started.iter().all(|&i| i < first_end),
        "all eight started before any ended"
    );
    let mut heads = std::collections::HashSet::new();
    for i in 0..8 {
        let id = format!("t{i}");
        assert_eq!(project.task_json(&id)["status"], "complete", "{id}");
        let branch = branch_of(&project, &id);
        assert_eq!(branch["name"], format!("dispatch/{id}"));
        assert_eq!(branch["ahead"], 1, "{branch}");
        assert_eq!(branch["commits"][0]["subject"], format!("Task {i}"));
        assert_eq!(branch["folder"], "removed", "{branch}");
        assert_eq!(
            git(
                project.path(),
                &["show", &format!("dispatch/{id}:f{i}.txt")]
            ),
            format!("task {i}")
        );
        heads.insert(branch["head"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(heads.len(), 8, "eight different heads");
    let list = worktree_list(&project);
    assert_eq!(list.len(), 1, "only the main checkout is left: {list:?}");
    assert!(git(project.path(), &["worktree", "prune", "--dry-run", "-v"]).is_empty());
}

// Repositories no worktree can be made from: exit 2 before anything
// launches, pointing at the task's `worktree:`.

const ONE_TASK: &str = "version: 1
tasks:
  solo:
    command: [AGENT, check-all]
    plan: [Work]
    worktree: true
";

/// The run was refused with exit 2 and an error at line 6 (`worktree:`),
/// and no worker ran.
fn assert_refused(project: &Project, output: &Output, events: &[Value], needles: &[&str]) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sweep.yaml:6:15: tasks.solo.worktree:"),
        "points at `worktree:`: {err}"
    );
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in\n{err}");
    }
    assert!(
        !events.iter().any(|e| e["event"] == "task-started"),
        "nothing launched"
    );
    assert!(!worktree_dir(project, "solo").exists());
}

#[test]
fn a_folder_that_is_not_a_git_repository_is_refused() {
    let project = Project::new();
    project.manifest(ONE_TASK);
    let (output, events) = project.run(&[]);
    assert_refused(
        &project,
        &output,
        &events,
        &["is not inside a git repository", "git init"],
    );
    assert!(!project.path().join(".dispatch/tasks/solo").exists());
}

#[test]
fn a_bare_repository_is_refused() {
    let project = Project::new();
    git(project.path(), &["init", "-q", "--bare", "-b", "main"]);
    project.manifest(ONE_TASK);
    let (output, events) = project.run(&[]);
    assert_refused(
        &project,
        &output,
        &events,
        &["is a bare repository", "git clone"],
    );
    assert!(!project.path().join(".dispatch/tasks/solo").exists());
}

/// An unborn HEAD (`git init`, no commit) is refused as such.
fn assert_unborn_head_is_refused(initial_branch: &str) {
    let project = Project::new();
    project.manifest(ONE_TASK);
    git(project.path(), &["init", "-q", "-b", initial_branch]);
    let (output, events) = project.run(&[]);
    assert_refused(
        &project,
        &output,
        &events,
        &["has no commit yet", "git commit --allow-empty"],
    );
    assert!(!project.path().join(".dispatch/tasks/solo").exists());
}

#[test]
fn an_unborn_head_is_refused() {
    assert_unborn_head_is_refused("master");
}

#[test]
fn an_unborn_head_on_main_is_refused() {
    assert_unborn_head_is_refused("main");
}

#[test]
fn a_missing_base_is_refused_with_the_nearest_branch() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  solo:
    command: [AGENT, check-all]
    plan: [Work]
    worktree: { base: mian }
",
    );
    init_repo(project.path());
    let (output, events) = project.run(&[]);
    assert_refused(
        &project,
        &output,
        &events,
        &["the base `mian` is not a commit", "did you mean `main`?"],
    );
    assert!(!branch_exists(&project, "dispatch/solo"));
}

#[test]
fn a_branch_left_by_an_earlier_run_and_checked_out_is_refused() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  solo:
    command: [AGENT, 'write:x.txt=x', 'commit:First run', check-all]
    plan: [Work]
    worktree: true
",
    );
    init_repo(project.path());
    run_ok(&project);
    let tip = rev_parse(project.path(), "dispatch/solo");
    // The user checked the first run's branch out to look at it: a rerun
    // never moves a branch someone has checked out.
    git(project.path(), &["checkout", "-q", "dispatch/solo"]);
    let runs = || {
        std::fs::read_dir(project.path().join(".dispatch/runs"))
            .expect("runs")
            .count()
    };
    assert_eq!(runs(), 1);
    let (output, events) = project.run(&[]);
    assert_refused(
        &project,
        &output,
        &events,
        &[
            "the branch `dispatch/solo` of an earlier run is checked out in the main checkout",
            "check out another branch there",
        ],
    );
    assert_eq!(runs(), 1, "no second run started");
    assert_eq!(rev_parse(project.path(), "dispatch/solo"), tip);
}

#[test]
fn reuse_continues_on_a_branch_left_by_an_earlier_run() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  solo:
    command: [AGENT, 'write:x.txt=x', 'commit:Another pass', check-all]
    plan: [Work]
    worktree: { reuse: true }
",
    );
    init_repo(project.path());
    run_ok(&project);
    let first = branch_of(&project, "solo");
    assert_eq!(first["reused"], false, "{first}");
    let tip = rev_parse(project.path(), "dispatch/solo");
    project.manifest(
        "version: 1
tasks:
  solo:
    command: [AGENT, 'write:x.txt=y', 'commit:Another pass', check-all]
    plan: [Work]
    worktree: { reuse: true }
",
    );
    run_ok(&project);
    let second = branch_of(&project, "solo");
    assert_eq!(second["reused"], true, "{second}");
    assert_eq!(project.task_json("solo")["status"], "complete");
    assert_eq!(
        git(project.path(), &["rev-parse", "dispatch/solo~1"]),
        tip,
        "the second run's commit is on top of the first's"
    );
    assert_eq!(git(project.path(), &["show", "dispatch/solo:x.txt"]), "y");
}

#[test]
fn uncommitted_changes_in_the_main_checkout_warn_and_stay_out_of_the_worktree() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  look:
    command: [AGENT, check-all]
    plan: [Look]
    worktree: { keep: always }
",
    );
    init_repo(project.path());
    std::fs::write(
        project.path().join("README.md"),
        "# edited, not committed\n",
    )
    .expect("edit");
    let events = run_ok(&project);
    let warnings = warnings(&events);
    assert!(
        warnings.iter().any(|w| w.contains("1 uncommitted file")),
        "{warnings:?}"
    );
    assert_eq!(
        std::fs::read_to_string(worktree_dir(&project, "look").join("README.md"))
            .expect("README in the worktree"),
        "# project\n"
    );
    assert_eq!(
        std::fs::read_to_string(project.path().join("README.md")).expect("README"),
        "# edited, not committed\n",
        "the edit stays in the main checkout"
    );
}

#[test]
fn a_detached_head_works_and_warns() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  det:
    command: [AGENT, 'write:d.txt=d', 'commit:On detached', check-all]
    plan: [Work]
    worktree: true
",
    );
    init_repo(project.path());
    let first = rev_parse(project.path(), "HEAD");
    std::fs::write(project.path().join("later.txt"), "later\n").expect("write");
    git(project.path(), &["add", "-A"]);
    git(project.path(), &["commit", "-q", "-m", "later commit"]);
    git(project.path(), &["checkout", "-q", "--detach", &first]);
    let events = run_ok(&project);
    let warnings = warnings(&events);
    assert!(
        warnings.iter().any(|w| w.contains("detached")),
        "{warnings:?}"
    );
    assert!(
        !warnings.iter().any(|w| w.contains("uncommitted")),
        "{warnings:?}"
    );
    let branch = branch_of(&project, "det");
    assert_eq!(branch["base_commit"].as_str(), Some(first.as_str()));
    assert_eq!(branch["ahead"], 1);
    assert_eq!(
        rev_parse(project.path(), "dispatch/det~1"),
        first,
        "the branch starts from the detached commit"
    );
    assert_eq!(rev_parse(project.path(), "HEAD"), first, "HEAD stays put");
}

#[test]
fn a_repository_path_with_spaces_and_non_ascii_characters_works() {
    let project = project_named("my repo é ");
    project.manifest(
        "version: 1
tasks:
  odd:
    command: [AGENT, env, 'write:o.txt=o', 'commit:Odd path', check-all]
    plan: [Work]
    worktree: true
",
    );
    init_repo(project.path());
    run_ok(&project);
    assert!(root(&project).display().to_string().contains("my repo é"));
    let log = project.task_file("odd", "worker.log");
    assert!(
        log.contains(&format!(
            "CWD={}\n",
            worktree_dir(&project, "odd").display()
        )),
        "{log}"
    );
    let branch = branch_of(&project, "odd");
    assert_eq!(branch["ahead"], 1, "{branch}");
    assert_eq!(branch["folder"], "removed", "{branch}");
    assert!(!worktree_dir(&project, "odd").exists());
    assert_eq!(worktree_list(&project).len(), 1);
}

#[test]
fn a_repository_with_a_submodule_works_and_warns() {
    let library = tempfile::tempdir().expect("tempdir");
    init_repo(library.path());
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  sub:
    command: [AGENT, 'write:s.txt=s', 'commit:Beside a submodule', check-all]
    plan: [Work]
    worktree: true
",
    );
    init_repo(project.path());
    let library_path = library.path().display().to_string();
    git(
        project.path(),
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            &library_path,
            "sub",
        ],
    );
    git(project.path(), &["commit", "-q", "-m", "add submodule"]);
    let events = run_ok(&project);
    let warnings = warnings(&events);
    assert!(
        warnings.iter().any(|w| w.contains("submodules")),
        "{warnings:?}"
    );
    assert!(
        !warnings.iter().any(|w| w.contains("uncommitted")),
        "{warnings:?}"
    );
    let branch = branch_of(&project, "sub");
    assert_eq!(project.task_json("sub")["status"], "complete");
    assert_eq!(branch["ahead"], 1, "{branch}");
    assert_eq!(branch["uncommitted"], 0, "{branch}");
    assert_eq!(branch["folder"], "removed", "{branch}");
    assert_eq!(worktree_list(&project).len(), 1);
}

#[test]
fn a_worktree_deleted_while_its_task_runs_is_recorded_missing_and_pruned() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  gone:
    command: [AGENT, 'write:g.txt=g', 'commit:Before deleting', check-all, delete-cwd]
    plan: [Work]
    worktree: true
",
    );
    init_repo(project.path());
    let events = run_ok(&project);
    let branch = branch_of(&project, "gone");
    assert_eq!(branch["folder"], "missing", "{branch}");
    assert_eq!(branch["ahead"], 1, "the branch keeps the commit: {branch}");
    assert!(events.iter().any(|e| e["event"] == "warning"
        && e["task"] == "gone"
        && e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("deleted while the task ran")));
    let list = worktree_list(&project);
    assert_eq!(list.len(), 1, "no stale entry: {list:?}");
    assert!(git(project.path(), &["worktree", "prune", "--dry-run", "-v"]).is_empty());
    assert!(branch_exists(&project, "dispatch/gone"));
}

#[test]
fn a_task_without_worktree_in_the_same_sweep_runs_in_the_project_root() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  isolated:
    command: [AGENT, env, check-all]
    plan: [Work]
    worktree: true
  plain:
    command: [AGENT, env, check-all]
    plan: [Work]
",
    );
    init_repo(project.path());
    run_ok(&project);
    let root = root(&project);
    let plain = project.task_file("plain", "worker.log");
    assert!(
        plain.contains(&format!("CWD={}\n", root.display())),
        "{plain}"
    );
    let isolated = project.task_file("isolated", "worker.log");
    assert!(
        isolated.contains(&format!(
            "CWD={}\n",
            worktree_dir(&project, "isolated").display()
        )),
        "{isolated}"
    );
    assert!(project.task_json("plain")["branch"].is_null());
    assert!(!branch_exists(&project, "dispatch/plain"));
}

#[test]
fn setup_copies_ignored_files_links_folders_and_runs_its_command() {
    let project = Project::new();
    project.manifest(
        "version: 1
defaults:
  worktree:
    setup:
      copy: [.env]
      link: [node_modules]
      run: 'test -f .env && test -f node_modules/lib.js && echo ready > setup-ran.txt'
tasks:
  web:
    command: [AGENT, 'write:app.js=app', check-all]
    plan: [Build]
    worktree: { commit: auto, keep: always }
",
    );
    std::fs::write(project.path().join(".gitignore"), "node_modules/\n.env\n").expect("write");
    init_repo(project.path());
    std::fs::write(project.path().join(".env"), "TOKEN=local\n").expect("write");
    std::fs::create_dir(project.path().join("node_modules")).expect("mkdir");
    std::fs::write(project.path().join("node_modules/lib.js"), "lib").expect("write");
    run_ok(&project);
    let worktree = worktree_dir(&project, "web");
    assert_eq!(
        std::fs::read_to_string(worktree.join(".env")).expect("copied"),
        "TOKEN=local\n"
    );
    let link = std::fs::read_link(worktree.join("node_modules")).expect("a link");
    assert_eq!(link, root(&project).join("node_modules"));
    assert!(
        worktree.join("setup-ran.txt").exists(),
        "the command ran in the worktree"
    );
    // What setup put there is not the worker's work: the link is never
    // committed, the ignored copy never counted.
    let branch = branch_of(&project, "web");
    assert_eq!(branch["uncommitted"], 0, "{branch}");
    let files = git(
        project.path(),
        &["show", "--name-only", "--format=", "dispatch/web"],
    );
    assert!(files.contains("app.js"), "{files}");
    assert!(!files.contains("node_modules"), "{files}");
    assert!(!files.contains(".env"), "{files}");
}

#[test]
fn a_failing_setup_fails_the_task_before_its_worker_starts() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  web:
    command: [AGENT, 'output:the worker ran', check-all]
    plan: [Build]
    worktree:
      setup: { run: 'echo npm ERR! missing lockfile; exit 3' }
",
    );
    init_repo(project.path());
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let record = project.task_json("web");
    assert_eq!(record["status"], "failed");
    let reason = record["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("setup failed"), "{reason}");
    assert!(
        reason.contains("npm ERR! missing lockfile"),
        "the command's output: {reason}"
    );
    assert!(
        project.task_file("web", "output.md").is_empty(),
        "the worker never ran"
    );
    assert!(project.task_file("web", "setup.log").contains("npm ERR!"));
    // Nothing is left to block the next run once the setup is fixed.
    assert!(!worktree_dir(&project, "web").exists());
    assert!(!branch_exists(&project, "dispatch/web"));
}

#[test]
fn setup_paths_outside_the_project_are_refused_before_anything_runs() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  web:
    command: [AGENT, check-all]
    worktree:
      setup: { copy: [../secrets.env] }
",
    );
    init_repo(project.path());
    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("sweep.yaml:6:23"), "{text}");
    assert!(text.contains("not a path inside the project"), "{text}");
}

/// Two sibling tasks that edit the same line, and one that edits another
/// file.
fn conflicting_siblings(project: &Project) -> Vec<Value> {
    project.manifest(
        "version: 1
tasks:
  left:
    command: [AGENT, 'write:README.md=# left', 'commit:Left title', check-all]
    plan: [Edit]
    worktree: true
  right:
    command: [AGENT, 'write:README.md=# right', 'commit:Right title', check-all]
    plan: [Edit]
    worktree: true
  docs:
    command: [AGENT, 'write:docs.md=docs', 'commit:Docs', check-all]
    plan: [Edit]
    worktree: true
",
    );
    init_repo(project.path());
    let (output, events) = project.run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    events
}

#[test]
fn sibling_branches_that_edit_the_same_line_are_reported_as_conflicting() {
    let project = Project::new();
    let events = conflicting_siblings(&project);
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir(&project, &events).join("report.json")).expect("report"),
    )
    .expect("json");
    let readiness = &report["merge_readiness"];
    let conflicts = readiness["conflicts"].as_array().expect("conflicts");
    assert_eq!(conflicts.len(), 1, "{readiness}");
    assert_eq!(conflicts[0]["branch"], "dispatch/left");
    assert_eq!(conflicts[0]["other_branch"], "dispatch/right");
    assert_eq!(conflicts[0]["files"], serde_json::json!(["README.md"]));
    let clean: Vec<bool> = readiness["branches"]
        .as_array()
        .expect("branches")
        .iter()
        .map(|b| b["merge"]["clean"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(
        clean,
        [true, true, true],
        "each merges into main alone: {readiness}"
    );
    let markdown =
        std::fs::read_to_string(run_dir(&project, &events).join("report.md")).expect("report.md");
    assert!(
        markdown.contains("`dispatch/left` and `dispatch/right` **conflict** in README.md"),
        "{markdown}"
    );
    assert!(warnings(&events)
        .iter()
        .any(|w| w.contains("dispatch/left and dispatch/right conflict in README.md")));

    let output = project
        .command(&["merge-check"])
        .output()
        .expect("merge-check");
    assert_eq!(output.status.code(), Some(1), "a conflict fails the check");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("dispatch/docs (docs) into HEAD: merges cleanly"),
        "{text}"
    );
    assert!(
        text.contains("dispatch/left and dispatch/right conflict in README.md"),
        "{text}"
    );

    // Once main takes the left branch, the right one no longer merges.
    git(
        project.path(),
        &["merge", "-q", "--no-edit", "dispatch/left"],
    );
    let output = project
        .command(&["merge-check", "--json"])
        .output()
        .expect("merge-check");
    let now: Value = serde_json::from_slice(&output.stdout).expect("json");
    let right = now["branches"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["branch"] == "dispatch/right"))
        .expect("right")
        .clone();
    assert_eq!(right["merge"]["clean"], false, "{now}");
    assert_eq!(
        right["merge"]["conflicts"],
        serde_json::json!(["README.md"])
    );
}

#[test]
fn clean_removes_what_holds_no_work_and_keeps_the_rest_unless_forced() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  dirty:
    command: [AGENT, 'write:notes.txt=unsaved', check-all]
    plan: [Edit]
    worktree: true
  kept:
    command: [AGENT, check-all]
    plan: [Look]
    worktree: { keep: always }
  work:
    command: [AGENT, 'write:work.txt=w', 'commit:Work', check-all]
    plan: [Edit]
    worktree: true
",
    );
    init_repo(project.path());
    run_ok(&project);
    let (dirty, kept) = (
        worktree_dir(&project, "dirty"),
        worktree_dir(&project, "kept"),
    );
    assert!(dirty.exists() && kept.exists());

    let dry = project
        .command(&["clean", "--dry-run"])
        .output()
        .expect("clean");
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(text.contains("would remove worktree"), "{text}");
    assert!(
        text.contains("kept worktree") && text.contains("1 file with uncommitted changes"),
        "{text}"
    );
    assert!(kept.exists(), "a dry run changes nothing");

    let output = project.command(&["clean"]).output().expect("clean");
    assert_eq!(output.status.code(), Some(0));
    assert!(!kept.exists(), "a clean worktree goes");
    assert!(dirty.join("notes.txt").exists(), "uncommitted work stays");

    let output = project
        .command(&["clean", "--branches"])
        .output()
        .expect("clean");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("deleted branch dispatch/kept"),
        "no commits of its own: {text}"
    );
    assert!(
        text.contains("kept branch dispatch/work: it has commits that are not merged anywhere"),
        "{text}"
    );
    assert!(
        text.contains("kept branch dispatch/dirty: its worktree"),
        "{text}"
    );
    assert!(branch_exists(&project, "dispatch/work"));

    git(
        project.path(),
        &["merge", "-q", "--no-edit", "dispatch/work"],
    );
    let output = project
        .command(&["clean", "--branches"])
        .output()
        .expect("clean");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("deleted branch dispatch/work"),
        "merged now: {text}"
    );

    let output = project
        .command(&["clean", "--worktrees", "--branches", "--force"])
        .output()
        .expect("clean");
    assert_eq!(output.status.code(), Some(0));
    assert!(!dirty.exists());
    assert!(!branch_exists(&project, "dispatch/dirty"));
    assert_eq!(worktree_list(&project).len(), 1, "only the main checkout");
}

#[test]
fn a_killed_run_leaves_worktrees_git_can_list_and_clean_can_remove() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  slow:
    command: [AGENT, 'write:half.txt=half', hang]
    plan: [Work]
    worktree: true
",
    );
    init_repo(project.path());
    let mut child = project
        .command(&["run", "sweep.yaml", "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dispatch starts");
    let half = worktree_dir(&project, "slow").join("half.txt");
    // The worker has done some work, and dispatch has recorded its pid.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !half.exists() || recorded_pid(&project, "slow").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never started, or its pid was never recorded"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill -9 dispatch");
    let _ = child.wait();
    // Its worker outlives it, as after a crash: stop it as a person would.
    let pid = recorded_pid(&project, "slow").expect("pid recorded");
    // The worker's own process group (never `kill -PID` through procps,
    // whose parsing of a negative pid without `--` differs by version).
    let group = i32::try_from(pid).expect("a pid");
    assert!(group > 1, "a worker's pid: {group}");
    // SAFETY: a negative pid signals that process group only.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }

    let listed = git(project.path(), &["worktree", "list", "--porcelain"]);
    assert!(listed.contains(".dispatch/worktrees/slow"), "{listed}");
    assert!(
        !listed.contains("prunable") && !listed.contains("locked"),
        "{listed}"
    );

    let (output, _) = project.run(&[]);
    assert_eq!(output.status.code(), Some(2), "the branch is still there");
    let output = project
        .command(&["clean", "--worktrees", "--branches", "--force"])
        .output()
        .expect("clean");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(worktree_list(&project).len(), 1);
    assert!(!branch_exists(&project, "dispatch/slow"));
    project.manifest(
        "version: 1
tasks:
  slow:
    command: [AGENT, check-all]
    plan: [Work]
    worktree: true
",
    );
    run_ok(&project);
}

#[test]
fn status_warns_when_worktrees_of_earlier_runs_pile_up() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  first:
    command: [AGENT, check-all]
    plan: [Look]
    worktree: { keep: always }
",
    );
    init_repo(project.path());
    run_ok(&project);
    let output = project.command(&["status"]).output().expect("status");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !text.contains("earlier runs"),
        "its own worktree is not old: {text}"
    );
    project.manifest(
        "version: 1
tasks:
  second:
    command: [AGENT, check-all]
    plan: [Look]
",
    );
    run_ok(&project);
    let output = project.command(&["status"]).output().expect("status");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(
            "warning: 1 worktree from earlier runs is still under .dispatch/worktrees, holding"
        ),
        "{text}"
    );
    assert!(text.contains("dispatch clean --dry-run"), "{text}");
}

#[test]
fn a_folder_in_the_worktrees_place_is_refused_and_left_alone() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  solo:
    command: [AGENT, check-all]
    plan: [Work]
    worktree: true
",
    );
    init_repo(project.path());
    let folder = project.path().join(".dispatch/worktrees/solo");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(folder.join("notes.txt"), "someone's notes").expect("write");
    let (output, events) = project.run(&[]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sweep.yaml:6:15: tasks.solo.worktree:"),
        "{err}"
    );
    assert!(err.contains("already exists"), "{err}");
    // Not a worktree, so not an earlier run's: a rerun does not clear it.
    assert!(
        err.contains("move it away, or set `worktree.path`"),
        "says what to do: {err}"
    );
    assert!(!events.iter().any(|e| e["event"] == "task-started"));
    assert_eq!(
        std::fs::read_to_string(folder.join("notes.txt")).expect("kept"),
        "someone's notes"
    );
}

#[test]
fn resume_takes_up_a_worktree_tasks_branch_and_folder() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  long:
    command: [sh, -c, 'if [ -f ../../../resumed ]; then exec AGENT \"write:second.txt=2\" \"commit:Second\" check-all; else exec AGENT \"write:first.txt=1\" \"commit:First\" check hang; fi']
    plan: [First, Second]
    worktree: true
",
    );
    init_repo(project.path());
    let mut child = project
        .command(&["run", "sweep.yaml", "--json", "--grace", "300ms"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dispatch starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !project.task_file("long", "plan.md").contains("- [x] First")
        || recorded_pid(&project, "long").is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never checked an item, or its pid was never recorded"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill -9 dispatch");
    let _ = child.wait();
    let group = i32::try_from(recorded_pid(&project, "long").expect("pid")).expect("a pid");
    assert!(group > 1);
    // SAFETY: a negative pid signals that process group only.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
    std::fs::write(project.path().join("resumed"), "").expect("write");

    let output = project
        .command(&["resume", "--json"])
        .output()
        .expect("resume");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let branch = branch_of(&project, "long");
    assert_eq!(branch["reused"], true, "{branch}");
    let subjects: Vec<&str> = branch["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .filter_map(|c| c["subject"].as_str())
        .collect();
    assert_eq!(
        subjects,
        ["Second", "First"],
        "both attempts' commits, one branch"
    );
    assert_eq!(
        worktree_list(&project).len(),
        1,
        "its folder was removed once clean"
    );
}

#[test]
fn a_worktree_worker_gets_pwd_naming_its_worktree() {
    // CLIs such as opencode take their folder from $PWD rather than from
    // their working directory; a PWD still naming the main checkout sent
    // their edits there.
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  solo:
    command: [/usr/bin/env]     # a binary: a shell would reset PWD itself
    plan: [Work]
    worktree: { keep: always }
",
    );
    init_repo(project.path());
    let (output, _) = project.run(&[]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "the plan is left undone: {}",
        stderr(&output)
    );
    let log = project.task_file("solo", "worker.log");
    let expected = format!("PWD={}", worktree_dir(&project, "solo").display());
    assert!(log.contains(&expected), "{log}");
}

/// The commit dispatch makes for what a worker left uncommitted happens
/// off the event loop; a stage that starts from that branch must still see
/// it.
#[test]
fn a_stage_sees_the_commit_dispatch_made_for_the_task_it_needs() {
    let project = Project::new();
    project.manifest(
        r#"version: 1
tasks:
  research:
    command: [AGENT, 'write:findings.txt=found it', check-all]
    plan: [Research]
    worktree: { commit: auto }
  build:
    needs: research
    command: [AGENT, 'write:build.txt=built', check-all]
    plan: [Build]
    worktree: { base: "{{ needs['research'].branch }}", commit: auto }
"#,
    );
    init_repo(project.path());
    run_ok(&project);
    let research = branch_of(&project, "research");
    assert!(research["auto_commit"].is_string(), "{research}");
    let build = branch_of(&project, "build");
    assert_eq!(build["base_commit"], research["head"], "{build}");
    assert_eq!(
        git(project.path(), &["show", "dispatch/build:findings.txt"]),
        "found it"
    );
}

/// The worker pid dispatch recorded in a task's `task.json`, if it has yet:
/// it can only record it once the worker runs, so on a loaded machine the
/// worker may do its first work before. Read while dispatch may rewrite
/// the file, so a torn read is a miss, not a failure.
fn recorded_pid(project: &Project, id: &str) -> Option<i64> {
    let text = std::fs::read_to_string(
        project
            .path()
            .join(".dispatch/tasks")
            .join(id)
            .join("task.json"),
    )
    .ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["pid"].as_i64()
}
