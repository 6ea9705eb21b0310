//! `--shard K/N --durations REPORT.json`: shards balanced by how long each
//! task took in an earlier run's report, the same split on every machine
//! that is given the same file, and every task in exactly one shard.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value};

use common::Project;
use dispatch::plan::balance::Durations;
use dispatch::plan::shard::assign_weighted;

/// A sweep of one slow migration and six quick ones, with a report that
/// says so (in milliseconds).
const SWEEP: &str = "version: 1
tasks:
  migrate:
    matrix: { mod: [auth, billing, cart, docs, email, feed, gate] }
    command: [sh, -c, ': > \"$DISPATCH_IPC_DIR/.done\"']
    plan: [Migrate]
";

fn last_report() -> Value {
    json!({
        "format_version": 1,
        "tasks": [
            { "id": "migrate-auth", "duration_ms": 600_000 },
            { "id": "migrate-billing", "duration_ms": 60_000 },
            { "id": "migrate-cart", "duration_ms": 60_000 },
            { "id": "migrate-docs", "duration_ms": 60_000 },
            { "id": "migrate-email", "duration_ms": 60_000 },
            { "id": "migrate-feed", "duration_ms": 60_000 },
            { "id": "migrate-gate", "duration_ms": null }
        ]
    })
}

fn project_with_report() -> Project {
    let project = Project::new();
    project.manifest(SWEEP);
    std::fs::write(
        project.path().join("durations.json"),
        last_report().to_string(),
    )
    .expect("write the report");
    project
}

/// The task ids `dispatch run --shard K/N --durations … --dry-run --json`
/// would start.
fn dry_run(project: &Project, shard: &str, durations: bool) -> Vec<String> {
    let mut args = vec!["run", "sweep.yaml", "--shard", shard, "--dry-run", "--json"];
    if durations {
        args.extend_from_slice(&["--durations", "durations.json"]);
    }
    let output = project.command(&args).output().expect("dispatch runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: Value = serde_json::from_slice(&output.stdout).expect("a JSON plan");
    let mut ids: Vec<String> = plan["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn the_slow_task_gets_a_shard_of_its_own() {
    let project = project_with_report();
    assert_eq!(dry_run(&project, "1/2", true), ["migrate-auth"]);
    // Gate has no duration: it weighs the median (a minute), like the rest.
    assert_eq!(
        dry_run(&project, "2/2", true),
        [
            "migrate-billing",
            "migrate-cart",
            "migrate-docs",
            "migrate-email",
            "migrate-feed",
            "migrate-gate"
        ]
    );
    // By count, the slow one shares its shard with three others.
    assert_eq!(dry_run(&project, "1/2", false).len(), 4);
}

#[test]
fn matrix_lists_the_shards_the_durations_fill() {
    let project = project_with_report();
    let matrix = |durations: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dispatch"))
            .args([
                "matrix",
                "sweep.yaml",
                "--shards",
                "8",
                "--durations",
                durations,
            ])
            .current_dir(project.path())
            .output()
            .expect("dispatch runs")
    };
    let output = matrix("durations.json");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Value = serde_json::from_slice(&output.stdout).expect("json");
    // Seven tasks: the eighth shard would be empty and is left out.
    assert_eq!(
        listed["shard"],
        json!(["1/8", "2/8", "3/8", "4/8", "5/8", "6/8", "7/8"])
    );
    let output = matrix("missing.json");
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("--durations missing.json"), "{err}");
}

#[test]
fn a_durations_file_that_is_no_report_is_refused_with_what_to_give() {
    let project = project_with_report();
    std::fs::write(project.path().join("bad.json"), "{\"shard\": 1}").expect("write");
    for (file, says) in [
        ("missing.json", "cannot read it"),
        ("bad.json", "not a dispatch report.json"),
    ] {
        let output = project
            .command(&[
                "run",
                "sweep.yaml",
                "--shard",
                "1/2",
                "--durations",
                file,
                "--dry-run",
            ])
            .output()
            .expect("dispatch runs");
        assert_eq!(output.status.code(), Some(2));
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(err.contains(&format!("error: --durations {file}")), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(err.contains("help: give the report.json"), "{err}");
    }
    // Without --shard there is nothing to balance.
    let output = project
        .command(&["run", "sweep.yaml", "--durations", "durations.json"])
        .output()
        .expect("dispatch runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--shard"));
}

/// Unique ids in random order, each with a duration or none, and now and
/// then a need on an earlier task.
fn weighted_tasks() -> impl Strategy<Value = Vec<(String, Option<u64>, Vec<usize>)>> {
    proptest::collection::btree_set("[a-z][a-z0-9]{0,5}", 1..60)
        .prop_map(|ids| ids.into_iter().collect::<Vec<_>>())
        .prop_shuffle()
        .prop_flat_map(|ids| {
            let n = ids.len();
            let extra = proptest::collection::vec(
                (
                    proptest::option::of(0..5_000_000u64),
                    proptest::collection::vec(any::<prop::sample::Index>(), 0..2),
                ),
                n,
            );
            (Just(ids), extra)
        })
        .prop_map(|(ids, extra)| {
            ids.iter()
                .zip(extra)
                .enumerate()
                .map(|(i, (id, (ms, needs)))| {
                    let needs = if i == 0 {
                        Vec::new()
                    } else {
                        needs.iter().map(|pick| pick.index(i)).collect()
                    };
                    (id.clone(), ms, needs)
                })
                .collect()
        })
}

/// Each task's shard, by id, from durations as a report gives them.
fn split(tasks: &[(String, Option<u64>, Vec<usize>)], count: u32) -> BTreeMap<String, u32> {
    let durations = Durations::from_pairs(
        tasks
            .iter()
            .filter_map(|(id, ms, _)| ms.map(|ms| (id.clone(), ms))),
    );
    let weights = durations.weights(tasks.iter().map(|(id, _, _)| (id.as_str(), 1)));
    let needs: Vec<Vec<String>> = tasks
        .iter()
        .map(|(_, _, needs)| needs.iter().map(|i| tasks[*i].0.clone()).collect())
        .collect();
    let list: Vec<(&str, &[String], u64)> = tasks
        .iter()
        .zip(&needs)
        .zip(weights)
        .map(|(((id, _, _), needs), weight)| (id.as_str(), needs.as_slice(), weight))
        .collect();
    let shards = assign_weighted(&list, count);
    tasks
        .iter()
        .map(|(id, _, _)| id.clone())
        .zip(shards)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_task_is_in_exactly_one_shard(tasks in weighted_tasks(), count in 1..=64u32) {
        let shards = split(&tasks, count);
        prop_assert_eq!(shards.len(), tasks.len());
        for shard in shards.values() {
            prop_assert!((1..=count).contains(shard));
        }
        // The K/N selections together: each task once.
        let mut seen = 0;
        for k in 1..=count {
            seen += shards.values().filter(|s| **s == k).count();
        }
        prop_assert_eq!(seen, tasks.len());
    }

    #[test]
    fn every_machine_computes_the_same_split(
        (tasks, shuffled) in weighted_tasks().prop_flat_map(|t| (Just(t.clone()), Just(t).prop_shuffle())),
        count in 1..16u32,
    ) {
        // The shuffled list's needs point at indices of the first order:
        // map them to the same ids.
        let position: BTreeMap<&str, usize> = shuffled
            .iter()
            .enumerate()
            .map(|(i, (id, _, _))| (id.as_str(), i))
            .collect();
        let renumbered: Vec<(String, Option<u64>, Vec<usize>)> = shuffled
            .iter()
            .map(|(id, ms, needs)| {
                let needs = needs.iter().map(|i| position[tasks[*i].0.as_str()]).collect();
                (id.clone(), *ms, needs)
            })
            .collect();
        prop_assert_eq!(split(&tasks, count), split(&renumbered, count));
    }

    #[test]
    fn a_task_shares_a_shard_with_what_it_needs(tasks in weighted_tasks(), count in 1..16u32) {
        let shards = split(&tasks, count);
        for (id, _, needs) in &tasks {
            for need in needs {
                prop_assert_eq!(shards[id], shards[&tasks[*need].0]);
            }
        }
    }
}
