//! The bottom layer: the types every other layer speaks — where a task
//! stands, what a run exits with, and the checklist format of `plan.md`.
//! Nothing here reads a file or knows a command line.

pub mod checklist;
pub mod exit;
pub mod ids;
pub mod status;
