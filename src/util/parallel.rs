//! Work split over the machine's cores, for the few steps of a large sweep
//! that are many independent pieces and that no worker can start before
//! (rendering the plans, writing the task folders): on one thread they are
//! tens of milliseconds of a thousand-task run's start.

/// Below this many items, the work stays on the calling thread: starting
/// threads would cost more than it saves.
pub const MIN_ITEMS: usize = 64;

/// At most this many threads.
const MAX_THREADS: usize = 4;

/// `work` on consecutive chunks of `items`, one chunk per core (up to
/// four), its results in the order of the chunks. A panic in a chunk is
/// raised here.
pub fn map_chunks<T, R, F>(items: &[T], work: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&[T]) -> R + Sync,
{
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS));
    if threads < 2 || items.len() < MIN_ITEMS {
        return vec![work(items)];
    }
    let chunk = items.len().div_ceil(threads);
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || work(part)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_the_order_of_the_items() {
        for len in [0, 1, MIN_ITEMS - 1, MIN_ITEMS, 1000] {
            let items: Vec<usize> = (0..len).collect();
            let doubled: Vec<usize> = map_chunks(&items, |part| {
                part.iter().map(|i| i * 2).collect::<Vec<_>>()
            })
            .into_iter()
            .flatten()
            .collect();
            assert_eq!(
                doubled,
                items.iter().map(|i| i * 2).collect::<Vec<_>>(),
                "{len} items"
            );
        }
    }

    #[test]
    #[should_panic(expected = "chunk failed")]
    fn a_panic_in_a_chunk_is_raised_to_the_caller() {
        let items: Vec<usize> = (0..1000).collect();
        map_chunks(&items, |part| {
            if part.contains(&999) {
                panic!("chunk failed");
            }
        });
    }
}
