//! The bottom layer: the types every other layer speaks — where a task
//! stands, what a run exits with, the checklist format of `plan.md`, and
//! what counts as a secret and how it is masked. Nothing here reads a file
//! or knows a command line.

pub mod checklist;
pub mod exit;
pub mod redact;
pub mod status;
