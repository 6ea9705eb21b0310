//! `dispatch` runs a sweep of AI coding-agent tasks described in a YAML
//! manifest.
//!
//! The modules follow the data: [`manifest`] (parse, schema, validate) →
//! [`plan`] (templates, expansion) → [`schedule`] → [`workers`] (backends) →
//! the command line in [`cli`].

pub mod cli;
pub mod diagnostic;
pub mod fsutil;
pub mod manifest;
pub mod plan;
pub mod schedule;
pub mod workers;
