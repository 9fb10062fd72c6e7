//! Upload policies: when upq uploads and how fast, decided by the clock (a rate
//! timetable, upload hours), and later by the network and the battery.
//!
//! Policies decide, the scheduler and the pacer act: a policy is a pure reading of facts
//! (the time, what the system bus says) into "may start", "must pause" and "at most this
//! fast", so each can be tested without a clock or a bus, and the doors only show it.

pub mod timetable;

pub use timetable::Timetable;
