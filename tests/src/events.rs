//! `EventLog`: a `subscribe` connection whose state-change events are collected in the
//! background, so tests see every transition (and its `last_error`), however brief.
//!
//! Read-only: it sends nothing but the subscribe request.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use upq_proto::{JobError, JobState, JobView};

use crate::client::Client;
use crate::env::TestEnv;

/// One state change as it was pushed.
#[derive(Debug, Clone)]
pub struct Transition {
    /// When the event arrived here.
    pub received_at: DateTime<Utc>,
    pub id: u64,
    pub from: Option<JobState>,
    pub to: JobState,
    pub reason: String,
    /// The job right after the change.
    pub job: JobView,
}

pub struct EventLog {
    transitions: Arc<Mutex<Vec<Transition>>>,
    /// Every line the daemon sent, as it came.
    lines: Arc<Mutex<String>>,
    stream: std::os::unix::net::UnixStream,
    reader: Option<JoinHandle<()>>,
}

impl EventLog {
    /// Subscribes to every job's events on the environment's daemon.
    pub fn subscribe(env: &TestEnv) -> EventLog {
        let mut client = Client::connect(&env.socket_path()).expect("connect to subscribe");
        let reply = client
            .request("subscribe", Some(json!({})))
            .expect("subscribe");
        assert_eq!(reply["result"]["type"], "subscribed", "{reply}");
        let stream = client.stream().try_clone().expect("clone socket");
        stream.set_read_timeout(None).expect("no read timeout");
        let transitions = Arc::new(Mutex::new(Vec::new()));
        let sink = transitions.clone();
        let lines = Arc::new(Mutex::new(String::new()));
        let raw = lines.clone();
        let reader = std::thread::spawn(move || {
            while let Ok(Some(line)) = client.read_line() {
                {
                    let mut raw = raw.lock().unwrap_or_else(|e| e.into_inner());
                    raw.push_str(&line);
                    raw.push('\n');
                }
                let Ok(value) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if let Some(transition) = parse_transition(&value["result"]["data"]) {
                    sink.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(transition);
                }
            }
        });
        EventLog {
            transitions,
            lines,
            stream,
            reader: Some(reader),
        }
    }

    fn all(&self) -> MutexGuard<'_, Vec<Transition>> {
        self.transitions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every line received so far, as sent.
    pub fn raw_text(&self) -> String {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every state change of job `id` so far.
    pub fn transitions(&self, id: u64) -> Vec<Transition> {
        self.all().iter().filter(|t| t.id == id).cloned().collect()
    }

    /// The `last_error` of job `id` after each change into `retrying` or `failed`.
    pub fn errors(&self, id: u64) -> Vec<JobError> {
        self.transitions(id)
            .into_iter()
            .filter(|t| matches!(t.to, JobState::Retrying | JobState::Failed))
            .filter_map(|t| t.job.last_error)
            .collect()
    }

    /// Waits until job `id` went into `retrying` or `failed` with an error `accept` likes.
    pub fn wait_for_error(
        &self,
        id: u64,
        timeout: Duration,
        what: &str,
        accept: impl Fn(&JobError) -> bool,
    ) -> JobError {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(error) = self.errors(id).into_iter().find(|e| accept(e)) {
                return error;
            }
            if std::time::Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for job {id}: {what}; its changes:\n{}",
                    self.describe(id)
                );
            }
            std::thread::sleep(crate::wait::POLL_INTERVAL);
        }
    }

    /// All transitions as text, for assertion messages.
    pub fn describe(&self, id: u64) -> String {
        self.transitions(id)
            .iter()
            .map(|t| {
                let from = t.from.map_or("-".to_string(), |s| s.to_string());
                let error = t
                    .job
                    .last_error
                    .as_ref()
                    .map(|e| format!(" [{}: {}]", e.kind, e.message))
                    .unwrap_or_default();
                format!(
                    "  {} {from} -> {}: {}{error}",
                    t.received_at.format("%H:%M:%S%.3f"),
                    t.to,
                    t.reason
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn parse_transition(data: &Value) -> Option<Transition> {
    if data["kind"] != "state" {
        return None;
    }
    Some(Transition {
        received_at: Utc::now(),
        id: data["id"].as_u64()?,
        from: serde_json::from_value(data["from"].clone()).ok()?,
        to: serde_json::from_value(data["to"].clone()).ok()?,
        reason: data["reason"].as_str()?.to_string(),
        job: serde_json::from_value(data["job"].clone()).ok()?,
    })
}
