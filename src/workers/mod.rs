//! Workers: the agent programs a sweep launches, the models they serve, and
//! the supervision of their processes.

pub mod backends;
pub mod doctor;
pub mod events;
pub mod process;
pub mod redact;
pub mod setup;
pub mod worktree;
