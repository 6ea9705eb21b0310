//! Helpers with no knowledge of dispatch: time stamps, fan-out over
//! cores, helper threads that let work gather, escaping of untrusted text
//! for each destination, one shared copy of repeated texts, handing freed
//! memory back, and money and counts as people read them.

pub mod clock;
pub mod escape;
pub mod gather;
pub mod intern;
pub mod memory;
pub mod parallel;
pub mod units;
