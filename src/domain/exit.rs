//! Exit codes, as documented in the README and `--help`, defined once.

/// Every task complete and no escalation.
pub const OK: u8 = 0;
/// A task failed, timed out, was skipped or left items undone.
pub const TASK_FAILED: u8 = 1;
/// Bad usage or an invalid manifest.
pub const USAGE: u8 = 2;
/// An escalation rule fired (a rule may set its own code).
pub const ESCALATED: u8 = 3;
/// A question was left unanswered.
pub const UNANSWERED: u8 = 4;
/// Interrupted (Ctrl-C or SIGTERM).
pub const INTERRUPTED: u8 = 130;
