//! Worker processes: a process group each, pipes drained into a redacted
//! `worker.log`, timeouts and stops (SIGTERM, grace, SIGKILL).

pub mod activity;
pub mod limits;
mod looks;
pub mod process;
pub mod procfs;
pub mod reaper;
mod worker_log;

pub use looks::{look_at_end, Leftovers};
pub use worker_log::problems as log_problems;
