//! A post as stored: one video sent to several destinations, one job each.
//!
//! The record keeps what belongs to the post and to none of its jobs: which jobs it has,
//! whether one failing keeps the others back, and when its release began. Its state is
//! never stored: it is read from its jobs (`upq_proto::PostState::of`), so the two cannot
//! disagree. The release is recorded here, durably, before any job is released, so that a
//! crash in the middle of a release is finished after the restart instead of leaving the
//! post half public.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use upq_proto::{JobView, PostId, PostState, PostView};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Post {
    id: u64,
    file: PathBuf,
    title: Option<String>,
    /// The jobs, in the order their destinations were given.
    jobs: Vec<u64>,
    all_or_nothing: bool,
    created_at: DateTime<Utc>,
    /// Set when the release of every job began.
    released_at: Option<DateTime<Utc>>,
    /// `--delay`: the jobs are held until every one is ready, and released together once
    /// this time has passed too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    release_after: Option<DateTime<Utc>>,
}

impl Post {
    pub fn new(
        id: u64,
        file: PathBuf,
        title: Option<String>,
        jobs: Vec<u64>,
        all_or_nothing: bool,
        release_after: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Post {
        Post {
            id,
            file,
            title,
            jobs,
            all_or_nothing,
            created_at: now,
            released_at: None,
            release_after,
        }
    }

    pub fn release_after(&self) -> Option<DateTime<Utc>> {
        self.release_after
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn jobs(&self) -> &[u64] {
        &self.jobs
    }

    pub fn all_or_nothing(&self) -> bool {
        self.all_or_nothing
    }

    pub fn released_at(&self) -> Option<DateTime<Utc>> {
        self.released_at
    }

    /// Records that the release began (once; a later call keeps the first time).
    pub fn release(&mut self, now: DateTime<Utc>) {
        self.released_at.get_or_insert(now);
    }

    /// The post as clients see it, with the views of its jobs.
    pub fn view(&self, jobs: Vec<JobView>) -> PostView {
        let states: Vec<_> = jobs.iter().map(|job| job.state).collect();
        PostView {
            id: PostId(self.id),
            state: PostState::of(&states),
            file: self.file.to_string_lossy().into_owned(),
            title: self.title.clone(),
            all_or_nothing: self.all_or_nothing,
            released_at: self.released_at,
            release_after: self.release_after,
            created_at: self.created_at,
            jobs,
        }
    }
}
