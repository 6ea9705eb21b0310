//! Past one machine: a sweep fanned out over the 256 jobs a GitHub Actions
//! matrix holds and merged back, and `weight:` balancing the shards by
//! work rather than by task count.

mod common;

use std::collections::BTreeMap;
use std::process::Output;

use serde_json::Value;

use common::Project;

/// 300 tasks from a data file (more than one per shard), each an instant
/// worker that ticks its item; one fails.
fn wide_sweep(project: &Project) {
    // Data files are the repository's: make the project one, so a `.git`
    // in a folder above the temporary one cannot claim it.
    std::fs::create_dir_all(project.path().join(".git")).expect(".git");
    let values: String = (0..300).map(|i| format!("part-{i:03}\n")).collect();
    std::fs::write(project.path().join("parts.txt"), values).expect("data");
    project.manifest(
        "version: 1
name: wide
concurrency: 4
max_tasks: 300
tasks:
  check:
    matrix:
      part: { lines: parts.txt }
    command: [sh, -c, 'if [ \"{{ matrix.part }}\" = part-123 ]; then exit 1; fi; sed -i \"s/- \\[ \\]/- [x]/\" \"$DISPATCH_PLAN\"; : > \"$DISPATCH_IPC_DIR/.done\"']
    plan: ['Check {{ matrix.part }}']
",
    );
}

/// `dispatch ARGS` in the project folder (`matrix` and `merge` take no
/// `--root`).
fn dispatch(project: &Project, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dispatch"))
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

fn read_json(project: &Project, path: &str) -> Value {
    let text = std::fs::read_to_string(project.path().join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the workflow in docs/sharding.md does: `dispatch matrix --shards
/// 256` lists the jobs, each job runs its shard, one job merges them.
#[test]
fn a_sweep_fans_out_over_256_jobs_and_merges_back() {
    let project = Project::new();
    wide_sweep(&project);
    let output = dispatch(&project, &["matrix", "sweep.yaml", "--shards", "256"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let matrix: Value = serde_json::from_slice(&output.stdout).expect("matrix json");
    let shards: Vec<String> = matrix["shard"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|s| s.as_str().expect("K/N").to_owned())
        .collect();
    assert_eq!(shards.len(), 256, "300 tasks fill every shard");
    // Each job is a fresh checkout of its own, as on GitHub Actions; eight
    // run at once.
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(shard) = shards.get(n) else { break };
                let job = project.path().join(format!("jobs/{n}"));
                std::fs::create_dir_all(job.join(".git")).expect("job folder");
                for file in ["sweep.yaml", "parts.txt"] {
                    std::fs::copy(project.path().join(file), job.join(file)).expect("checkout");
                }
                let report = project.path().join(format!("reports/{n}"));
                let output = std::process::Command::new(env!("CARGO_BIN_EXE_dispatch"))
                    .args([
                        "run",
                        "sweep.yaml",
                        "--quiet",
                        "--shard",
                        shard,
                        "--report-dir",
                    ])
                    .arg(&report)
                    .current_dir(&job)
                    .env("HOME", &job)
                    .env_remove("XDG_CONFIG_HOME")
                    .env_remove("CI")
                    .env_remove("GITHUB_STEP_SUMMARY")
                    .env_remove("GITHUB_ACTIONS")
                    .output()
                    .expect("dispatch runs");
                let code = output.status.code();
                assert!(
                    code == Some(0) || code == Some(1),
                    "shard {shard}: {}",
                    stderr(&output)
                );
            });
        }
    });
    let reports: Vec<String> = (0..shards.len())
        .map(|n| format!("reports/{n}/report.json"))
        .collect();
    let mut args = vec!["merge"];
    args.extend(reports.iter().map(String::as_str));
    args.extend(["--report-dir", "merged"]);
    let output = dispatch(&project, &args);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let merged = read_json(&project, "merged/report.json");
    let statuses = statuses(&merged);
    assert_eq!(statuses.len(), 300);
    assert_eq!(statuses["check-part-123"], "failed");
    assert_eq!(
        statuses.values().filter(|s| *s == "complete").count(),
        299,
        "{statuses:?}"
    );
    assert_eq!(merged["totals"]["tasks"], 300);
}

/// The tasks of each shard, by `dispatch plan --json` and the library's
/// partition of it.
fn shard_loads(manifest: &str, count: u32) -> Vec<(usize, u64)> {
    let loaded =
        dispatch::manifest::parse("sweep.yaml", manifest).unwrap_or_else(|e| panic!("{e}"));
    let plan = dispatch::plan::build(&loaded, &dispatch::plan::PlanOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut loads = vec![(0usize, 0u64); count as usize];
    for (task, shard) in plan
        .tasks
        .iter()
        .zip(dispatch::plan::shard::assign_plan(&plan, count))
    {
        let load = &mut loads[shard as usize - 1];
        load.0 += 1;
        load.1 += u64::from(task.weight);
    }
    loads
}

#[test]
fn weight_balances_shards_by_work() {
    // One long migration and twelve short ones, on three machines.
    let mut manifest = String::from(
        "version: 1\ntasks:\n  big:\n    command: [\"true\"]\n    plan: [x]\n    weight: 12\n",
    );
    for i in 0..12 {
        manifest.push_str(&format!(
            "  small-{i:02}:\n    command: [\"true\"]\n    plan: [x]\n"
        ));
    }
    // 13 tasks, weights 12 + 12 × 1: by weight the big task has a shard
    // to itself and the others split the small ones (6 + 6).
    let loads = shard_loads(&manifest, 3);
    assert_eq!(loads, vec![(1, 12), (6, 6), (6, 6)]);
    // Without weights the count is balanced instead: 5, 4, 4 tasks, and
    // the big task's shard carries 16 of the 24 units of work.
    let unweighted = manifest.replace("    weight: 12\n", "");
    let loads = shard_loads(&unweighted, 3);
    assert_eq!(loads.iter().map(|l| l.0).collect::<Vec<_>>(), vec![5, 4, 4]);
}

/// The Kubernetes example keeps its numbers in step: 100 completions, run
/// some at a time, each running shard INDEX+1 of 100, and a merge that
/// expects 100 reports.
#[test]
fn the_kubernetes_example_runs_and_merges_100_shards() {
    let text = std::fs::read_to_string("manifests/k8s/indexed-job.yaml").expect("example");
    let number_after = |key: &str| -> u32 {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("no `{key}` line"));
        line.trim_start()[key.len()..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("`{line}` has no number"))
    };
    let completions = number_after("completions:");
    let parallelism = number_after("parallelism:");
    assert_eq!(completions, 100);
    assert!(
        parallelism > 1 && parallelism < completions,
        "{parallelism}"
    );
    assert!(text.contains(&format!(
        "shard=$((JOB_COMPLETION_INDEX + 1))/{completions}\n"
    )));
    assert!(text.contains(&format!("if [ \"$found\" -ne {completions} ]; then")));
    assert!(text.contains("dispatch merge /reports/shard-*/report.json"));
}
