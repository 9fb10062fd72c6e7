//! One object a post (`dev.upq.upq1.Post`): its id, state, jobs and title, and the actions
//! on all of its jobs at once. Checks the caller on every call; the mirror keeps the
//! properties current as its jobs change.

use upq_proto::dbus::job_path;
use upq_proto::{BatchItem, PostId, PostView, Selection};
use zbus::interface;
use zbus::message::Header;
use zbus::OwnedObjectPath;

use crate::ipc::caller::Gate;
use crate::service::{Service, ServiceError};

use super::BusError;

/// What a post object shows: the post's view without its jobs' details.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PostSummary {
    pub id: PostId,
    pub state: String,
    pub title: String,
    pub jobs: Vec<u64>,
}

impl From<&PostView> for PostSummary {
    fn from(view: &PostView) -> Self {
        PostSummary {
            id: view.id,
            state: view.state.to_string(),
            title: view.title.clone().unwrap_or_default(),
            jobs: view.jobs.iter().map(|job| job.id).collect(),
        }
    }
}

pub(super) struct PostObject {
    pub(super) service: Service,
    pub(super) gate: Gate,
    pub(super) summary: PostSummary,
}

/// A post's batch answer as one result: fine when every job went along, else the refusals,
/// one a line (the jobs that could go along did).
fn all_or_refusals(items: Vec<BatchItem>) -> Result<(), BusError> {
    let refusals: Vec<(upq_proto::ErrorCode, String)> = items
        .into_iter()
        .filter_map(|item| item.error.map(|e| (e.code, e.message)))
        .collect();
    match refusals.first() {
        None => Ok(()),
        Some((code, _)) => {
            let message = refusals
                .iter()
                .map(|(_, message)| message.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            Err(ServiceError::new(*code, message).into())
        }
    }
}

#[interface(interface = "dev.upq.upq1.Post")]
impl PostObject {
    /// `p12`.
    #[zbus(property)]
    async fn id(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.summary.id.to_string())
    }

    /// Read from its jobs: queued, uploading, paused, held, publishing, published, partial,
    /// failed or canceled.
    #[zbus(property)]
    async fn state(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.summary.state.clone())
    }

    /// The job objects, in the order the destinations were given.
    #[zbus(property)]
    async fn jobs(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> Result<Vec<OwnedObjectPath>, BusError> {
        self.gate.check(header.as_ref()).await?;
        self.summary
            .jobs
            .iter()
            .map(|&id| {
                OwnedObjectPath::try_from(job_path(id)).map_err(|e| BusError::Failed(e.to_string()))
            })
            .collect()
    }

    #[zbus(property)]
    async fn title(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.summary.title.clone())
    }

    async fn pause(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        let ids = self.service.expand(&[], &[self.summary.id])?;
        all_or_refusals(
            self.service
                .pause(Selection {
                    ids,
                    posts: Vec::new(),
                    all: false,
                    now: false,
                })
                .await?,
        )
    }

    async fn resume(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        let ids = self.service.expand(&[], &[self.summary.id])?;
        all_or_refusals(
            self.service
                .resume(Selection {
                    ids,
                    posts: Vec::new(),
                    all: false,
                    now: false,
                })
                .await?,
        )
    }

    /// Cancels every job that still can be; the error names those it is too late for.
    async fn cancel(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        let ids = self.service.expand(&[], &[self.summary.id])?;
        all_or_refusals(self.service.cancel(ids).await?)
    }

    /// Releases every job at once, as `upqctl publish pN`.
    async fn publish(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        all_or_refusals(
            self.service
                .publish_targets(&[], &[self.summary.id])
                .await?,
        )
    }
}
