//! `dispatch` runs a sweep of AI coding-agent tasks described in a YAML
//! manifest.
//!
//! The modules follow the data: [`manifest`] (parse, schema, validate) →
//! [`plan`] (templates, expansion) → [`schedule`] → [`workers`] (backends,
//! processes, event streams) → [`monitor`] (plans, folder events) and
//! [`ipc`] (questions, findings) → [`escalation`] → [`run`] (the driver, its
//! records and what the terminal shows), with [`state`] for the
//! `.dispatch/` folder and the command line in [`cli`].

pub mod cli;
pub mod clock;
pub mod diagnostic;
pub mod escalation;
pub mod fsutil;
pub mod ids;
pub mod ipc;
pub mod manifest;
pub mod monitor;
pub mod parallel;
pub mod plan;
pub mod report;
pub mod run;
pub mod schedule;
pub mod shard;
pub mod state;
pub mod workers;
