//! Open files. Each running worker costs dispatch a few descriptors (its
//! output pipes, its log, the prompt's pipe while it is written, the
//! runtime's handle on the child), and the common soft limit of 1024 is
//! spent by a few hundred workers: past it, a launch fails with "Too many
//! open files" and its task fails for a reason that is dispatch's own.
//! So a run first raises its soft limit to the hard limit (which any
//! process may do), and if the concurrency still cannot fit, lowers the
//! concurrency and says so: a task never fails because of dispatch's own
//! descriptors.

/// Descriptors one running worker may hold in dispatch at once (two output
/// pipes, the prompt's pipe, its log, the child's handle, and room for the
/// short-lived ones: a state file being written, a spawn's error pipe).
pub const FDS_PER_WORKER: u64 = 8;
/// Descriptors for dispatch itself: standard streams, the lock, the event
/// log, the folder watch, the runtime, the threads that write task folders.
pub const RESERVED_FDS: u64 = 32;

/// The soft and hard limits on open files.
fn limits() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct that lives on this stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    // rlim_t is u64 here but narrower on some 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    Some((limit.rlim_cur as u64, limit.rlim_max as u64))
}

fn set_soft(soft: u64, hard: u64) -> bool {
    let limit = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit reads one rlimit struct that lives on this stack.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 }
}

/// Raise the soft limit as far as the hard limit allows; returns the soft
/// limit in force after.
pub fn raise() -> Option<u64> {
    let (soft, hard) = limits()?;
    if soft >= hard {
        return Some(soft);
    }
    if set_soft(hard, hard) {
        return Some(hard);
    }
    // macOS refuses a soft limit above OPEN_MAX even under an unlimited
    // hard limit.
    let open_max = 10_240.min(hard);
    if open_max > soft && set_soft(open_max, hard) {
        return Some(open_max);
    }
    Some(soft)
}

/// How many workers fit in `soft` descriptors (at least one).
pub fn workers_that_fit(soft: u64) -> u32 {
    let fit = soft.saturating_sub(RESERVED_FDS) / FDS_PER_WORKER;
    u32::try_from(fit.max(1)).unwrap_or(u32::MAX)
}

/// Raise the limit, then lower `concurrency` if `tasks` workers at once
/// (at most `concurrency`) still cannot fit. Returns the warning to show
/// when it was lowered.
pub fn fit_concurrency(concurrency: &mut u32, tasks: usize) -> Option<String> {
    let soft = raise()?;
    let wanted = (*concurrency as u64).min(tasks as u64);
    let fit = workers_that_fit(soft);
    if wanted <= fit as u64 {
        return None;
    }
    let asked = *concurrency;
    *concurrency = fit;
    Some(format!(
        "concurrency lowered from {asked} to {fit}: the open-files limit is {soft} (`ulimit -n`), and each running worker needs about {FDS_PER_WORKER}; raise the hard limit (`ulimit -Hn`, or LimitNOFILE= under systemd) to run more at once"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_fit_after_dispatchs_own_share() {
        assert_eq!(
            workers_that_fit(1024),
            ((1024 - RESERVED_FDS) / FDS_PER_WORKER) as u32
        );
        assert_eq!(workers_that_fit(64), 4);
        assert_eq!(workers_that_fit(10), 1, "one worker always runs");
    }
}
