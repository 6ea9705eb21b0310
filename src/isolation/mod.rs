//! Keeping workers apart: a git worktree and branch per task, its setup,
//! the review of what it left, and merge readiness.

pub mod changes;
pub mod merge_check;
pub mod review;
pub mod setup;
pub mod worktree;
