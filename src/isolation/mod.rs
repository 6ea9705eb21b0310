//! Keeping workers apart: a git worktree and branch per task, its setup,
//! the review of what it left, and merge readiness.

pub mod changes;
pub mod env;
pub mod forward;
pub mod merge_check;
pub mod rerun;
pub mod review;
pub mod sandbox;
pub mod setup;
pub mod worktree;
