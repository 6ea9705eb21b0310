//! Handing memory the process freed back to the system.
//!
//! glibc keeps what a thread frees in that thread's arena, for that thread
//! to reuse. A wide run's plan is built on several threads and its reports
//! on the runner's: the planned tasks freed before the reports stay
//! resident in the planning threads' arenas while the reports grow the
//! runner's, so the two add up in the run's peak (at 50,000 tasks, about
//! 34 MiB). Trimming after such a hand-over returns those pages first.

/// Return freed memory to the system where the allocator keeps it (glibc);
/// elsewhere nothing is kept that way and this does nothing.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions: it only walks the
    // allocator's own free lists under the allocator's locks, and any
    // thread may call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs of more tasks than this hand freed memory back at their two
/// hand-overs; smaller ones keep it. Their peak is a few tens of MiB, and
/// a trim, which walks every arena, costs about a millisecond at a
/// thousand tasks, right before the first worker and after the last.
pub const WIDE_RUN: usize = 10_000;

/// [`release_freed`] for a run of `tasks` tasks: only a wide one.
pub fn release_freed_in_run(tasks: usize) {
    if tasks > WIDE_RUN {
        release_freed();
    }
}
