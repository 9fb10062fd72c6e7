//! The flat job record of schema 1 and 2, read once to upgrade a database.
//!
//! That layout could hold combinations the current one cannot: a retry time outside
//! `retrying`, a commit mark or location without a remote session, bytes sent with
//! nothing at the destination. Each is mapped to what it meant, and nothing is dropped
//! that a user could see except those impossible parts.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use upq_proto::{JobError, JobState, Metadata};

use super::{Commit, Failures, Fingerprint, Job, Remote, RemoteSession, Review, Status};

#[derive(Deserialize)]
pub(super) struct FlatJob {
    id: u64,
    file: PathBuf,
    destination: String,
    metadata: Metadata,
    fingerprint: Fingerprint,
    state: JobState,
    bytes_sent: u64,
    bytes_transferred: u64,
    attempts: u32,
    #[serde(default)]
    stalls: u32,
    last_error: Option<JobError>,
    next_attempt_at: Option<DateTime<Utc>>,
    publish_at: Option<DateTime<Utc>>,
    hold: bool,
    priority: i32,
    remote: Option<RemoteSession>,
    location: Option<String>,
    content_hash: Option<String>,
    committed: bool,
    warning: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    history_len: u64,
}

impl From<FlatJob> for Job {
    fn from(flat: FlatJob) -> Job {
        let mut status = Status::entering(flat.state, flat.updated_at);
        if let (Status::Retrying { next_attempt_at }, Some(at)) =
            (&mut status, flat.next_attempt_at)
        {
            *next_attempt_at = at;
        }
        let mut last_error = flat.last_error;
        // A job past its commit point with no session left cannot be followed to its end:
        // the worker would fail it for that. Say why now, and let the user decide.
        if flat.committed && flat.remote.is_none() && !flat.state.is_terminal() {
            status = Status::Failed;
            last_error = Some(JobError {
                kind: "internal".into(),
                message: "its record lost the upload it had committed; check the destination \
                          before retrying"
                    .into(),
            });
        }
        let remote = flat.remote.map(|session| Remote {
            session,
            bytes_sent: flat.bytes_sent,
            content_hash: flat.content_hash,
            commit: flat.committed.then_some(Commit {
                location: flat.location,
                note: None,
            }),
        });
        Job {
            id: flat.id,
            file: flat.file,
            destination: flat.destination,
            metadata: flat.metadata,
            fingerprint: flat.fingerprint,
            priority: flat.priority,
            status,
            review: Review {
                hold: flat.hold,
                publish_at: flat.publish_at,
            },
            remote,
            bytes_transferred: flat.bytes_transferred,
            failures: Failures {
                attempts: flat.attempts,
                stalls: flat.stalls,
                last_error,
            },
            warning: flat.warning,
            created_at: flat.created_at,
            updated_at: flat.updated_at,
            history_len: flat.history_len,
            ignore_policies: false,
            post: None,
        }
    }
}
