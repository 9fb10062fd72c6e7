//! The doors into the service: the control socket (D-Bus joins it later).
//!
//! Adapters only: they parse, call `Service`, and reply.

pub mod socket;
