//! Helpers with no knowledge of dispatch: time stamps and fan-out over
//! cores.

pub mod clock;
pub mod parallel;
