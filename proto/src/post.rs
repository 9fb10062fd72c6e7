//! Posts: one video sent to several destinations, one job each, reviewed and released
//! together.
//!
//! A post has no state of its own on record: its state is read from its jobs' states, so it
//! can never disagree with them. Post ids are written `p12` so that they never clash with job
//! ids in commands.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::ids::PostId;
use crate::job::{JobState, JobView, Metadata};

/// Where a post is, read from its jobs. Lower case on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PostState {
    /// Every job not yet ended waits for an upload slot or its start time.
    Queued,
    /// A job is sending bytes, or waits to try again.
    Uploading,
    /// Every job not yet ended is paused (or paused and held).
    Paused,
    /// Every job not yet ended is uploaded and held for the release.
    Held,
    /// A job is past its commit point and the platform is processing or publishing it.
    Publishing,
    /// Every job is published.
    Published,
    /// Every job ended: some were published, others failed or were canceled.
    Partial,
    /// Every job ended, none was published, and one failed.
    Failed,
    /// Every job was canceled: the post is a draft.
    Canceled,
}

impl PostState {
    pub const ALL: [PostState; 9] = [
        PostState::Queued,
        PostState::Uploading,
        PostState::Paused,
        PostState::Held,
        PostState::Publishing,
        PostState::Published,
        PostState::Partial,
        PostState::Failed,
        PostState::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PostState::Queued => "queued",
            PostState::Uploading => "uploading",
            PostState::Paused => "paused",
            PostState::Held => "held",
            PostState::Publishing => "publishing",
            PostState::Published => "published",
            PostState::Partial => "partial",
            PostState::Failed => "failed",
            PostState::Canceled => "canceled",
        }
    }

    /// True once every job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            PostState::Published | PostState::Partial | PostState::Failed | PostState::Canceled
        )
    }

    /// The state of a post whose jobs are in `states`. Jobs still under way decide it,
    /// the most active first; once all have ended, what they ended as.
    pub fn of(states: &[JobState]) -> PostState {
        use JobState::*;
        let live: Vec<JobState> = states
            .iter()
            .copied()
            .filter(|s| !s.is_terminal())
            .collect();
        let any = |wanted: &[JobState]| live.iter().any(|s| wanted.contains(s));
        if live.is_empty() {
            let published = states.iter().filter(|&&s| s == Published).count();
            return if published == states.len() && !states.is_empty() {
                PostState::Published
            } else if published > 0 {
                PostState::Partial
            } else if states.contains(&Failed) {
                PostState::Failed
            } else {
                PostState::Canceled
            };
        }
        if live.iter().all(|&s| s == Queued) {
            PostState::Queued
        } else if any(&[Queued, Uploading, Retrying]) {
            PostState::Uploading
        } else if any(&[Processing, Publishing]) {
            PostState::Publishing
        } else if any(&[Paused]) {
            PostState::Paused
        } else {
            PostState::Held
        }
    }
}

impl std::str::FromStr for PostState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PostState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown post state '{s}'"))
    }
}

impl fmt::Display for PostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A post as clients see it: its jobs in the order their destinations were given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostView {
    pub id: PostId,
    pub state: PostState,
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A member that fails before the release keeps the others from being released.
    #[serde(default)]
    pub all_or_nothing: bool,
    /// When the release of every member began, once it has.
    #[serde(default)]
    pub released_at: Option<DateTime<Utc>>,
    /// `--delay`: the members are released together once all are ready and this time passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_after: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub jobs: Vec<JobView>,
}

/// What differs for one destination of a post: set fields replace the shared ones, `extra`
/// keys are added to (or replace) the shared ones.
pub type Overrides = BTreeMap<String, Metadata>;

/// The metadata a post's job for one destination gets: the shared metadata with that
/// destination's overrides laid over it.
pub fn metadata_for(shared: &Metadata, overrides: Option<&Metadata>) -> Metadata {
    let mut metadata = shared.clone();
    if let Some(over) = overrides {
        if over.title.is_some() {
            metadata.title = over.title.clone();
        }
        if over.caption.is_some() {
            metadata.caption = over.caption.clone();
        }
        if over.privacy.is_some() {
            metadata.privacy = over.privacy.clone();
        }
        metadata
            .extra
            .extend(over.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    #[test]
    fn post_ids_are_written_with_a_p() {
        assert_eq!(PostId(12).to_string(), "p12");
        assert_eq!("p12".parse::<PostId>(), Ok(PostId(12)));
        for bad in ["12", "p", "p0", "p-1", "q3", "p1x"] {
            assert!(bad.parse::<PostId>().is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&PostId(3)).unwrap(), "\"p3\"");
        assert_eq!(serde_json::from_str::<PostId>("\"p3\"").unwrap(), PostId(3));
    }

    #[test]
    fn a_post_s_state_follows_its_jobs() {
        let cases: &[(&[JobState], PostState)] = &[
            (&[Queued, Queued], PostState::Queued),
            (&[Uploading, Held], PostState::Uploading),
            (&[Queued, Held], PostState::Uploading),
            (&[Retrying, Published], PostState::Uploading),
            (&[Held, Held, Held], PostState::Held),
            (&[Held, Canceled], PostState::Held),
            (&[Paused, Held], PostState::Paused),
            (&[Processing, Held], PostState::Publishing),
            (&[Published, Publishing], PostState::Publishing),
            (&[Published, Published], PostState::Published),
            (&[Published, Failed], PostState::Partial),
            (&[Published, Canceled], PostState::Partial),
            (&[Failed, Canceled], PostState::Failed),
            (&[Canceled, Canceled], PostState::Canceled),
        ];
        for (states, expected) in cases {
            assert_eq!(PostState::of(states), *expected, "{states:?}");
        }
    }

    #[test]
    fn overrides_lay_over_the_shared_metadata() {
        let shared = Metadata {
            title: Some("Trip".into()),
            caption: Some("A day out".into()),
            privacy: None,
            extra: [("tags".to_string(), "sea".to_string())].into(),
        };
        let over = Metadata {
            caption: Some("#sea #trip".into()),
            extra: [("made_for_kids".to_string(), "false".to_string())].into(),
            ..Metadata::default()
        };
        let merged = metadata_for(&shared, Some(&over));
        assert_eq!(merged.title.as_deref(), Some("Trip"));
        assert_eq!(merged.caption.as_deref(), Some("#sea #trip"));
        assert_eq!(merged.extra.len(), 2);
        assert_eq!(metadata_for(&shared, None), shared);
    }
}
