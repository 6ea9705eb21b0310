//! Sharding a sweep over several machines: the partition (property tests
//! over random task graphs), `dispatch matrix`, and `dispatch merge` of the
//! shards' reports compared with one unsharded run of the same sweep.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Output};

use proptest::prelude::*;
use serde_json::Value;

use common::Project;
use dispatch::plan::shard::{assign, MAX_SHARDS};

type Tasks = Vec<(String, Vec<String>)>;

/// A random acyclic task graph: unique ids in random order, each task
/// needing up to three tasks before it, and now and then an id that is no
/// task at all.
fn task_graph() -> impl Strategy<Value = Tasks> {
    proptest::collection::btree_set("[a-z][a-z0-9-]{0,5}", 1..48)
        .prop_map(|ids| ids.into_iter().collect::<Vec<_>>())
        .prop_shuffle()
        .prop_flat_map(|ids| {
            let n = ids.len();
            let needs = proptest::collection::vec(
                proptest::collection::vec((any::<prop::sample::Index>(), 0..12u8), 0..4),
                n,
            );
            (Just(ids), needs)
        })
        .prop_map(|(ids, needs)| {
            ids.iter()
                .enumerate()
                .map(|(i, id)| {
                    let mut wanted: Vec<String> = Vec::new();
                    for (pick, kind) in &needs[i] {
                        let need = if *kind == 0 {
                            format!("{id}-unknown")
                        } else if i == 0 {
                            continue;
                        } else {
                            ids[pick.index(i)].clone()
                        };
                        if !wanted.contains(&need) {
                            wanted.push(need);
                        }
                    }
                    (id.clone(), wanted)
                })
                .collect()
        })
}

/// Independent tasks: unique ids, no needs.
fn singletons() -> impl Strategy<Value = Tasks> {
    proptest::collection::btree_set("[a-z0-9]{1,6}", 0..64)
        .prop_map(|ids| {
            ids.into_iter()
                .map(|id| (id, Vec::new()))
                .collect::<Tasks>()
        })
        .prop_shuffle()
}

fn by_id(tasks: &Tasks, shards: &[u32]) -> BTreeMap<String, u32> {
    tasks
        .iter()
        .zip(shards)
        .map(|((id, _), shard)| (id.clone(), *shard))
        .collect()
}

/// Everything `id` needs, directly or not (among known tasks).
fn closure<'a>(tasks: &'a Tasks, id: &'a str) -> HashSet<&'a str> {
    let needs: HashMap<&str, &Vec<String>> = tasks
        .iter()
        .map(|(id, needs)| (id.as_str(), needs))
        .collect();
    let mut seen = HashSet::new();
    let mut todo = vec![id];
    while let Some(at) = todo.pop() {
        for need in needs.get(at).into_iter().flat_map(|n| n.iter()) {
            if needs.contains_key(need.as_str()) && seen.insert(need.as_str()) {
                todo.push(need);
            }
        }
    }
    seen
}

fn loads(shards: &[u32], count: u32) -> Vec<usize> {
    (1..=count)
        .map(|k| shards.iter().filter(|s| **s == k).count())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_task_gets_exactly_one_shard_in_range(tasks in task_graph(), count in 1..=MAX_SHARDS) {
        let shards = assign(&tasks, count);
        prop_assert_eq!(shards.len(), tasks.len());
        for shard in &shards {
            prop_assert!((1..=count).contains(shard), "shard {} of {}", shard, count);
        }
    }

    #[test]
    fn a_task_and_all_it_needs_share_a_shard(tasks in task_graph(), count in 1..12u32) {
        let shards = by_id(&tasks, &assign(&tasks, count));
        for (id, _) in &tasks {
            for need in closure(&tasks, id) {
                prop_assert_eq!(shards[id], shards[need], "{} needs {}", id, need);
            }
        }
    }

    #[test]
    fn the_order_of_the_tasks_does_not_change_the_partition(
        (tasks, shuffled) in task_graph().prop_flat_map(|t| (Just(t.clone()), Just(t).prop_shuffle())),
        count in 1..12u32,
    ) {
        let one = by_id(&tasks, &assign(&tasks, count));
        let other = by_id(&shuffled, &assign(&shuffled, count));
        prop_assert_eq!(one, other);
    }

    #[test]
    fn independent_tasks_are_balanced(tasks in singletons(), count in 1..20u32) {
        let loads = loads(&assign(&tasks, count), count);
        let (max, min) = (loads.iter().max().copied(), loads.iter().min().copied());
        prop_assert!(max.unwrap_or(0) - min.unwrap_or(0) <= 1, "{:?}", loads);
    }

    #[test]
    fn loads_differ_by_at_most_the_largest_component(tasks in task_graph(), count in 1..12u32) {
        // Components go largest first to the lightest shard, so no shard
        // ends more than one component ahead of another.
        let largest = largest_component(&tasks);
        let loads = loads(&assign(&tasks, count), count);
        let (max, min) = (loads.iter().max().copied(), loads.iter().min().copied());
        prop_assert!(max.unwrap_or(0) - min.unwrap_or(0) <= largest, "{:?}, largest {}", loads, largest);
    }
}

/// The size of the largest connected component of the needs graph.
fn largest_component(tasks: &Tasks) -> usize {
    let known: HashSet<&str> = tasks.iter().map(|(id, _)| id.as_str()).collect();
    let mut edges: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, needs) in tasks {
        for need in needs.iter().filter(|n| known.contains(n.as_str())) {
            edges.entry(id).or_default().push(need);
            edges.entry(need).or_default().push(id);
        }
    }
    let mut seen: HashSet<&str> = HashSet::new();
    let mut largest = 0;
    for (id, _) in tasks {
        if !seen.insert(id) {
            continue;
        }
        let mut size = 1;
        let mut todo = vec![id.as_str()];
        while let Some(at) = todo.pop() {
            for next in edges.get(at).into_iter().flatten() {
                if seen.insert(next) {
                    size += 1;
                    todo.push(next);
                }
            }
        }
        largest = largest.max(size);
    }
    largest
}

// ---------------------------------------------------------------------
// The command line, with the scripted test agent.

/// Ten tasks: two chains (`build` → `package`; `fetch` → `parse`, which
/// fails, → `index`, skipped for it) and five independent tasks, one with
/// a finding. Five shards get 3, 2, 2, 2 and 1 tasks.
const SWEEP: &str = "version: 1
name: sharded
concurrency: 3
tasks:
  build:
    command: [AGENT, check-all, done]
    plan: [Build it]
  package:
    needs: build
    command: [AGENT, check-all, done]
    plan: [Package it]
  fetch:
    command: [AGENT, check-all, done]
    plan: [Fetch it]
  parse:
    needs: fetch
    command: [AGENT, 'fail-item:boom']
    plan: [Parse it]
  index:
    needs: parse
    command: [AGENT, check-all, done]
    plan: [Index it]
  lint:
    command: [AGENT, check-all, done]
    plan: [Lint it]
  docs:
    command: [AGENT, 'finding:medium:a stale page', check-all, done]
    plan: [Read the docs]
  audit:
    command: [AGENT, check-all, done]
    plan: [Audit it]
  bench:
    command: [AGENT, check, check, done]
    plan: [Run the benchmarks, Write them down]
  spell:
    command: [AGENT, check-all, done]
    plan: [Check the spelling]
";

/// `dispatch ARGS` in the project folder (no `--root`: `matrix` and
/// `merge` read no state).
fn dispatch(project: &Project, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dispatch"))
        .args(args)
        .current_dir(project.path())
        .env("HOME", project.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("dispatch runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Task id → status.
fn statuses(report: &Value) -> BTreeMap<String, String> {
    report["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| {
            (
                t["id"].as_str().expect("id").to_owned(),
                t["status"].as_str().expect("status").to_owned(),
            )
        })
        .collect()
}

/// A JSON object as a map, whatever the order of its keys.
fn counts(value: &Value) -> BTreeMap<String, u64> {
    value
        .as_object()
        .expect("an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("a count")))
        .collect()
}

fn plan_ids(project: &Project) -> Vec<String> {
    let output = dispatch(project, &["plan", "sweep.yaml", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).expect("plan json");
    plan["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect()
}

/// The unsharded run's report and exit code.
fn run_unsharded(project: &Project) -> (Value, i32) {
    let (output, _) = project.run(&["--report-dir", "full"]);
    let code = output.status.code().expect("exit code");
    (read_json(&project.path().join("full/report.json")), code)
}

#[test]
fn matrix_lists_the_non_empty_shards_or_every_task() {
    let project = Project::new();
    project.manifest(SWEEP);
    let output = dispatch(&project, &["matrix", "sweep.yaml", "--shards", "5"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        text.lines().count(),
        1,
        "one line for $GITHUB_OUTPUT: {text}"
    );
    let matrix: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        matrix,
        serde_json::json!({ "shard": ["1/5", "2/5", "3/5", "4/5", "5/5"] })
    );

    // Two chains and five single tasks are seven components: shards 8 to
    // 12 would be empty and are left out.
    let output = dispatch(&project, &["matrix", "sweep.yaml", "--shards", "12"]);
    let matrix: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let listed = matrix["shard"].as_array().expect("shards").len();
    assert_eq!(listed, 7, "{matrix}");

    let output = dispatch(&project, &["matrix", "sweep.yaml"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let matrix: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let tasks: Vec<String> = matrix["task"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t.as_str().expect("id").to_owned())
        .collect();
    assert_eq!(tasks, plan_ids(&project), "every task, in schedule order");
    assert_eq!(tasks.len(), 10);
}

#[test]
fn matrix_refuses_a_bad_manifest_or_count() {
    let project = Project::new();
    project.manifest("version: 1\ntasks:\n  a:\n    model: sonet\n");
    let output = dispatch(&project, &["matrix", "sweep.yaml", "--shards", "2"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("sonet"), "{}", stderr(&output));
    project.manifest(SWEEP);
    for bad in ["0", "257", "two"] {
        let output = dispatch(&project, &["matrix", "sweep.yaml", "--shards", bad]);
        assert_eq!(output.status.code(), Some(2), "--shards {bad}");
    }
}

#[test]
fn merge_of_one_report_is_that_run() {
    let project = Project::new();
    project.manifest(SWEEP);
    let (full, code) = run_unsharded(&project);
    assert_eq!(code, 1, "parse fails, index is skipped");
    assert_eq!(full["tasks"].as_array().expect("tasks").len(), 10);

    let output = dispatch(
        &project,
        &["merge", "full/report.json", "--report-dir", "out"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(output.stdout.is_empty(), "files were asked for");
    assert!(
        stderr(&output).contains("merged 1 report of sweep sharded: 10 tasks"),
        "{}",
        stderr(&output)
    );
    let merged = read_json(&project.path().join("out/report.json"));
    assert_eq!(statuses(&merged), statuses(&full));
    assert_eq!(merged["totals"], full["totals"]);
    assert_eq!(merged["status"], "failed");
    assert_eq!(merged["exit_code"], 1);
    let run_id = full["run_id"].as_str().expect("run id");
    assert_eq!(merged["run_id"], format!("merged:{run_id}"));
    for file in ["report.md", "junit.xml"] {
        assert!(project.path().join("out").join(file).is_file(), "{file}");
    }

    // No place for files: the Markdown report on stdout; a folder stands
    // for its report.json; --junit alone writes only the JUnit file.
    let output = dispatch(&project, &["merge", "full"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let markdown = String::from_utf8_lossy(&output.stdout);
    assert!(markdown.contains("# Sweep sharded"), "{markdown}");
    let output = dispatch(&project, &["merge", "full", "--junit", "j/merged.xml"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let junit = std::fs::read_to_string(project.path().join("j/merged.xml")).expect("junit");
    assert!(junit.contains("<testsuite name=\"parse\""), "{junit}");
}

#[test]
fn merge_refuses_what_it_cannot_combine_naming_the_files() {
    let project = Project::new();
    project.manifest(SWEEP);
    run_unsharded(&project);

    let output = dispatch(&project, &["merge", "full/report.json", "full/report.json"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("is in both full/report.json and full/report.json")
            && err.contains("the shards overlap"),
        "{err}"
    );

    let mut other = read_json(&project.path().join("full/report.json"));
    other["name"] = Value::String("another".to_owned());
    other["tasks"] = Value::Array(Vec::new());
    std::fs::write(project.path().join("other.json"), other.to_string()).expect("write");
    let output = dispatch(&project, &["merge", "full/report.json", "other.json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(
            "other.json is of sweep `another`, but full/report.json is of sweep `sharded`"
        ),
        "{}",
        stderr(&output)
    );

    std::fs::write(project.path().join("broken.json"), "{ not json").expect("write");
    let output = dispatch(&project, &["merge", "full/report.json", "broken.json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("broken.json is not a dispatch report"),
        "{}",
        stderr(&output)
    );

    let output = dispatch(&project, &["merge", "missing.json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("cannot read missing.json"),
        "{}",
        stderr(&output)
    );

    let output = dispatch(&project, &["merge"]);
    assert_eq!(output.status.code(), Some(2), "a report is required");
}

#[test]
fn five_shards_merged_equal_one_unsharded_run() {
    let project = Project::new();
    let manifest = project.manifest(SWEEP);
    let (full, full_code) = run_unsharded(&project);
    assert_eq!(full_code, 1);

    // What the library says each shard holds.
    let loaded = dispatch::manifest::parse(
        "sweep.yaml",
        &std::fs::read_to_string(&manifest).expect("read"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let plan = dispatch::plan::build(&loaded, &dispatch::plan::PlanOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));

    let mut reports = Vec::new();
    for k in 1..=5u32 {
        let shard = format!("{k}/5");
        let dir = format!("shard-{k}");
        let (output, _) = project.run(&["--shard", &shard, "--report-dir", &dir]);
        let report_path = format!("{dir}/report.json");
        let report = read_json(&project.path().join(&report_path));
        let selected = dispatch::plan::shard::select(
            &plan,
            &dispatch::plan::shard::Shard { index: k, count: 5 },
            None,
        );
        let mut expected: Vec<&str> = plan
            .tasks
            .iter()
            .zip(selected)
            .filter(|(_, s)| *s)
            .map(|(t, _)| t.id.as_str())
            .collect();
        expected.sort_unstable();
        let ran: Vec<String> = statuses(&report).into_keys().collect();
        assert_eq!(ran, expected, "shard {shard}");
        assert_eq!(
            output.status.code(),
            report["exit_code"].as_i64().map(|c| c as i32),
            "shard {shard}: {}",
            stderr(&output)
        );
        reports.push(report_path);
    }

    // Leaving a shard's report out is refused, not merged as a whole sweep.
    let mut short = vec!["merge"];
    short.extend(reports[1..].iter().map(String::as_str));
    let output = dispatch(&project, &short);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("the report of shard 1/5 is missing"),
        "{}",
        stderr(&output)
    );

    let mut args = vec!["merge"];
    args.extend(reports.iter().map(String::as_str));
    args.extend(["--report-dir", "out"]);
    let output = dispatch(&project, &args);
    assert_eq!(output.status.code(), Some(full_code), "{}", stderr(&output));
    let merged = read_json(&project.path().join("out/report.json"));
    assert_eq!(statuses(&merged), statuses(&full));
    assert_eq!(statuses(&merged)["index"], "skipped");
    assert_eq!(statuses(&merged)["parse"], "failed");
    assert_eq!(merged["totals"]["tasks"], full["totals"]["tasks"]);
    assert_eq!(
        counts(&merged["totals"]["statuses"]),
        counts(&full["totals"]["statuses"])
    );
    assert_eq!(
        counts(&merged["totals"]["findings"]),
        counts(&full["totals"]["findings"])
    );
    assert_eq!(merged["status"], full["status"]);
    assert_eq!(merged["exit_code"], full["exit_code"]);
    assert!(
        merged["run_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("merged:") && id.matches('+').count() == 4),
        "{}",
        merged["run_id"]
    );
    let junit = std::fs::read_to_string(project.path().join("out/junit.xml")).expect("junit");
    assert_eq!(junit.matches("<testsuite ").count(), 10, "{junit}");
}

#[test]
fn an_empty_shard_runs_nothing_and_succeeds() {
    let project = Project::new();
    project.manifest(
        "version: 1\ntasks:\n  only:\n    command: [AGENT, check-all]\n    plan: [Work]\n",
    );
    let out = project.path().join("empty-shard");
    let (output, events) =
        project.run(&["--shard", "2/3", "--report-dir", &out.display().to_string()]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!events.iter().any(|e| e["event"] == "task-started"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("report"))
            .expect("json");
    assert_eq!(report["tasks"].as_array().map(Vec::len), Some(0));
}

/// A shard whose `dispatch` was killed never concludes; `dispatch report`
/// reports it as interrupted, and `merge` must read it as one: exit 130,
/// not a complete sweep nor a refusal. (Its status was once a sentence
/// that `merge` compared against "interrupted" and never matched.)
#[test]
fn a_merged_report_of_a_killed_shard_is_interrupted() {
    let project = Project::new();
    project.manifest(
        "version: 1
tasks:
  quick:
    command: [AGENT, check-all, done]
    plan: [Do it]
  slow:
    command: [AGENT, check, hang]
    plan: [Start, Finish]
",
    );
    let mut child = project
        .command(&[
            "run",
            "sweep.yaml",
            "--json",
            "--shard",
            "1/1",
            "--grace",
            "300ms",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dispatch starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // The worker can check its item before the runner has recorded its pid.
    while !project.task_file("slow", "plan.md").contains("- [x] Start")
        || project.task_json("slow")["pid"].as_i64().is_none()
    {
        assert!(std::time::Instant::now() < deadline, "slow never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill -9 dispatch");
    let _ = child.wait();
    let pid = project.task_json("slow")["pid"].as_i64().expect("pid");
    // SAFETY: a negative pid signals that process group only: the worker
    // the killed run left.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
    }

    let report = project
        .command(&["report", "--format", "json"])
        .output()
        .expect("report runs");
    assert!(report.status.success(), "{}", stderr(&report));
    std::fs::create_dir_all(project.path().join("shard")).expect("folder");
    std::fs::write(project.path().join("shard/report.json"), &report.stdout).expect("write");
    let shard = read_json(&project.path().join("shard/report.json"));
    assert_eq!(shard["status"], "interrupted", "{shard}");
    assert_eq!(shard["exit_code"], 130, "{shard}");

    let output = dispatch(
        &project,
        &["merge", "shard/report.json", "--report-dir", "out"],
    );
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    let merged = read_json(&project.path().join("out/report.json"));
    assert_eq!(merged["status"], "interrupted");
    assert_eq!(merged["exit_code"], 130);
}
