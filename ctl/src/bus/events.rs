//! The manager's signals (JobChanged, Progress, and the ObjectManager's InterfacesRemoved)
//! turned into the socket's `Event`s, each completed with `GetJob`; `wait` and `watch` read them.

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroUsize;
use std::time::Instant;

use futures::StreamExt;
use serde_json::Value;
use upq_proto::{Event, HistoryEntry, JobState, JobView};
use zbus::message::Type;
use zbus::{Connection, MatchRule, Message, MessageStream, OwnedObjectPath};

use upq_proto::dbus::{
    job_id, BUS_NAME, JOB_INTERFACE, MANAGER_INTERFACE, MANAGER_PATH,
    OBJECT_MANAGER_INTERFACE as OBJECT_MANAGER,
};

use super::{Bus, BusError, Link};

/// Signals kept while a command is busy elsewhere (Progress comes at most 4 times a second a job).
const QUEUE: usize = 4096;

/// The match rules, added on the bus before anything is read.
pub struct Streams {
    /// Every signal of the manager object: its own and the ObjectManager's, in order.
    manager: MessageStream,
    /// The bus's NameOwnerChanged for `dev.upq.upq1`: upqd leaving ends the subscription.
    owner: MessageStream,
}

impl Streams {
    pub async fn open(connection: &Connection) -> Result<Streams, BusError> {
        let queue = NonZeroUsize::new(QUEUE);
        let manager_rule = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender(BUS_NAME)
            .path(MANAGER_PATH)
            .build()
            .map_err(BusError::Call)?;
        let owner_rule = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender("org.freedesktop.DBus")
            .interface("org.freedesktop.DBus")
            .member("NameOwnerChanged")
            .arg(0, BUS_NAME)
            .build()
            .map_err(BusError::Call)?;
        let manager = MessageStream::for_match_rule(manager_rule, connection, queue)
            .await
            .map_err(BusError::Call)?;
        let owner = MessageStream::for_match_rule(owner_rule, connection, queue)
            .await
            .map_err(BusError::Call)?;
        Ok(Streams { manager, owner })
    }
}

/// What a signal says, before the job is read.
#[derive(Debug, PartialEq, Eq)]
enum Signal {
    /// `state` is `None` for a state this upqctl does not know.
    Changed {
        id: u64,
        state: Option<JobState>,
    },
    Progress {
        id: u64,
        sent: u64,
        size: u64,
    },
    Removed {
        id: u64,
    },
}

/// Reads a manager signal; signals of other kinds or shapes are none of ours.
fn signal(message: &Message) -> Option<Signal> {
    let header = message.header();
    let interface = header.interface()?.as_str();
    let member = header.member()?.as_str();
    let body = message.body();
    match (interface, member) {
        (MANAGER_INTERFACE, "JobChanged") => {
            let (id, state): (u64, String) = body.deserialize().ok()?;
            Some(Signal::Changed {
                id,
                state: state.parse().ok(),
            })
        }
        (MANAGER_INTERFACE, "Progress") => {
            let (id, sent, size): (u64, u64, u64) = body.deserialize().ok()?;
            Some(Signal::Progress { id, sent, size })
        }
        (OBJECT_MANAGER, "InterfacesRemoved") => {
            let (path, interfaces): (OwnedObjectPath, Vec<String>) = body.deserialize().ok()?;
            let id = job_id(path.as_str())?;
            interfaces
                .iter()
                .any(|name| name == JOB_INTERFACE)
                .then_some(Signal::Removed { id })
        }
        _ => None,
    }
}

/// True when a NameOwnerChanged says that `dev.upq.upq1` has no owner any more.
fn owner_left(message: &Message) -> bool {
    message
        .body()
        .deserialize::<(String, String, String)>()
        .is_ok_and(|(name, _old, new)| name == BUS_NAME && new.is_empty())
}

/// Which history entry a JobChanged announces. `next` is the first entry not yet reported
/// (`None` for the first signal about the job): normally that one; when signals were lost,
/// the next entry that reaches the signalled state; else the latest.
fn announced(history: &[HistoryEntry], next: Option<usize>, state: Option<JobState>) -> usize {
    let latest = history.len().saturating_sub(1);
    let Some(state) = state else {
        return latest;
    };
    match next {
        Some(next) => (next..history.len())
            .find(|&index| history[index].to == state)
            .unwrap_or(latest),
        // Changes before the subscription sent no signal to us: the latest such entry it is.
        None => (0..history.len())
            .rev()
            .find(|&index| history[index].to == state)
            .unwrap_or(latest),
    }
}

/// The state event for history entry `index` of a job read after its JobChanged. The bus keeps
/// no earlier copies of a job, so for a change that is no longer the latest the job is the
/// current one with that change's state and time.
fn state_event(mut job: JobView, index: usize) -> Option<Event> {
    let mut history = job.history.take()?;
    let latest = index + 1 == history.len();
    let entry = (index < history.len()).then(|| history.swap_remove(index))?;
    if !latest {
        job.state = entry.to;
        job.updated_at = entry.at;
        job.speed = None;
    }
    Some(Event::State {
        id: job.id,
        from: entry.from,
        to: entry.to,
        reason: entry.reason,
        job: Box::new(job),
    })
}

/// A progress event: the signal's `sent` counts bytes in flight, the job's `bytes_sent` does not.
fn progress_event(job: &JobView, sent: u64, size: u64) -> Event {
    Event::Progress {
        id: job.id,
        bytes_sent: job.bytes_sent.min(sent),
        bytes_in_flight: sent.saturating_sub(job.bytes_sent),
        size,
        speed: job.speed.unwrap_or(0),
    }
}

/// A subscription: yields the socket's events for the jobs asked for.
pub struct BusEvents<'a> {
    bus: &'a Bus,
    /// The jobs asked for; every job when empty.
    ids: BTreeSet<u64>,
    streams: Streams,
    /// For each job, the first history entry not yet reported as an event: each JobChanged
    /// announces one change, and the job read after it may already show later ones.
    next_change: HashMap<u64, usize>,
}

impl<'a> BusEvents<'a> {
    pub(super) fn new(bus: &'a Bus, ids: Vec<u64>, streams: Streams) -> BusEvents<'a> {
        BusEvents {
            bus,
            ids: ids.into_iter().collect(),
            streams,
            next_change: HashMap::new(),
        }
    }

    /// The next event and its JSON, waiting until `deadline` (forever when `None`).
    pub fn next_event(&mut self, deadline: Option<Instant>) -> Result<(Event, Value), BusError> {
        let bus = self.bus;
        let link = bus.link()?;
        bus.runtime.block_on(async {
            match deadline {
                Some(deadline) => {
                    let deadline = tokio::time::Instant::from_std(deadline);
                    tokio::time::timeout_at(deadline, self.next(link))
                        .await
                        .map_err(|_| BusError::Timeout)?
                }
                None => self.next(link).await,
            }
        })
    }

    fn wants(&self, id: u64) -> bool {
        self.ids.is_empty() || self.ids.contains(&id)
    }

    async fn next(&mut self, link: &Link) -> Result<(Event, Value), BusError> {
        loop {
            let message = tokio::select! {
                message = self.streams.manager.next() => message,
                owner = self.streams.owner.next() => match owner {
                    Some(Ok(message)) if owner_left(&message) => return Err(BusError::Left),
                    Some(_) => continue,
                    None => None,
                },
            };
            let message = match message {
                Some(message) => message.map_err(BusError::Call)?,
                None => return Err(BusError::Left),
            };
            let Some(signal) = signal(&message) else {
                continue;
            };
            let event = match self.event(link, signal).await {
                Ok(event) => event,
                // A read that failed because upqd just left is the end, as on the socket.
                Err(_) if link.daemon_gone().await => return Err(BusError::Left),
                Err(error) => return Err(error),
            };
            if let Some(event) = event {
                let json = serde_json::to_value(&event).map_err(|e| {
                    BusError::Protocol(format!("cannot print an event as JSON: {e}"))
                })?;
                return Ok((event, json));
            }
        }
    }

    /// The event for a signal, or `None` when it is not for us or says nothing new.
    async fn event(&mut self, link: &Link, signal: Signal) -> Result<Option<Event>, BusError> {
        match signal {
            Signal::Changed { id, state } if self.wants(id) => {
                // A job discarded meanwhile: InterfacesRemoved follows and says so.
                let Some(job) = link.job_if_any(id).await? else {
                    return Ok(None);
                };
                let history = job.history.as_deref().unwrap_or_default();
                let next = self.next_change.get(&id).copied();
                if next.is_some_and(|next| next >= history.len()) {
                    return Ok(None);
                }
                let index = announced(history, next, state);
                self.next_change.insert(id, index + 1);
                Ok(state_event(job, index))
            }
            Signal::Progress { id, sent, size } if self.wants(id) => Ok(link
                .job_if_any(id)
                .await?
                .map(|job| progress_event(&job, sent, size))),
            Signal::Removed { id } if self.wants(id) => {
                self.next_change.remove(&id);
                Ok(Some(Event::Removed { id }))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use upq_proto::Metadata;

    fn job(state: JobState, history: Vec<(Option<JobState>, JobState, &str)>) -> JobView {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 11, 0, 0).unwrap();
        JobView {
            id: 3,
            file: "/v/a.mp4".into(),
            destination: "local".into(),
            state,
            size: 1000,
            bytes_sent: 400,
            bytes_transferred: 400,
            attempts: 1,
            stalls: 0,
            last_error: None,
            next_attempt_at: None,
            publish_at: None,
            hold: false,
            priority: 0,
            created_at: at,
            updated_at: at,
            metadata: Metadata::default(),
            remote: None,
            upload_url: None,
            content_hash: None,
            speed: Some(250),
            review_url: None,
            post: None,
            processing_progress: None,
            waiting: None,
            ignore_policies: false,
            actions: Vec::new(),
            bytes_in_flight: None,
            warning: None,
            history: Some(
                history
                    .into_iter()
                    .map(|(from, to, reason)| HistoryEntry {
                        at,
                        from,
                        to,
                        reason: reason.into(),
                    })
                    .collect(),
            ),
        }
    }

    fn released_and_published() -> JobView {
        job(
            JobState::Published,
            vec![
                (None, JobState::Queued, "queued"),
                (Some(JobState::Queued), JobState::Held, "held"),
                (Some(JobState::Held), JobState::Queued, "released"),
                (Some(JobState::Queued), JobState::Processing, "committing"),
                (Some(JobState::Processing), JobState::Published, "done"),
            ],
        )
    }

    #[test]
    fn each_signal_announces_the_next_change() {
        let job = released_and_published();
        let history = job.history.as_deref().unwrap();
        // The first signal seen was for the release: the latest entry reaching `queued`.
        assert_eq!(announced(history, None, Some(JobState::Queued)), 2);
        assert_eq!(announced(history, Some(3), Some(JobState::Processing)), 3);
        assert_eq!(announced(history, Some(4), Some(JobState::Published)), 4);
        // Lost signals: skip to the next entry in the signalled state.
        assert_eq!(announced(history, Some(2), Some(JobState::Published)), 4);
        // A state never reached, or unknown: the latest.
        assert_eq!(announced(history, Some(1), Some(JobState::Failed)), 4);
        assert_eq!(announced(history, None, None), 4);
    }

    #[test]
    fn state_events_carry_the_change_and_the_job_in_that_state() {
        let event = state_event(released_and_published(), 2).unwrap();
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"], "state");
        assert_eq!(json["from"], "held");
        assert_eq!(json["to"], "queued");
        assert_eq!(json["reason"], "released");
        assert_eq!(json["job"]["state"], "queued");
        assert_eq!(json["job"]["speed"], serde_json::Value::Null);
        assert!(json["job"].get("history").is_none(), "{json}");
        let latest = state_event(released_and_published(), 4).unwrap();
        let json = serde_json::to_value(&latest).unwrap();
        assert_eq!(
            (json["from"].as_str(), json["to"].as_str()),
            (Some("processing"), Some("published"))
        );
        assert_eq!(json["job"]["speed"], 250);
        assert!(state_event(released_and_published(), 5).is_none());
    }

    #[test]
    fn progress_splits_acknowledged_and_in_flight_bytes() {
        let uploading = job(JobState::Uploading, vec![]);
        let json = serde_json::to_value(progress_event(&uploading, 700, 1000)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "progress", "id": 3, "bytes_sent": 400,
                               "bytes_in_flight": 300, "size": 1000, "speed": 250})
        );
        let behind = progress_event(&uploading, 100, 1000);
        assert!(matches!(
            behind,
            Event::Progress {
                bytes_sent: 100,
                bytes_in_flight: 0,
                ..
            }
        ));
    }
}
