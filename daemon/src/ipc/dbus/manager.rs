//! The manager object `/dev/upq/upq1` (`dev.upq.upq1.Manager`): add, list, act on jobs by id,
//! status, and the JobChanged/Progress signals. Checks the caller, then calls the service.

use std::collections::HashMap;

use upq_proto::{AddManyRequest, AddPostRequest, AddRequest, PostId, Selection};
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{interface, OwnedVariant};

use crate::ipc::caller::Gate;
use crate::service::Service;

use super::convert::{
    add_options, job_dict, post_dict, post_options, single, summary, Dict, JobSummary,
};
use super::BusError;

pub(super) struct Manager {
    pub(super) service: Service,
    pub(super) gate: Gate,
}

#[interface(interface = "dev.upq.upq1.Manager")]
impl Manager {
    /// Queues a file; options: destination, title, caption, privacy (s), hold (b),
    /// delay (t, seconds), at (s, RFC 3339), priority (i), meta (a{ss}).
    async fn add(
        &self,
        file: String,
        options: HashMap<String, OwnedVariant>,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<u64, BusError> {
        self.gate.check(Some(&header)).await?;
        let options = add_options(options)?;
        Ok(self.service.add(AddRequest { file, options }).await?.id)
    }

    /// Queues many files with the same options as `Add`, in one transaction; returns
    /// their ids in the order given. All or nothing: one file refused stores none, and
    /// the error names it.
    async fn add_many(
        &self,
        files: Vec<String>,
        options: HashMap<String, OwnedVariant>,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<u64>, BusError> {
        self.gate.check(Some(&header)).await?;
        let options = add_options(options)?;
        let added = self
            .service
            .add_many(AddManyRequest { files, options }, true)
            .await?;
        Ok(added
            .iter()
            .filter_map(|item| item.job.as_ref().map(|job| job.id))
            .collect())
    }

    /// Queues one file to several destinations as a post; returns its id (`p12`). Options
    /// as for `Add` (without `destination`), plus `title_for` and `caption_for` (a{ss},
    /// by destination), `meta_for` (a{sa{ss}}) and `all_or_nothing` (b). All jobs are
    /// stored, or none.
    async fn add_post(
        &self,
        file: String,
        destinations: Vec<String>,
        mut options: HashMap<String, OwnedVariant>,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<String, BusError> {
        self.gate.check(Some(&header)).await?;
        let (overrides, all_or_nothing) = post_options(&mut options)?;
        if options.contains_key("destination") {
            return Err(BusError::BadRequest(
                "a post's destinations are its second argument, not the option 'destination'"
                    .into(),
            ));
        }
        let options = add_options(options)?;
        let post = self
            .service
            .add_post(AddPostRequest {
                file,
                destinations,
                options,
                overrides,
                all_or_nothing,
            })
            .await?;
        Ok(post.id.to_string())
    }

    /// One post: id (s), state (s), file (s), title (s), all_or_nothing (b), created_at,
    /// released_at and release_after (s, RFC 3339 or ""), and jobs (at, in the order the
    /// destinations were given, without those discarded since).
    async fn get_post(
        &self,
        id: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<HashMap<String, OwnedVariant>, BusError> {
        self.gate.check(Some(&header)).await?;
        let id: PostId = id.parse().map_err(BusError::BadRequest)?;
        Ok(post_dict(&self.service.post_view(id, false)?))
    }

    /// The ids of the posts with a job not ended, or of every post (`all`), in order.
    async fn list_posts(
        &self,
        all: bool,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<String>, BusError> {
        self.gate.check(Some(&header)).await?;
        Ok(self
            .service
            .list_posts(all, None, None)?
            .iter()
            .map(|post| post.id.to_string())
            .collect())
    }

    /// Active jobs: (id, file, destination, state, bytes sent, size, title, object path).
    async fn list_jobs(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<JobSummary>, BusError> {
        self.gate.check(Some(&header)).await?;
        Ok(self.service.list(false)?.iter().map(summary).collect())
    }

    /// Every job, finished ones included.
    async fn list_all_jobs(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<JobSummary>, BusError> {
        self.gate.check(Some(&header)).await?;
        Ok(self.service.list(true)?.iter().map(summary).collect())
    }

    /// One job with every field of the socket's job object and its history
    /// (`history` is a(ssss): at, from, to, reason). Times are RFC 3339; absent ones are "".
    async fn get_job(
        &self,
        id: u64,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<HashMap<String, OwnedVariant>, BusError> {
        self.gate.check(Some(&header)).await?;
        Ok(job_dict(&self.service.show(id)?))
    }

    /// `upqctl edit`: changes `title`, `caption` or `privacy` (s; "" clears one) while the
    /// destination still allows it; answers with the job as `GetJob` does.
    async fn edit_job(
        &self,
        id: u64,
        changes: HashMap<String, OwnedVariant>,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<HashMap<String, OwnedVariant>, BusError> {
        self.gate.check(Some(&header)).await?;
        let request = super::convert::edit_request(id, changes)?;
        Ok(job_dict(&self.service.edit(request).await?))
    }

    async fn pause_job(&self, id: u64, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(self.service.pause(Selection::job(id)).await?)
    }

    async fn resume_job(
        &self,
        id: u64,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(self.service.resume(Selection::job(id)).await?)
    }

    /// `resume --now`: resumes a paused job, or lets a waiting one go, past the upload
    /// policies (hours, metered, battery) from now on.
    async fn resume_job_now(
        &self,
        id: u64,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(
            self.service
                .resume(Selection {
                    now: true,
                    ..Selection::job(id)
                })
                .await?,
        )
    }

    async fn cancel_job(
        &self,
        id: u64,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(self.service.cancel(vec![id]).await?)
    }

    async fn retry_job(&self, id: u64, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(self.service.retry(vec![id]).await?)
    }

    async fn publish_job(
        &self,
        id: u64,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(self.service.publish(vec![id]).await?)
    }

    /// Pauses every active job and the queue itself.
    async fn pause_all(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        self.service
            .pause(Selection {
                posts: Vec::new(),
                ids: vec![],
                all: true,
                now: false,
            })
            .await?;
        Ok(())
    }

    async fn resume_all(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        self.service
            .resume(Selection {
                posts: Vec::new(),
                ids: vec![],
                all: true,
                now: false,
            })
            .await?;
        Ok(())
    }

    async fn list_drafts(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<JobSummary>, BusError> {
        self.gate.check(Some(&header)).await?;
        Ok(self.service.drafts()?.iter().map(summary).collect())
    }

    async fn recover_draft(
        &self,
        id: u64,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(self.service.recover(vec![id]).await?)
    }

    async fn discard_draft(
        &self,
        id: u64,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(self.service.discard(vec![id]).await?)
    }

    /// Sets the global rate limit in bytes per second (0: none); returns it.
    async fn set_rate_limit(
        &self,
        bytes_per_second: u64,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<u64, BusError> {
        self.gate.check(Some(&header)).await?;
        Ok(self.service.set_rate_limit(bytes_per_second, None).0)
    }

    /// Sets the global rate limit (0: none) for `seconds`, after which the configured one
    /// is back; returns it.
    async fn set_rate_limit_for(
        &self,
        bytes_per_second: u64,
        seconds: u64,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<u64, BusError> {
        self.gate.check(Some(&header)).await?;
        let until = Some(std::time::Duration::from_secs(seconds));
        Ok(self.service.set_rate_limit(bytes_per_second, until).0)
    }

    /// Version, pid, uptime, counts by state (a{st}), limits, destinations.
    async fn status(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<HashMap<String, OwnedVariant>, BusError> {
        self.gate.check(Some(&header)).await?;
        let status = self.service.status();
        let mut dict = Dict::new();
        dict.put("version", status.version);
        dict.put("protocol", status.protocol);
        dict.put("pid", status.pid);
        dict.put("started_at", status.started_at.to_rfc3339());
        dict.put("uptime_secs", status.uptime_secs);
        dict.put(
            "counts",
            status.counts.into_iter().collect::<HashMap<String, u64>>(),
        );
        dict.put("max_active", status.max_active);
        dict.put("rate_limit", status.rate_limit);
        dict.put(
            "rate_limit_until",
            status
                .rate_limit_until
                .map(|at| at.to_rfc3339())
                .unwrap_or_default(),
        );
        dict.put("queue_paused", status.queue_paused);
        dict.put("destinations", status.destinations);
        dict.put("data_dir", status.data_dir);
        dict.put("socket", status.socket);
        dict.put("quarantined", status.quarantined);
        let system = status.system;
        dict.put("metered", system.metered);
        dict.put("metered_source", system.metered_source);
        dict.put("on_battery", system.on_battery);
        // -1: nobody reports a charge.
        dict.put("battery_percent", system.battery_percent.unwrap_or(-1.0));
        dict.put("battery_source", system.battery_source);
        dict.put("connectivity", system.connectivity);
        dict.put("connectivity_source", system.connectivity_source);
        dict.put("policies", status.policies);
        dict.put("web_url", status.web_url.unwrap_or_default());
        Ok(dict.0)
    }

    /// Starts a sign-in for a destination's account and returns the URL to open in a
    /// browser. Its end is the `LoginFinished` signal.
    async fn login(
        &self,
        destination: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<String, BusError> {
        self.gate.check(Some(&header)).await?;
        Ok(self.service.login(&destination, None).await?.url)
    }

    /// Revokes a destination's grant at the platform and forgets its tokens; says what was done.
    async fn logout(
        &self,
        destination: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<String, BusError> {
        self.gate.check(Some(&header)).await?;
        Ok(self.service.logout(&destination).await?)
    }

    /// A one-time address that signs a browser in to the desk, valid for a minute.
    async fn open_desk(&self, #[zbus(header)] header: Header<'_>) -> Result<String, BusError> {
        self.gate.check(Some(&header)).await?;
        Ok(self.service.open_desk()?)
    }

    /// `doctor`'s checks that only the daemon can make, each `(check, status, message, fix)`:
    /// status `ok`, `warning` or `problem`, fix `""` when there is none. Each check gets
    /// `timeout_ms` (0: 5 s).
    async fn doctor(
        &self,
        timeout_ms: u64,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<(String, String, String, String)>, BusError> {
        self.gate.check(Some(&header)).await?;
        let timeout = match timeout_ms {
            0 => crate::service::DEFAULT_CHECK_TIMEOUT,
            ms => std::time::Duration::from_millis(ms),
        };
        Ok(self
            .service
            .doctor(timeout)
            .await
            .into_iter()
            .map(|found| {
                (
                    found.check,
                    found.status.as_str().to_string(),
                    found.message,
                    found.fix.unwrap_or_default(),
                )
            })
            .collect())
    }

    /// Every destination's account: destination, provider, state, account_id, display_name,
    /// scopes (as), missing_scopes (as), access_expires_at, refresh_expires_at (RFC 3339 or
    /// ""), store, message. Never a token.
    async fn list_accounts(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<HashMap<String, OwnedVariant>>, BusError> {
        self.gate.check(Some(&header)).await?;
        Ok(self
            .service
            .accounts()
            .await
            .into_iter()
            .map(|account| {
                let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                    t.map(|t| t.to_rfc3339()).unwrap_or_default()
                };
                let mut dict = Dict::new();
                dict.put("destination", account.destination);
                dict.put("provider", account.provider);
                dict.put("state", account.state);
                dict.put("account_id", account.account_id.unwrap_or_default());
                dict.put("display_name", account.display_name.unwrap_or_default());
                dict.put("scopes", account.scopes);
                dict.put("missing_scopes", account.missing_scopes);
                dict.put("access_expires_at", time(account.access_expires_at));
                dict.put("refresh_expires_at", time(account.refresh_expires_at));
                dict.put("store", account.store);
                dict.put("message", account.message.unwrap_or_default());
                dict.0
            })
            .collect())
    }

    #[zbus(property)]
    async fn version(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(env!("CARGO_PKG_VERSION").to_string())
    }

    #[zbus(signal)]
    pub(super) async fn job_changed(
        emitter: &SignalEmitter<'_>,
        id: u64,
        state: &str,
    ) -> zbus::Result<()>;

    /// A sign-in ended: whether it worked, and what to tell the person.
    #[zbus(signal)]
    pub(super) async fn login_finished(
        emitter: &SignalEmitter<'_>,
        destination: &str,
        ok: bool,
        message: &str,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub(super) async fn progress(
        emitter: &SignalEmitter<'_>,
        id: u64,
        sent: u64,
        size: u64,
    ) -> zbus::Result<()>;
}
