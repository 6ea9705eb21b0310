//! `dispatch` runs a sweep of AI coding-agent tasks described in a YAML
//! manifest.
//!
//! The modules are layers. From the bottom up: [`util`], [`domain`],
//! [`state`], [`manifest`], [`agents`], [`supervise`], [`isolation`],
//! [`ipc`], [`escalation`], [`plan`], [`record`], [`events`], [`report`],
//! [`sweep`], [`cli`]. A module imports only from the layers below it
//! (`tests/architecture.rs` checks this), and nothing imports [`cli`].
//! `docs/architecture.md` draws the data flow.

pub mod agents;
pub mod cli;
pub mod domain;
pub mod escalation;
pub mod events;
pub mod ipc;
pub mod isolation;
pub mod manifest;
pub mod plan;
pub mod record;
pub mod report;
pub mod state;
pub mod supervise;
pub mod sweep;
pub mod util;
