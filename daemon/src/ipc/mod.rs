//! The doors into the service: the control socket, D-Bus and the desk (web).
//!
//! Adapters only: they parse, call `Service`, and reply.

mod caller;
pub mod dbus;
pub mod socket;
pub mod web;
