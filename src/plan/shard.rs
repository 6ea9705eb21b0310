//! Sharding a sweep over several machines: `dispatch run --shard K/N` runs
//! one part of the tasks, `dispatch matrix` lists the parts for a CI
//! matrix, and `dispatch merge` puts the parts' reports back together.
//!
//! The partition keeps a task with everything it `needs` (so no shard waits
//! on a task another shard runs, and a failure skips the same tasks as it
//! would on one machine), and depends only on the task ids and their
//! `needs`, never on the order of the manifest: every job of a CI matrix
//! computes the same partition on its own. See docs/sharding.md.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use crate::plan::balance::Durations;
use crate::plan::SweepPlan;

/// The most shards a sweep can be split into (a GitHub Actions matrix holds
/// at most 256 jobs).
pub const MAX_SHARDS: u32 = 256;

/// One part of a sweep: shard `index` of `count`, numbered from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    /// Which shard, from 1 to `count`.
    pub index: u32,
    /// How many shards the sweep is split into.
    pub count: u32,
}

/// Which shard a run was, recorded in its `run.json` and report so that
/// `dispatch merge` can tell when a shard's report is missing.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct ShardInfo {
    /// This shard's number, from 1.
    pub index: u32,
    /// How many shards the sweep was split into.
    pub count: u32,
    /// The shards that have tasks (the ones a complete merge needs).
    pub with_tasks: Vec<u32>,
}

impl ShardInfo {
    /// The record of running `shard` of `plan` (the whole plan, before
    /// selection), balanced by `durations` when given.
    pub fn of(plan: &SweepPlan, shard: &Shard, durations: Option<&Durations>) -> ShardInfo {
        let mut with_tasks = assign_plan_with(plan, shard.count, durations);
        with_tasks.sort_unstable();
        with_tasks.dedup();
        ShardInfo {
            index: shard.index,
            count: shard.count,
            with_tasks,
        }
    }
}

/// Why a `K/N` does not name a shard.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("`{0}` is not a shard: write K/N, e.g. `2/5` for the second of five shards")]
    Form(String),
    #[error("`{0}` is not a shard: K and N in K/N are whole numbers, e.g. `2/5`")]
    NotNumbers(String),
    #[error("`{0}` is not a shard: a sweep is split into 1 to {MAX_SHARDS} shards")]
    Count(String),
    #[error("shard `{text}` does not exist: shards are numbered from 1 to {count}")]
    Index { text: String, count: u32 },
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let (k, n) = trimmed
            .split_once('/')
            .ok_or_else(|| ShardError::Form(text.to_owned()))?;
        let number = |part: &str| -> Result<u32, ShardError> {
            let part = part.trim();
            if part.is_empty() || !part.chars().all(|c| c.is_ascii_digit()) {
                return Err(ShardError::NotNumbers(text.to_owned()));
            }
            // All digits, so only an overflow fails: far above any limit.
            Ok(part.parse().unwrap_or(u32::MAX))
        };
        let (index, count) = (number(k)?, number(n)?);
        if count == 0 || count > MAX_SHARDS {
            return Err(ShardError::Count(text.to_owned()));
        }
        if index == 0 || index > count {
            return Err(ShardError::Index {
                text: trimmed.to_owned(),
                count,
            });
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard (1-based) of each task, given as `(id, needs)`, when the sweep
/// is split into `count` shards (0 counts as 1).
///
/// Tasks joined by `needs` (in either direction, transitively) form a
/// component, and a component is never split; needs that name no task are
/// ignored. Components go, largest first (ties: the one with the smallest
/// id first), each to the shard with the fewest tasks so far (ties: the
/// lowest shard number). So the result depends only on the ids and their
/// needs, not on the order of `tasks`, and shard loads differ by at most
/// the size of the largest component (by at most one task when no task
/// needs another). A shard may be empty when there are fewer components
/// than shards.
pub fn assign(tasks: &[(String, Vec<String>)], count: u32) -> Vec<u32> {
    let weighted: Vec<(&str, &[String], u64)> = tasks
        .iter()
        .map(|(id, needs)| (id.as_str(), needs.as_slice(), 1))
        .collect();
    assign_weighted(&weighted, count)
}

/// [`assign`] with a weight per task (`weight:`, the expected cost): a
/// component weighs the sum of its tasks, components go heaviest first
/// (ties: smallest id) to the shard with the least weight so far (ties:
/// the lowest number). Still only ids, needs and weights decide, so every
/// CI job computes the same partition; with every weight 1 it is
/// [`assign`]'s.
pub fn assign_weighted(tasks: &[(&str, &[String], u64)], count: u32) -> Vec<u32> {
    let count = count.max(1) as usize;
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(tasks.len());
    let mut parent: Vec<usize> = (0..tasks.len()).collect();
    for (i, &(id, _, _)) in tasks.iter().enumerate() {
        // A repeated id is the same task: join the two entries.
        if let Some(&first) = index.get(id) {
            union(&mut parent, i, first);
        } else {
            index.insert(id, i);
        }
    }
    for (i, &(_, needs, _)) in tasks.iter().enumerate() {
        for need in needs {
            if let Some(&j) = index.get(need.as_str()) {
                union(&mut parent, i, j);
            }
        }
    }
    // Each component: its weight, its smallest id, its members.
    let mut components: HashMap<usize, (u64, &str, Vec<usize>)> = HashMap::new();
    for (i, &(id, _, weight)) in tasks.iter().enumerate() {
        let root = find(&mut parent, i);
        let entry = components
            .entry(root)
            .or_insert_with(|| (0, id, Vec::new()));
        entry.0 = entry.0.saturating_add(weight);
        if id < entry.1 {
            entry.1 = id;
        }
        entry.2.push(i);
    }
    let mut components: Vec<(u64, &str, Vec<usize>)> = components.into_values().collect();
    components.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut loads = vec![0u64; count];
    let mut shards = vec![0u32; tasks.len()];
    for (size, _, members) in components {
        let lightest = loads
            .iter()
            .enumerate()
            .min_by_key(|&(shard, load)| (*load, shard))
            .map_or(0, |(shard, _)| shard);
        loads[lightest] = loads[lightest].saturating_add(size);
        for member in members {
            shards[member] = lightest as u32 + 1;
        }
    }
    shards
}

/// The representative of `i`'s set, compressing the path on the way.
fn find(parent: &mut [usize], i: usize) -> usize {
    let mut root = i;
    while parent[root] != root {
        root = parent[root];
    }
    let mut at = i;
    while parent[at] != root {
        let next = parent[at];
        parent[at] = root;
        at = next;
    }
    root
}

fn union(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        // The smaller index is the root: any choice would do, this one is
        // fixed.
        let (low, high) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[high] = low;
    }
}

/// The shard of each task of a plan (in plan order) for `count` shards.
pub fn assign_plan(plan: &SweepPlan, count: u32) -> Vec<u32> {
    let tasks: Vec<(&str, &[String], u64)> = plan
        .tasks
        .iter()
        .map(|t| {
            (
                t.id.as_str(),
                t.needs.as_slice(),
                u64::from(t.weight.max(1)),
            )
        })
        .collect();
    assign_weighted(&tasks, count)
}

/// [`assign_plan`], each task weighing its duration in `durations` (see
/// [`Durations::weights`]) when given, else its `weight:`.
pub fn assign_plan_with(plan: &SweepPlan, count: u32, durations: Option<&Durations>) -> Vec<u32> {
    let Some(durations) = durations else {
        return assign_plan(plan, count);
    };
    let weights = durations.plan_weights(plan);
    let tasks: Vec<(&str, &[String], u64)> = plan
        .tasks
        .iter()
        .zip(weights)
        .map(|(t, weight)| (t.id.as_str(), t.needs.as_slice(), weight))
        .collect();
    assign_weighted(&tasks, count)
}

/// Which tasks of the plan (in plan order) are in `shard`, balanced by
/// `durations` when given.
pub fn select(plan: &SweepPlan, shard: &Shard, durations: Option<&Durations>) -> Vec<bool> {
    assign_plan_with(plan, shard.count, durations)
        .into_iter()
        .map(|s| s == shard.index)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(spec: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        spec.iter()
            .map(|(id, needs)| {
                (
                    (*id).to_owned(),
                    needs.iter().map(|n| (*n).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn parses_and_prints_k_of_n() {
        let shard: Shard = "2/5".parse().expect("valid");
        assert_eq!(shard, Shard { index: 2, count: 5 });
        assert_eq!(shard.to_string(), "2/5");
        assert_eq!(" 1/1 ".parse::<Shard>(), Ok(Shard { index: 1, count: 1 }));
        assert_eq!(
            "256/256".parse::<Shard>(),
            Ok(Shard {
                index: 256,
                count: 256
            })
        );
    }

    #[test]
    fn refuses_what_is_not_a_shard_and_says_why() {
        let message = |text: &str| text.parse::<Shard>().expect_err("not a shard").to_string();
        assert_eq!(
            message("0/3"),
            "shard `0/3` does not exist: shards are numbered from 1 to 3"
        );
        assert_eq!(
            message("4/3"),
            "shard `4/3` does not exist: shards are numbered from 1 to 3"
        );
        assert_eq!(
            message("a/b"),
            "`a/b` is not a shard: K and N in K/N are whole numbers, e.g. `2/5`"
        );
        assert_eq!(
            message("3"),
            "`3` is not a shard: write K/N, e.g. `2/5` for the second of five shards"
        );
        assert!(message("1/0").contains("1 to 256 shards"));
        assert!(message("1/257").contains("1 to 256 shards"));
        assert!(message("-1/3").contains("whole numbers"));
        assert!(message("1/3/4").contains("whole numbers"));
        assert!(message("99999999999/3").contains("numbered from 1 to 3"));
    }

    #[test]
    fn a_task_stays_with_what_it_needs() {
        let list = tasks(&[
            ("deploy", &["build"]),
            ("build", &[]),
            ("lint", &[]),
            ("docs", &["missing"]),
            ("test", &["build"]),
        ]);
        let shards = assign(&list, 3);
        // {build, deploy, test} is the largest component: shard 1; then
        // docs and lint, smallest id first.
        assert_eq!(shards, vec![1, 1, 3, 2, 1]);
    }

    #[test]
    fn the_order_of_the_manifest_does_not_matter() {
        let list = tasks(&[
            ("a", &[]),
            ("b", &["a"]),
            ("c", &[]),
            ("d", &[]),
            ("e", &[]),
        ]);
        let shards = assign(&list, 2);
        let mut reversed = list.clone();
        reversed.reverse();
        let mut again = assign(&reversed, 2);
        again.reverse();
        assert_eq!(shards, again);
        // {a, b} on 1; c on 2; d on 2 (loads 2, 1 → 2); e on 1 (2, 2 → 1).
        assert_eq!(shards, vec![1, 1, 2, 2, 1]);
    }

    #[test]
    fn independent_tasks_are_dealt_round_robin_by_id() {
        let list = tasks(&[("e", &[]), ("a", &[]), ("d", &[]), ("b", &[]), ("c", &[])]);
        assert_eq!(assign(&list, 2), vec![1, 1, 2, 2, 1]);
        assert_eq!(assign(&list, 1), vec![1; 5]);
        assert_eq!(assign(&list, 0), vec![1; 5]);
        // More shards than tasks: the last ones stay empty.
        assert_eq!(assign(&list, 8), vec![5, 1, 4, 2, 3]);
        assert!(assign(&[], 3).is_empty());
    }

    #[test]
    fn weights_balance_the_work_not_the_count() {
        let none: Vec<String> = Vec::new();
        let needs_a = vec!["a".to_owned()];
        // One heavy task and six light ones: by count 4 + 3, by weight the
        // heavy task has a shard to itself.
        let list: Vec<(&str, &[String], u64)> = vec![
            ("a", &none, 10),
            ("b", &none, 1),
            ("c", &none, 1),
            ("d", &none, 1),
            ("e", &none, 1),
            ("f", &none, 1),
            ("g", &none, 1),
        ];
        assert_eq!(assign_weighted(&list, 2), vec![1, 2, 2, 2, 2, 2, 2]);
        // A component weighs the sum of its tasks.
        let list: Vec<(&str, &[String], u64)> = vec![
            ("a", &none, 3),
            ("b", &needs_a, 3),
            ("c", &none, 5),
            ("d", &none, 1),
        ];
        assert_eq!(assign_weighted(&list, 2), vec![1, 1, 2, 2]);
        // Every weight 1 is the count's partition.
        let list = tasks(&[("e", &[]), ("a", &[]), ("d", &[]), ("b", &[]), ("c", &[])]);
        let ones: Vec<(&str, &[String], u64)> = list
            .iter()
            .map(|(id, n)| (id.as_str(), n.as_slice(), 1))
            .collect();
        assert_eq!(assign_weighted(&ones, 2), assign(&list, 2));
    }

    #[test]
    fn a_repeated_id_is_one_task() {
        let list = tasks(&[("a", &[]), ("b", &[]), ("a", &[])]);
        let shards = assign(&list, 2);
        assert_eq!(shards[0], shards[2]);
        assert_ne!(shards[0], shards[1]);
    }

    #[test]
    fn selects_the_tasks_of_a_plan() {
        let loaded = crate::manifest::parse(
            "sweep.yaml",
            "version: 1
tasks:
  research:
    model: sonnet
  implement:
    model: sonnet
    needs: research
  audit:
    model: haiku
    matrix: { module: [auth, billing, search] }
    title: Audit {{ matrix.module }}
",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let plan = crate::plan::build(&loaded, &crate::plan::PlanOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<&str> = plan.tasks.iter().map(|t| t.id.as_str()).collect();
        let chosen = |index| {
            let selected = select(&plan, &Shard { index, count: 2 }, None);
            let mut picked: Vec<&str> = ids
                .iter()
                .zip(selected)
                .filter(|(_, s)| *s)
                .map(|(id, _)| *id)
                .collect();
            picked.sort_unstable();
            picked
        };
        let (one, two) = (chosen(1), chosen(2));
        assert_eq!(one.len() + two.len(), ids.len(), "{one:?} {two:?}");
        assert!(one.contains(&"research") && one.contains(&"implement"));
        assert_eq!(one.len(), 3, "{one:?}");
        assert_eq!(two.len(), 2, "{two:?}");
    }
}
