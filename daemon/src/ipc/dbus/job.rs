//! One object a job (`dev.upq.upq1.Job`): its properties and the actions on that one job.
//! Checks the caller on every call; the mirror keeps the properties current.

use upq_proto::{JobView, Selection};
use zbus::interface;
use zbus::message::Header;

use crate::ipc::caller::Gate;
use crate::service::Service;

use super::convert::single;
use super::BusError;

pub(super) struct JobObject {
    pub(super) service: Service,
    pub(super) gate: Gate,
    pub(super) view: JobView,
}

#[interface(interface = "dev.upq.upq1.Job")]
impl JobObject {
    #[zbus(property)]
    async fn id(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<u64, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.id)
    }

    #[zbus(property)]
    async fn file(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.file.clone())
    }

    #[zbus(property)]
    async fn destination(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.destination.clone())
    }

    #[zbus(property)]
    async fn state(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.state.to_string())
    }

    #[zbus(property)]
    async fn size(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<u64, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.size)
    }

    #[zbus(property)]
    async fn bytes_sent(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> Result<u64, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.bytes_sent)
    }

    #[zbus(property)]
    async fn attempts(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<u32, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.attempts)
    }

    /// (kind, message); both empty when there is none.
    #[zbus(property)]
    async fn last_error(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> Result<(String, String), BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self
            .view
            .last_error
            .as_ref()
            .map(|e| (e.kind.clone(), e.message.clone()))
            .unwrap_or_default())
    }

    /// RFC 3339, or empty when there is no review time.
    #[zbus(property)]
    async fn publish_at(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self
            .view
            .publish_at
            .map(|at| at.to_rfc3339())
            .unwrap_or_default())
    }

    #[zbus(property)]
    async fn hold(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<bool, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.hold)
    }

    #[zbus(property)]
    async fn title(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.metadata.title.clone().unwrap_or_default())
    }

    #[zbus(property)]
    async fn caption(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.metadata.caption.clone().unwrap_or_default())
    }

    #[zbus(property)]
    async fn privacy(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.metadata.privacy.clone().unwrap_or_default())
    }

    async fn pause(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(
            self.service
                .pause(Selection {
                    posts: Vec::new(),
                    ids: vec![self.view.id],
                    all: false,
                    now: false,
                })
                .await?,
        )
    }

    async fn resume(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(
            self.service
                .resume(Selection {
                    posts: Vec::new(),
                    ids: vec![self.view.id],
                    all: false,
                    now: false,
                })
                .await?,
        )
    }

    async fn cancel(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(self.service.cancel(vec![self.view.id]).await?)
    }

    async fn retry(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(self.service.retry(vec![self.view.id]).await?)
    }

    async fn publish(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(self.service.publish(vec![self.view.id]).await?)
    }
}
