//! `upqctl --bus`: the daemon's `dev.upq.upq1` D-Bus API, answering with the socket's views.
//! Owns a current-thread runtime and the session-bus connection; never prints anything.

mod convert;
mod error;
mod events;

use std::cell::OnceCell;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::runtime::Runtime;
use upq_proto::{
    AccountView, AddPostRequest, AddRequest, BatchItem, CheckStatus, CheckView, ErrorBody,
    JobState, JobView, LoginResult, PostId, PostView, Selection, StatusView,
};
use zbus::proxy::CacheProperties;
use zbus::{proxy, Connection, Variant};

use self::convert::{
    add_options, add_post_options, job_view, post_view, status_view, JobDict, JobSummary, PostDict,
    StatusDict,
};
use crate::action::Action;

pub use self::error::BusError;
pub use self::events::BusEvents;

/// How long one method call may take before the daemon is considered stuck (as on the socket).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

// zbus needs literals here; a test checks them against `upq_proto::dbus`.
#[proxy(
    interface = "dev.upq.upq1.Manager",
    default_service = "dev.upq.upq1",
    default_path = "/dev/upq/upq1"
)]
trait Manager {
    fn add(
        &self,
        file: &str,
        options: std::collections::HashMap<&str, Variant<'_>>,
    ) -> zbus::Result<u64>;
    fn add_post(
        &self,
        file: &str,
        destinations: &[String],
        options: std::collections::HashMap<&str, Variant<'_>>,
    ) -> zbus::Result<String>;
    fn get_post(&self, id: &str) -> zbus::Result<PostDict>;
    fn list_posts(&self, all: bool) -> zbus::Result<Vec<String>>;
    fn list_jobs(&self) -> zbus::Result<Vec<JobSummary>>;
    fn list_all_jobs(&self) -> zbus::Result<Vec<JobSummary>>;
    fn get_job(&self, id: u64) -> zbus::Result<JobDict>;
    fn edit_job(&self, id: u64, changes: HashMap<&str, Variant<'_>>) -> zbus::Result<JobDict>;
    fn pause_job(&self, id: u64) -> zbus::Result<()>;
    fn resume_job(&self, id: u64) -> zbus::Result<()>;
    fn resume_job_now(&self, id: u64) -> zbus::Result<()>;
    fn cancel_job(&self, id: u64) -> zbus::Result<()>;
    fn retry_job(&self, id: u64) -> zbus::Result<()>;
    fn publish_job(&self, id: u64) -> zbus::Result<()>;
    fn pause_all(&self) -> zbus::Result<()>;
    fn resume_all(&self) -> zbus::Result<()>;
    fn list_drafts(&self) -> zbus::Result<Vec<JobSummary>>;
    fn recover_draft(&self, id: u64) -> zbus::Result<()>;
    fn discard_draft(&self, id: u64) -> zbus::Result<()>;
    fn set_rate_limit(&self, bytes_per_second: u64) -> zbus::Result<u64>;
    fn set_rate_limit_for(&self, bytes_per_second: u64, seconds: u64) -> zbus::Result<u64>;
    fn status(&self) -> zbus::Result<StatusDict>;
    fn login(&self, destination: &str) -> zbus::Result<String>;
    fn logout(&self, destination: &str) -> zbus::Result<String>;
    fn open_desk(&self) -> zbus::Result<String>;
    fn doctor(&self, timeout_ms: u64) -> zbus::Result<Vec<(String, String, String, String)>>;
    fn list_accounts(&self) -> zbus::Result<Vec<convert::AccountDict>>;
    #[zbus(signal)]
    fn login_finished(&self, destination: String, ok: bool, message: String) -> zbus::Result<()>;
}

/// A post object; its path is given when it is built.
#[proxy(interface = "dev.upq.upq1.Post", default_service = "dev.upq.upq1")]
trait Post {
    fn publish(&self) -> zbus::Result<()>;
}

fn call_error(error: zbus::Error) -> BusError {
    error::from_zbus(error, CALL_TIMEOUT)
}

/// Lists and batches carry jobs without their history, as on the socket.
fn without_history(mut job: JobView) -> JobView {
    job.history = None;
    job
}

fn done(id: u64, job: Option<JobView>) -> BatchItem {
    BatchItem {
        id,
        job: job.map(|job| Box::new(without_history(job))),
        error: None,
    }
}

fn refused(id: u64, error: ErrorBody) -> BatchItem {
    BatchItem {
        id,
        job: None,
        error: Some(error),
    }
}

/// The connection and the manager's proxy, made on first use.
struct Link {
    connection: Connection,
    manager: ManagerProxy<'static>,
}

impl Link {
    async fn connect() -> Result<Link, BusError> {
        let connection = zbus::connection::Builder::session()
            .method_timeout(CALL_TIMEOUT)
            .build()
            .await
            .map_err(BusError::NoBus)?;
        let manager = ManagerProxy::builder(&connection)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(call_error)?;
        Ok(Link {
            connection,
            manager,
        })
    }

    /// True when nobody owns `dev.upq.upq1` any more: the daemon has gone away.
    async fn daemon_gone(&self) -> bool {
        let Ok(bus) = zbus::fdo::DBusProxy::new(&self.connection).await else {
            return false;
        };
        let Ok(name) = zbus::names::BusName::try_from(upq_proto::dbus::BUS_NAME) else {
            return false;
        };
        matches!(bus.name_has_owner(name).await, Ok(false))
    }

    /// One job with its history.
    async fn job(&self, id: u64) -> Result<JobView, BusError> {
        let dict = self.manager.get_job(id).await.map_err(call_error)?;
        job_view(dict).map_err(BusError::Protocol)
    }

    /// The job, or `None` when it is gone.
    async fn job_if_any(&self, id: u64) -> Result<Option<JobView>, BusError> {
        match self.job(id).await {
            Ok(job) => Ok(Some(job)),
            Err(error) if error.code() == Some(upq_proto::ErrorCode::NotFound) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// One post with its jobs' views, with or without their histories.
    async fn post(&self, id: PostId, history: bool) -> Result<PostView, BusError> {
        let mut dict = self
            .manager
            .get_post(&id.to_string())
            .await
            .map_err(call_error)?;
        let ids = dict.jobs.take().unwrap_or_default();
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(job) = self.job_if_any(id).await? {
                jobs.push(if history { job } else { without_history(job) });
            }
        }
        post_view(dict, jobs).map_err(BusError::Protocol)
    }

    /// The post's jobs that still exist.
    async fn post_jobs(&self, id: PostId) -> Result<Vec<u64>, BusError> {
        let dict = self
            .manager
            .get_post(&id.to_string())
            .await
            .map_err(call_error)?;
        Ok(dict.jobs.unwrap_or_default())
    }

    /// `publish pN`: the post object's `Publish`, which records the release before any
    /// job is released, as the socket's `publish` does.
    async fn publish_post(&self, id: PostId) -> Result<(), BusError> {
        let post = PostProxy::builder(&self.connection)
            .path(upq_proto::dbus::post_path(id))
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(call_error)?;
        post.publish().await.map_err(call_error)
    }

    /// The jobs of a listing, each read with `GetJob`; one discarded meanwhile is left out.
    async fn jobs(&self, listed: Vec<JobSummary>) -> Result<Vec<JobView>, BusError> {
        let mut jobs = Vec::with_capacity(listed.len());
        for (id, ..) in listed {
            if let Some(job) = self.job_if_any(id).await? {
                jobs.push(without_history(job));
            }
        }
        Ok(jobs)
    }

    async fn act(&self, action: Action, id: u64, now: bool) -> zbus::Result<()> {
        match action {
            Action::Pause => self.manager.pause_job(id).await,
            Action::Resume if now => self.manager.resume_job_now(id).await,
            Action::Resume => self.manager.resume_job(id).await,
            Action::Cancel => self.manager.cancel_job(id).await,
            Action::Retry => self.manager.retry_job(id).await,
            Action::Publish => self.manager.publish_job(id).await,
            Action::Recover => self.manager.recover_draft(id).await,
            Action::Discard => self.manager.discard_draft(id).await,
        }
    }

    /// One id of a batch: a refusal becomes the item's error, a broken link the whole answer's.
    async fn one(&self, action: Action, id: u64, now: bool) -> Result<BatchItem, BusError> {
        // A discarded job is gone afterwards, so its object is read first.
        let before = if action == Action::Discard {
            match self.job(id).await {
                Ok(job) => Some(job),
                Err(error) => return Ok(refused(id, error.into_item_error()?)),
            }
        } else {
            None
        };
        if let Err(error) = self.act(action, id, now).await {
            return Ok(refused(id, call_error(error).into_item_error()?));
        }
        let job = match before {
            Some(job) => Some(job),
            None => self.job_if_any(id).await?,
        };
        Ok(done(id, job))
    }

    /// `pause --all` / `resume --all`: the jobs the daemon will touch, then the call, then each.
    async fn all(&self, action: Action) -> Result<Vec<BatchItem>, BusError> {
        let touched = |state: JobState| match action {
            Action::Pause => matches!(
                state,
                JobState::Queued | JobState::Uploading | JobState::Retrying
            ),
            _ => state == JobState::Paused,
        };
        let listed = self.manager.list_jobs().await.map_err(call_error)?;
        let ids: Vec<u64> = listed
            .iter()
            .filter(|summary| summary.3.parse().is_ok_and(touched))
            .map(|summary| summary.0)
            .collect();
        match action {
            Action::Pause => self.manager.pause_all().await,
            _ => self.manager.resume_all().await,
        }
        .map_err(call_error)?;
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            items.push(done(id, self.job_if_any(id).await?));
        }
        Ok(items)
    }
}

/// The D-Bus transport: blocking calls on top of zbus's async API.
pub struct Bus {
    runtime: Runtime,
    link: OnceCell<Link>,
}

impl Bus {
    pub fn new() -> Result<Bus, BusError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(BusError::Runtime)?;
        Ok(Bus {
            runtime,
            link: OnceCell::new(),
        })
    }

    fn link(&self) -> Result<&Link, BusError> {
        if let Some(link) = self.link.get() {
            return Ok(link);
        }
        let link = self.runtime.block_on(Link::connect())?;
        Ok(self.link.get_or_init(|| link))
    }

    /// Runs `work` against the link on the runtime.
    fn run<'a, T, F>(&'a self, work: impl FnOnce(&'a Link) -> F) -> Result<T, BusError>
    where
        F: Future<Output = Result<T, BusError>>,
    {
        let link = self.link()?;
        self.runtime.block_on(work(link))
    }

    pub fn add(&self, request: &AddRequest) -> Result<JobView, BusError> {
        self.run(|link| async move {
            let id = link
                .manager
                .add(&request.file, add_options(&request.options))
                .await
                .map_err(call_error)?;
            link.job(id).await.map(without_history)
        })
    }

    /// A post and one job per destination; answers the post with its jobs' histories.
    pub fn add_post(&self, request: &AddPostRequest) -> Result<PostView, BusError> {
        self.run(|link| async move {
            let id = link
                .manager
                .add_post(
                    &request.file,
                    &request.destinations,
                    add_post_options(request),
                )
                .await
                .map_err(call_error)?;
            let id: PostId = id.parse().map_err(BusError::Protocol)?;
            link.post(id, true).await
        })
    }

    pub fn show_post(&self, id: PostId) -> Result<PostView, BusError> {
        self.run(|link| link.post(id, true))
    }

    pub fn list_posts(&self, all: bool) -> Result<Vec<PostView>, BusError> {
        self.run(|link| async move {
            let ids = link.manager.list_posts(all).await.map_err(call_error)?;
            let mut posts = Vec::with_capacity(ids.len());
            for id in ids {
                let id: PostId = id.parse().map_err(BusError::Protocol)?;
                match link.post(id, false).await {
                    Ok(post) => posts.push(post),
                    Err(error) if error.code() == Some(upq_proto::ErrorCode::NotFound) => {}
                    Err(error) => return Err(error),
                }
            }
            Ok(posts)
        })
    }

    pub fn list(&self, all: bool) -> Result<Vec<JobView>, BusError> {
        self.run(|link| async move {
            let listed = if all {
                link.manager.list_all_jobs().await
            } else {
                link.manager.list_jobs().await
            };
            link.jobs(listed.map_err(call_error)?).await
        })
    }

    pub fn show(&self, id: u64) -> Result<JobView, BusError> {
        self.run(|link| link.job(id))
    }

    pub fn edit(&self, request: &upq_proto::EditRequest) -> Result<JobView, BusError> {
        let changes: HashMap<&str, Variant<'_>> = [
            ("title", &request.title),
            ("caption", &request.caption),
            ("privacy", &request.privacy),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, Variant::from(value.as_deref()?))))
        .collect();
        self.run(|link| async move {
            let dict = link
                .manager
                .edit_job(request.id, changes)
                .await
                .map_err(call_error)?;
            job_view(dict).map_err(BusError::Protocol)
        })
    }

    pub fn batch(&self, action: Action, target: &Selection) -> Result<Vec<BatchItem>, BusError> {
        self.run(|link| async move {
            if target.all && matches!(action, Action::Pause | Action::Resume) {
                if target.now {
                    return Err(BusError::Daemon(upq_proto::ErrorBody {
                        code: upq_proto::ErrorCode::BadRequest,
                        message: "`resume --all --now` is not on the bus; name the jobs, or \
                                  leave out --bus"
                            .into(),
                    }));
                }
                return link.all(action).await;
            }
            // A post stands for its jobs. Its release goes through the post object, which
            // records it first; a refusal there is the whole answer's.
            let mut ids = target.ids.clone();
            let mut released = Vec::new();
            for &post in &target.posts {
                let jobs = link.post_jobs(post).await?;
                if action == Action::Publish {
                    link.publish_post(post).await?;
                    released.extend(jobs.iter().copied());
                }
                ids.extend(jobs.into_iter().filter(|id| !target.ids.contains(id)));
            }
            let mut items = Vec::with_capacity(ids.len());
            let mut seen = std::collections::BTreeSet::new();
            for id in ids.into_iter().filter(|&id| seen.insert(id)) {
                items.push(if released.contains(&id) {
                    done(id, link.job_if_any(id).await?)
                } else {
                    link.one(action, id, target.now).await?
                });
            }
            Ok(items)
        })
    }

    pub fn drafts(&self) -> Result<Vec<JobView>, BusError> {
        self.run(|link| async move {
            let listed = link.manager.list_drafts().await.map_err(call_error)?;
            link.jobs(listed).await
        })
    }

    pub fn status(&self) -> Result<StatusView, BusError> {
        self.run(|link| async move {
            let dict = link.manager.status().await.map_err(call_error)?;
            status_view(dict).map_err(BusError::Protocol)
        })
    }

    pub fn set_rate_limit(
        &self,
        rate: u64,
        until: Option<std::time::Duration>,
    ) -> Result<u64, BusError> {
        self.run(|link| async move {
            match until {
                // The bus counts whole seconds; a part of one counts as one.
                Some(until) => {
                    link.manager
                        .set_rate_limit_for(rate, until.as_millis().div_ceil(1000) as u64)
                        .await
                }
                None => link.manager.set_rate_limit(rate).await,
            }
            .map_err(call_error)
        })
    }

    /// Starts a sign-in and waits for its `LoginFinished` until `deadline`; `on_url` gets the
    /// URL to open as soon as the daemon gives it.
    pub fn login(
        &self,
        destination: &str,
        deadline: std::time::Instant,
        on_url: &mut dyn FnMut(&str) -> Result<(), BusError>,
    ) -> Result<LoginResult, BusError> {
        use futures::StreamExt;
        self.run(|link| async move {
            // Listening first, so the end cannot slip between the call and the listening.
            let mut finished = link
                .manager
                .receive_login_finished()
                .await
                .map_err(call_error)?;
            let url = link.manager.login(destination).await.map_err(call_error)?;
            on_url(&url)?;
            let wait = async {
                while let Some(signal) = finished.next().await {
                    let Ok(args) = signal.args() else { continue };
                    if args.destination == destination {
                        return Some(LoginResult {
                            destination: args.destination.clone(),
                            ok: args.ok,
                            timed_out: false,
                            message: args.message.clone(),
                        });
                    }
                }
                None
            };
            let deadline = tokio::time::Instant::from_std(deadline);
            match tokio::time::timeout_at(deadline, wait).await {
                Ok(Some(result)) => Ok(result),
                Ok(None) => Err(BusError::Protocol("the bus connection ended".into())),
                Err(_) => Err(BusError::Timeout),
            }
        })
    }

    pub fn logout(&self, destination: &str) -> Result<String, BusError> {
        self.run(|link| async move { link.manager.logout(destination).await.map_err(call_error) })
    }

    pub fn open_desk(&self) -> Result<String, BusError> {
        self.run(|link| async move { link.manager.open_desk().await.map_err(call_error) })
    }

    /// The daemon's `doctor` findings, each check given `timeout`.
    pub fn doctor(&self, timeout: Duration) -> Result<Vec<CheckView>, BusError> {
        let timeout_ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.run(|link| async move {
            let found = link.manager.doctor(timeout_ms).await.map_err(call_error)?;
            found
                .into_iter()
                .map(|(check, status, message, fix)| {
                    let status = match status.as_str() {
                        "ok" => CheckStatus::Ok,
                        "warning" => CheckStatus::Warning,
                        "problem" => CheckStatus::Problem,
                        other => {
                            return Err(BusError::Protocol(format!(
                                "Doctor gave an unknown status {other:?}"
                            )))
                        }
                    };
                    Ok(CheckView {
                        check,
                        status,
                        message,
                        fix: (!fix.is_empty()).then_some(fix),
                    })
                })
                .collect()
        })
    }

    pub fn accounts(&self) -> Result<Vec<AccountView>, BusError> {
        self.run(|link| async move {
            let listed = link.manager.list_accounts().await.map_err(call_error)?;
            listed
                .into_iter()
                .map(convert::account_view)
                .collect::<Result<_, _>>()
                .map_err(BusError::Protocol)
        })
    }

    /// Signals about `ids` (every job when empty), subscribed before this returns.
    pub fn subscribe(&self, ids: Vec<u64>) -> Result<BusEvents<'_>, BusError> {
        let link = self.link()?;
        let streams = self
            .runtime
            .block_on(events::Streams::open(&link.connection))?;
        Ok(BusEvents::new(self, ids, streams))
    }
}

#[cfg(test)]
mod tests {
    use upq_proto::dbus as names;
    use zbus::proxy::Defaults;
    use zbus::zvariant::Type;

    use super::{JobSummary, ManagerProxy};

    /// zbus's attributes need literals: they must say what `upq_proto::dbus` says.
    #[test]
    fn the_literals_are_the_shared_names() {
        let interface = ManagerProxy::INTERFACE.as_ref().map(|n| n.as_str());
        assert_eq!(interface, Some(names::MANAGER_INTERFACE));
        let service = ManagerProxy::DESTINATION.as_ref().map(|n| n.as_str());
        assert_eq!(service, Some(names::BUS_NAME));
        let path = ManagerProxy::PATH.as_ref().map(|p| p.as_str());
        assert_eq!(path, Some(names::MANAGER_PATH));
        assert_eq!(
            JobSummary::SIGNATURE.to_string(),
            names::JOB_SUMMARY_SIGNATURE
        );
    }
}
