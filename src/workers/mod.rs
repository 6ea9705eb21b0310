//! Workers: the agent programs a sweep launches. For now, the backends and
//! the models they serve; processes and worktrees join them as the runner
//! lands.

pub mod backends;
