//! The transport under every command: the daemon's socket, or its D-Bus API with `--bus`.
//! Both answer with the protocol's views and their JSON; how results are shown is the commands' job.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use upq_proto::{
    AccountView, AddManyRequest, AddPostRequest, AddRequest, AddedItem, BatchItem, CheckView,
    ErrorCode, Event, JobView, LoginResult, PostId, PostView, Reply, Request, Selection,
    StatusView,
};

use crate::action::{Action, Batch};
use crate::bus::{Bus, BusError, BusEvents};
use crate::client::{unexpected, Answer, Client, ClientError, Subscription};

/// A failure of either transport; both carry the daemon's error code when it refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Socket(#[from] ClientError),
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Printing what arrived failed (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Socket(error) => error.code(),
            Error::Bus(error) => error.code(),
            Error::Output(_) => None,
        }
    }

    /// The deadline given to [`Events::next_event`] passed.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Error::Socket(ClientError::Timeout) | Error::Bus(BusError::Timeout)
        )
    }
}

/// The socket, connected on first use and kept for the following requests.
pub struct SocketLink {
    path: PathBuf,
    client: RefCell<Option<Client>>,
}

impl SocketLink {
    fn call(&self, request: Request) -> Result<Answer, ClientError> {
        self.with_client(|client| client.call(request))
    }

    fn send(&self, request: Request) -> Result<u64, ClientError> {
        self.with_client(|client| client.send_only(request))
    }

    fn receive_jobs_json(&self, id: u64) -> Result<Vec<Value>, ClientError> {
        self.with_client(|client| client.receive_jobs_json(id))
    }

    fn with_client<T>(
        &self,
        call: impl FnOnce(&mut Client) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut slot = self.client.borrow_mut();
        let client = match slot.as_mut() {
            Some(client) => client,
            None => slot.insert(Client::connect(&self.path)?),
        };
        let answer = call(client);
        if matches!(answer, Err(ref error) if error.code().is_none()) {
            // The connection is in an unknown state; the next request starts afresh.
            *slot = None;
        }
        answer
    }
}

pub enum Backend {
    Socket(SocketLink),
    Bus(Bus),
}

/// Events about jobs, from a subscription made before any state was read.
pub enum Events<'a> {
    Socket(Subscription),
    Bus(Box<BusEvents<'a>>),
}

impl Events<'_> {
    /// The next event and its JSON, waiting until `deadline` (forever when `None`);
    /// an error for which [`Error::is_timeout`] holds when the deadline passes first.
    pub fn next_event(&mut self, deadline: Option<Instant>) -> Result<(Event, Value), Error> {
        match self {
            Events::Socket(subscription) => Ok(subscription.next_event(deadline)?),
            Events::Bus(events) => Ok(events.next_event(deadline)?),
        }
    }
}

/// A view and its JSON, as the socket passes on what the daemon sent.
fn with_json<T: Serialize>(view: T) -> Result<(T, Value), Error> {
    let json = serde_json::to_value(&view)
        .map_err(|e| BusError::Protocol(format!("cannot print the answer as JSON: {e}")))?;
    Ok((view, json))
}

/// How many jobs `upqctl` asks for a page.
const PAGE: u32 = 500;
/// Posts asked for at a time (each carries its jobs).
const POST_PAGE: u32 = 100;

/// Where the page after one that ended at id `last` starts; a daemon that answers the
/// same page again (one that does not page) is an error, not an endless list.
fn next_after(after: Option<u64>, last: u64) -> Result<u64, ClientError> {
    match after {
        Some(after) if last <= after => Err(ClientError::Protocol(format!(
            "upqd answered the same page twice (after job {after}, up to job {last})"
        ))),
        _ => Ok(last),
    }
}

/// Reads a long list a page at a time, so every answer stays well under the protocol's
/// line cap; `each` takes each page's JSON as the daemon sent it. The next page is asked
/// for before this one is handed on, so the daemon reads it while this one prints.
fn paged_json(
    link: &SocketLink,
    request: impl Fn(Option<u64>, Option<u32>) -> Request,
    each: &mut dyn FnMut(Vec<Value>) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut after = None;
    let mut pending = Some(link.send(request(after, Some(PAGE)))?);
    while let Some(id) = pending.take() {
        let items = link.receive_jobs_json(id)?;
        // A page of large jobs may hold fewer than asked: only an empty one ends the list.
        if let Some(last) = items
            .last()
            .map(|job| job.get("id").and_then(Value::as_u64))
        {
            let last =
                last.ok_or_else(|| ClientError::Protocol("a job without an id in a list".into()))?;
            after = Some(next_after(after, last)?);
            pending = Some(link.send(request(after, Some(PAGE)))?);
        }
        each(items)?;
    }
    Ok(())
}

/// Every page of a socket list, with the views read from it.
fn collected(
    pages: impl FnOnce(&mut dyn FnMut(Vec<Value>) -> Result<(), Error>) -> Result<(), Error>,
) -> Result<(Vec<JobView>, Value), Error> {
    let mut items = Vec::new();
    pages(&mut |page| {
        items.extend(page);
        Ok(())
    })?;
    let jobs = items
        .iter()
        .map(JobView::deserialize)
        .collect::<Result<_, _>>()
        .map_err(|e| ClientError::Protocol(format!("a job that does not read: {e}")))?;
    Ok((jobs, Value::Array(items)))
}

/// The JSON of a whole answer of the bus, as one page.
fn json_items(jobs: Vec<JobView>) -> Result<Vec<Value>, Error> {
    match with_json(jobs)?.1 {
        Value::Array(items) => Ok(items),
        _ => Ok(Vec::new()),
    }
}

impl Backend {
    pub fn socket(path: PathBuf) -> Backend {
        Backend::Socket(SocketLink {
            path,
            client: RefCell::new(None),
        })
    }

    /// D-Bus; the session bus is only reached by the first request.
    pub fn bus() -> Result<Backend, Error> {
        Ok(Backend::Bus(Bus::new()?))
    }

    pub fn add(&self, request: AddRequest) -> Result<(JobView, Value), Error> {
        match self {
            Backend::Socket(link) => Ok(link.call(Request::Add(request))?.job()?),
            Backend::Bus(bus) => with_json(bus.add(&request)?),
        }
    }

    /// Many files with the same options. The socket stores them in one transaction; the
    /// bus adds them one by one, so that each is queued or refused alone there too.
    pub fn add_many(&self, request: AddManyRequest) -> Result<(Vec<AddedItem>, Value), Error> {
        match self {
            Backend::Socket(link) => Ok(link.call(Request::AddMany(request))?.added()?),
            Backend::Bus(bus) => {
                let items: Vec<AddedItem> = request
                    .files
                    .into_iter()
                    .map(|file| {
                        let single = AddRequest {
                            file: file.clone(),
                            options: request.options.clone(),
                        };
                        Ok(match bus.add(&single) {
                            Ok(job) => AddedItem {
                                file,
                                job: Some(Box::new(job)),
                                error: None,
                            },
                            Err(e) => AddedItem {
                                file,
                                job: None,
                                error: Some(e.into_item_error()?),
                            },
                        })
                    })
                    .collect::<Result<_, BusError>>()?;
                with_json(items)
            }
        }
    }

    pub fn list(&self, all: bool) -> Result<(Vec<JobView>, Value), Error> {
        match self {
            Backend::Socket(_) => collected(|each| self.list_json(all, each)),
            Backend::Bus(bus) => with_json(bus.list(all)?),
        }
    }

    /// The list's JSON a page at a time: a long queue is printed as it arrives, never
    /// held whole.
    pub fn list_json(
        &self,
        all: bool,
        each: &mut dyn FnMut(Vec<Value>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        match self {
            Backend::Socket(link) => paged_json(
                link,
                |after, limit| Request::List { all, after, limit },
                each,
            ),
            Backend::Bus(bus) => each(json_items(bus.list(all)?)?),
        }
    }

    /// One file to several destinations: a post and one job each, or nothing.
    pub fn add_post(&self, request: AddPostRequest) -> Result<(PostView, Value), Error> {
        match self {
            Backend::Socket(link) => Ok(link.call(Request::AddPost(request))?.post()?),
            Backend::Bus(bus) => with_json(bus.add_post(&request)?),
        }
    }

    /// Posts with their jobs (no histories), a page at a time: those with a job not
    /// ended, or every one (`all`).
    pub fn list_posts(&self, all: bool) -> Result<(Vec<PostView>, Value), Error> {
        let link = match self {
            Backend::Socket(link) => link,
            Backend::Bus(bus) => return with_json(bus.list_posts(all)?),
        };
        let (mut posts, mut items) = (Vec::new(), Vec::new());
        let mut after = None;
        loop {
            let request = Request::ListPosts {
                all,
                after,
                limit: Some(POST_PAGE),
            };
            let (page, data) = link.call(request)?.posts()?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(next_after(after, last.id.0)?);
            match data {
                Value::Array(data) => items.extend(data),
                _ => {
                    return Err(
                        ClientError::Protocol("a post list that is not an array".into()).into(),
                    )
                }
            }
            posts.extend(page);
        }
        Ok((posts, Value::Array(items)))
    }

    /// A post with its jobs, each with its history.
    pub fn show_post(&self, id: PostId) -> Result<(PostView, Value), Error> {
        match self {
            Backend::Socket(link) => Ok(link.call(Request::ShowPost { id })?.post()?),
            Backend::Bus(bus) => with_json(bus.show_post(id)?),
        }
    }

    /// One job with its history.
    pub fn show(&self, id: u64) -> Result<(JobView, Value), Error> {
        match self {
            Backend::Socket(link) => Ok(link.call(Request::Show { id })?.job()?),
            Backend::Bus(bus) => with_json(bus.show(id)?),
        }
    }

    pub fn edit(&self, request: upq_proto::EditRequest) -> Result<(JobView, Value), Error> {
        match self {
            Backend::Socket(link) => Ok(link.call(Request::Edit(request))?.job()?),
            Backend::Bus(bus) => with_json(bus.edit(&request)?),
        }
    }

    pub fn batch(
        &self,
        action: Action,
        target: Selection,
    ) -> Result<(Vec<BatchItem>, Value), Error> {
        match self {
            Backend::Socket(link) => Ok(link.call(action.request(target))?.batch()?),
            Backend::Bus(bus) => with_json(bus.batch(action, &target)?),
        }
    }

    pub fn drafts(&self) -> Result<(Vec<JobView>, Value), Error> {
        match self {
            Backend::Socket(_) => collected(|each| self.drafts_json(each)),
            Backend::Bus(bus) => with_json(bus.drafts()?),
        }
    }

    /// The drafts' JSON a page at a time; see `list_json`.
    pub fn drafts_json(
        &self,
        each: &mut dyn FnMut(Vec<Value>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        match self {
            Backend::Socket(link) => {
                paged_json(link, |after, limit| Request::Drafts { after, limit }, each)
            }
            Backend::Bus(bus) => each(json_items(bus.drafts()?)?),
        }
    }

    pub fn status(&self) -> Result<(StatusView, Value), Error> {
        match self {
            Backend::Socket(link) => Ok(link.call(Request::Status)?.status()?),
            Backend::Bus(bus) => with_json(bus.status()?),
        }
    }

    /// A one-time address that signs a browser in to the desk.
    pub fn open_desk(&self) -> Result<String, Error> {
        match self {
            Backend::Socket(link) => match link.call(Request::Open)?.reply {
                Reply::Desk { url } => Ok(url),
                other => Err(unexpected("desk", &other).into()),
            },
            Backend::Bus(bus) => Ok(bus.open_desk()?),
        }
    }

    /// The daemon's `doctor` findings (its data folder, each destination), each check
    /// given `timeout`; the answer may take that long and a little more.
    pub fn doctor(&self, timeout: Duration) -> Result<Vec<CheckView>, Error> {
        match self {
            Backend::Socket(link) => {
                let timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
                let deadline = Instant::now() + timeout * 2 + Duration::from_secs(2);
                let answer = link.with_client(|client| {
                    client.call_until(Request::Doctor { timeout_ms }, deadline)
                })?;
                match answer.reply {
                    Reply::Checks(found) => Ok(found),
                    other => Err(unexpected("checks", &other).into()),
                }
            }
            Backend::Bus(bus) => Ok(bus.doctor(timeout)?),
        }
    }

    /// Sets the global rate limit (bytes per second, 0 for none); returns the new one.
    pub fn limit(&self, rate: u64, until: Option<std::time::Duration>) -> Result<u64, Error> {
        match self {
            Backend::Socket(link) => {
                let until_ms = until.map(|until| until.as_millis() as u64);
                Ok(link.call(Request::Limit { rate, until_ms })?.limit()?)
            }
            Backend::Bus(bus) => Ok(bus.set_rate_limit(rate, until)?),
        }
    }

    /// Starts a sign-in, hands its URL to `on_url`, and waits for its end until `deadline`.
    pub fn login(
        &self,
        destination: &str,
        timeout: Duration,
        on_url: &mut dyn FnMut(&str) -> Result<(), Error>,
    ) -> Result<LoginResult, Error> {
        let deadline = Instant::now() + timeout;
        match self {
            Backend::Socket(link) => {
                let answer = link.call(Request::Login {
                    destination: destination.to_string(),
                    timeout_ms: Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
                })?;
                let (url, attempt) = match answer.reply {
                    Reply::Login { url, attempt } => (url, attempt),
                    other => return Err(unexpected("login", &other).into()),
                };
                on_url(&url)?;
                let waited = link.with_client(|client| {
                    client.call_until(
                        Request::LoginWait {
                            destination: destination.to_string(),
                            attempt,
                        },
                        deadline,
                    )
                })?;
                match waited.reply {
                    Reply::LoginFinished(result) => Ok(result),
                    other => Err(unexpected("login_finished", &other).into()),
                }
            }
            Backend::Bus(bus) => {
                let mut pass_on =
                    |url: &str| on_url(url).map_err(|e| BusError::Protocol(e.to_string()));
                Ok(bus.login(destination, deadline, &mut pass_on)?)
            }
        }
    }

    pub fn accounts(&self) -> Result<(Vec<AccountView>, Value), Error> {
        match self {
            Backend::Socket(link) => {
                let answer = link.call(Request::Accounts)?;
                match answer.reply {
                    Reply::Accounts(accounts) => Ok((accounts, answer.data)),
                    other => Err(unexpected("accounts", &other).into()),
                }
            }
            Backend::Bus(bus) => with_json(bus.accounts()?),
        }
    }

    /// Signs a destination's account out; says what was done.
    pub fn logout(&self, destination: &str) -> Result<String, Error> {
        match self {
            Backend::Socket(link) => {
                let answer = link.call(Request::Logout {
                    destination: destination.to_string(),
                })?;
                match answer.reply {
                    Reply::LoggedOut { message } => Ok(message),
                    other => Err(unexpected("logged_out", &other).into()),
                }
            }
            Backend::Bus(bus) => Ok(bus.logout(destination)?),
        }
    }

    /// Events for `ids` (every job when empty). Subscribe before reading the current state,
    /// so that no change slips between the two.
    pub fn subscribe(&self, ids: Vec<u64>) -> Result<Events<'_>, Error> {
        match self {
            Backend::Socket(link) => {
                Ok(Events::Socket(Client::connect(&link.path)?.subscribe(ids)?))
            }
            Backend::Bus(bus) => Ok(Events::Bus(Box::new(bus.subscribe(ids)?))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_timeouts_of_both_transports() {
        let socket = Error::from(ClientError::Timeout);
        assert!(socket.is_timeout());
        assert_eq!(socket.code(), None);
        let bus = Error::from(BusError::Timeout);
        assert!(bus.is_timeout());
        let refused = Error::from(BusError::Daemon(upq_proto::ErrorBody {
            code: ErrorCode::NotFound,
            message: "no job 9".into(),
        }));
        assert_eq!(refused.code(), Some(ErrorCode::NotFound));
        assert_eq!(refused.to_string(), "no job 9");
        assert!(!refused.is_timeout());
    }

    #[test]
    fn a_missing_socket_is_reported_on_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Backend::socket(dir.path().join("none.sock"));
        let error = backend.status().unwrap_err();
        assert!(
            matches!(error, Error::Socket(ClientError::NotRunning { .. })),
            "{error:?}"
        );
    }
}
