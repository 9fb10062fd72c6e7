//! The doors into the service: the control socket and D-Bus.
//!
//! Adapters only: they parse, call `Service`, and reply.

mod caller;
pub mod dbus;
pub mod socket;
