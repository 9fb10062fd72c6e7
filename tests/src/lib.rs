//! Harness for upq's end-to-end tests: real `upqd` and `upqctl` binaries in temp dirs.
//!
//! Starts and stops only the daemons it spawned (by PID); never touches the user's own dirs.

pub mod bins;
pub mod bus;
pub mod chaos;
pub mod client;
pub mod daemon;
pub mod desk;
pub mod env;
pub mod events;
pub mod files;
pub mod fixture;
pub mod form;
pub mod http;
pub mod jobs;
pub mod keyring;
pub mod mount;
pub mod notifications;
pub mod pkce;
pub mod proxy;
pub mod serve;
pub mod shim;
pub mod signin;
pub mod system;
pub mod tiktok;
pub mod tus;
pub mod vclock;
pub mod video;
pub mod wait;
pub mod youtube;

pub use client::Client;
pub use daemon::Daemon;
pub use env::{OutputExt, TestEnv};
pub use events::EventLog;
pub use files::{hash_file, SourceFile};
pub use fixture::{TusKeys, TusRig, TusRun};
pub use jobs::{describe_history, history_to, jobs_of_post, post_job_ids, resume_offsets};
pub use proxy::Proxy;
pub use shim::{Edit, Rule, Shim};
pub use tus::{tus_config, TusServer};
pub use upq_proto::{JobState, JobView};
pub use wait::{holds_for, wait_for, wait_until};

/// One mebibyte, for sizes in tests.
pub const MIB: u64 = 1024 * 1024;
