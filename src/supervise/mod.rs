//! Worker processes: a process group each, pipes drained into a redacted
//! `worker.log`, timeouts and stops (SIGTERM, grace, SIGKILL).

pub mod process;
// Redaction sits in `util` (the manifest redacts error snippets too); it
// stays reachable here, where the worker logs are redacted.
pub use crate::util::redact;
