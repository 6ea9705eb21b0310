//! The order tasks start in: a task waits for everything it `needs`; among
//! tasks that are ready, higher priority goes first, then the order of the
//! manifest. The same manifest always gives the same order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What the scheduler needs to know of a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Indexes (into the same slice) of the tasks this one waits for.
    pub needs: Vec<usize>,
    /// Higher starts first.
    pub rank: i64,
}

/// A task's place in the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Index into the slice given to [`order`].
    pub index: usize,
    /// 1 for tasks that need nothing, else one more than the latest stage
    /// among what it needs.
    pub stage: usize,
}

/// Order `items`, or return a dependency cycle as indexes in `needs` order
/// (each needs the next), starting at the lowest index and repeating it at
/// the end, so `a → b → a` reads as "a needs b, which needs a".
pub fn order(items: &[Item]) -> Result<Vec<Slot>, Vec<usize>> {
    let mut waiting: Vec<usize> = items.iter().map(|i| i.needs.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); items.len()];
    for (index, item) in items.iter().enumerate() {
        for &need in &item.needs {
            dependents[need].push(index);
        }
    }
    let mut ready: BinaryHeap<(i64, Reverse<usize>)> = items
        .iter()
        .enumerate()
        .filter(|(i, _)| waiting[*i] == 0)
        .map(|(i, item)| (item.rank, Reverse(i)))
        .collect();
    let mut stage = vec![0usize; items.len()];
    let mut out = Vec::with_capacity(items.len());
    while let Some((_, Reverse(index))) = ready.pop() {
        stage[index] = 1 + items[index]
            .needs
            .iter()
            .map(|&n| stage[n])
            .max()
            .unwrap_or(0);
        out.push(Slot {
            index,
            stage: stage[index],
        });
        for &dependent in &dependents[index] {
            waiting[dependent] -= 1;
            if waiting[dependent] == 0 {
                ready.push((items[dependent].rank, Reverse(dependent)));
            }
        }
    }
    if out.len() == items.len() {
        Ok(out)
    } else {
        Err(find_cycle(items, &waiting))
    }
}

/// Walk `needs` from a task that never became ready until a task repeats.
fn find_cycle(items: &[Item], waiting: &[usize]) -> Vec<usize> {
    let Some(start) = waiting.iter().position(|&w| w > 0) else {
        return Vec::new();
    };
    let mut path = vec![start];
    let mut current = start;
    loop {
        let Some(&next) = items[current].needs.iter().find(|&&n| waiting[n] > 0) else {
            return path;
        };
        if let Some(at) = path.iter().position(|&p| p == next) {
            let mut cycle = path.split_off(at);
            // Start at the task written first, so the message is stable.
            let first = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
            cycle.rotate_left(first);
            cycle.push(cycle[0]);
            return cycle;
        }
        path.push(next);
        current = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(needs: &[usize], rank: i64) -> Item {
        Item {
            needs: needs.to_vec(),
            rank,
        }
    }

    #[test]
    fn dependencies_first_then_priority_then_manifest_order() {
        let items = [item(&[], 10), item(&[], 30), item(&[0], 99), item(&[], 10)];
        let slots = order(&items).expect("no cycle");
        let indexes: Vec<usize> = slots.iter().map(|s| s.index).collect();
        assert_eq!(indexes, vec![1, 0, 2, 3]);
        assert_eq!(slots[2].stage, 2);
    }

    #[test]
    fn names_the_cycle() {
        let items = [
            item(&[], 0),
            item(&[2], 0),
            item(&[3], 0),
            item(&[1], 0),
            item(&[3], 0),
        ];
        let cycle = order(&items).expect_err("cycle");
        assert_eq!(cycle, vec![1, 2, 3, 1]);
    }

    proptest! {
        /// Random DAGs (edges only to earlier tasks): every task appears once,
        /// after everything it needs.
        #[test]
        fn orders_any_dag(edges in proptest::collection::vec((0usize..30, 0usize..30), 0..60), ranks in proptest::collection::vec(-5i64..5, 30)) {
            let mut items: Vec<Item> = ranks.iter().map(|&r| item(&[], r)).collect();
            for (a, b) in edges {
                if a > b && !items[a].needs.contains(&b) {
                    items[a].needs.push(b);
                }
            }
            let slots = order(&items).expect("a DAG has no cycle");
            let mut position = vec![usize::MAX; items.len()];
            for (p, slot) in slots.iter().enumerate() {
                prop_assert_eq!(position[slot.index], usize::MAX);
                position[slot.index] = p;
            }
            for (i, it) in items.iter().enumerate() {
                for &n in &it.needs {
                    prop_assert!(position[n] < position[i]);
                }
            }
        }
    }
}
