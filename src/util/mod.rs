//! Helpers with no knowledge of dispatch: time stamps, fan-out over
//! cores, helper threads that let work gather and take no signals,
//! escaping of untrusted text for each destination, one shared copy of
//! repeated texts, handing freed memory back, this process's id, and money
//! and counts as people read them.

pub mod clock;
pub mod escape;
pub mod gather;
pub mod intern;
pub mod memory;
pub mod parallel;
pub mod thread;
pub mod units;

/// This process's id. glibc asks the kernel at every `getpid` (it stopped
/// caching it), and a sweep asked three times per task: for each temporary
/// file's name and for each look for strays.
pub fn own_pid() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}
