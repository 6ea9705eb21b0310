//! Helpers with no knowledge of dispatch: time stamps, fan-out over
//! cores, and escaping of untrusted text for each destination.

pub mod clock;
pub mod escape;
pub mod parallel;
