//! Desktop notifications through `org.freedesktop.Notifications` on the session bus:
//! one per stall episode (updated in place, with Cancel and Retry actions), and the
//! events the config asks for. Without a bus or a server it logs once and does nothing.
//!
//! Knows job ids, files and messages only; acting on a clicked action is the caller's.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use zbus::Variant as Value;

#[zbus::proxy(
    interface = "org.freedesktop.Notifications",
    default_service = "org.freedesktop.Notifications",
    default_path = "/org/freedesktop/Notifications"
)]
trait Notifications {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: &str,
        replaces_id: u32,
        app_icon: &str,
        summary: &str,
        body: &str,
        actions: &[&str],
        hints: HashMap<&str, Value<'_>>,
        expire_timeout: i32,
    ) -> zbus::Result<u32>;

    fn close_notification(&self, id: u32) -> zbus::Result<()>;

    fn get_capabilities(&self) -> zbus::Result<Vec<String>>;

    #[zbus(signal)]
    fn action_invoked(&self, id: u32, action_key: String) -> zbus::Result<()>;

    #[zbus(signal)]
    fn notification_closed(&self, id: u32, reason: u32) -> zbus::Result<()>;
}

const APP_NAME: &str = "upq";
/// A notification server that takes longer than this is treated as absent for that call:
/// a worker reporting a stall waits on it, and must not wait for ever.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One call to the notification server, bounded by [`CALL_TIMEOUT`].
async fn bounded<T>(call: impl std::future::Future<Output = zbus::Result<T>>) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "the notification server did not answer within {} s",
            CALL_TIMEOUT.as_secs()
        )),
    }
}
const ACTION_CANCEL: &str = "cancel";
const ACTION_RETRY: &str = "retry";
const ACTION_SIGNIN: &str = "signin";

/// What the user clicked on a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Cancel(u64),
    Retry(u64),
    /// Start the sign-in of this destination's account.
    SignIn(String),
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    notification: u32,
    since: DateTime<Utc>,
}

struct Live {
    proxy: NotificationsProxy<'static>,
    actions: bool,
    /// Open stall episodes by job.
    episodes: Mutex<HashMap<u64, Episode>>,
    /// Which job each shown notification is about.
    jobs_by_notification: Mutex<HashMap<u32, u64>>,
    /// The shown sign-in notification of each destination, one per account.
    signins: Mutex<HashMap<String, u32>>,
    /// Set once the first failed call has been logged as a warning.
    warned: AtomicBool,
}

/// The desktop notifier; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    events: Arc<std::sync::RwLock<HashSet<String>>>,
    live: Option<Arc<Live>>,
}

fn human_duration(seconds: i64) -> String {
    match seconds {
        s if s < 90 => format!("{s} s"),
        s if s < 90 * 60 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

fn display_name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string())
}

impl Notifier {
    /// A notifier that shows nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            events: Arc::default(),
            live: None,
        }
    }

    /// Connects to the session bus. `events` are the config's `notify` list.
    pub async fn connect(events: &[String]) -> Notifier {
        let events = Arc::new(std::sync::RwLock::new(events.iter().cloned().collect()));
        let connection = match zbus::Connection::session().await {
            Ok(connection) => connection,
            Err(e) => {
                tracing::warn!(error = %e, "no D-Bus session bus: desktop notifications and D-Bus control are off; the socket works as usual");
                return Notifier { events, live: None };
            }
        };
        let proxy = match NotificationsProxy::new(&connection).await {
            Ok(proxy) => proxy,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the notification service: desktop notifications are off");
                return Notifier { events, live: None };
            }
        };
        let (actions, warned) = match bounded(proxy.get_capabilities()).await {
            Ok(capabilities) => (capabilities.iter().any(|c| c == "actions"), false),
            Err(e) => {
                tracing::warn!(error = %e, "no notification server answers on the session bus; notifications will be tried when one does");
                (false, true)
            }
        };
        Notifier {
            events,
            live: Some(Arc::new(Live {
                proxy,
                actions,
                episodes: Mutex::default(),
                jobs_by_notification: Mutex::default(),
                signins: Mutex::default(),
                warned: AtomicBool::new(warned),
            })),
        }
    }

    /// Whether a session bus was reached at start.
    pub fn has_bus(&self) -> bool {
        self.live.is_some()
    }

    fn wants(&self, event: &str) -> Option<Arc<Live>> {
        self.live.clone().filter(|_| self.enabled(event))
    }

    fn enabled(&self, event: &str) -> bool {
        self.events
            .read()
            .is_ok_and(|events| events.contains(event))
    }

    /// Takes the `notify` list of a reloaded config.
    pub fn set_events(&self, events: &[String]) {
        if let Ok(mut current) = self.events.write() {
            *current = events.iter().cloned().collect();
        }
    }

    /// Clicked actions, for as long as the bus connection lives.
    pub async fn actions(&self) -> Option<impl futures::Stream<Item = Action> + Send + 'static> {
        let live = self.live.clone()?;
        let stream = match live.proxy.receive_action_invoked().await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for notification actions");
                return None;
            }
        };
        Some(stream.filter_map(move |signal| {
            let live = live.clone();
            async move {
                let args = signal.args().ok()?;
                if args.action_key == ACTION_SIGNIN {
                    let signins = live.signins.lock().ok()?;
                    let (destination, _) = signins.iter().find(|(_, &n)| n == args.id)?;
                    return Some(Action::SignIn(destination.clone()));
                }
                let job = *live.jobs_by_notification.lock().ok()?.get(&args.id)?;
                match args.action_key.as_str() {
                    ACTION_CANCEL => Some(Action::Cancel(job)),
                    ACTION_RETRY => Some(Action::Retry(job)),
                    _ => None,
                }
            }
        }))
    }

    /// Shows (or updates) the stall notification of job `id`.
    pub async fn stalled(&self, id: u64, file: &Path, message: &str) {
        let Some(live) = self.wants("stalled") else {
            return;
        };
        let now = Utc::now();
        let episode = live.episodes.lock().ok().and_then(|e| e.get(&id).copied());
        let since = episode.map_or(now, |e| e.since);
        let body = format!(
            "{} has made no progress for {}: {message}. upq keeps retrying.",
            file.display(),
            human_duration((now - since).num_seconds().max(0) + stall_grace(message))
        );
        let actions: &[&str] = if live.actions {
            &[ACTION_CANCEL, "Cancel", ACTION_RETRY, "Retry now"]
        } else {
            &[]
        };
        let summary = format!("Upload stalled: {}", display_name(file));
        let replaces = episode.map_or(0, |e| e.notification);
        if let Some(notification) = live.show(replaces, &summary, &body, actions, 2).await {
            if let Ok(mut episodes) = live.episodes.lock() {
                episodes.insert(
                    id,
                    Episode {
                        notification,
                        since,
                    },
                );
            }
            if let Ok(mut jobs) = live.jobs_by_notification.lock() {
                jobs.insert(notification, id);
            }
        }
    }

    /// Ends job `id`'s stall episode, closing its notification.
    pub async fn recovered(&self, id: u64) {
        let Some(live) = self.live.clone() else {
            return;
        };
        let episode = live.episodes.lock().ok().and_then(|mut e| e.remove(&id));
        if let Some(episode) = episode {
            if let Ok(mut jobs) = live.jobs_by_notification.lock() {
                jobs.remove(&episode.notification);
            }
            if let Err(e) = bounded(live.proxy.close_notification(episode.notification)).await {
                tracing::debug!(error = %e, "closing a notification failed");
            }
        }
    }

    /// A job failed; replaces its stall notification if it had one.
    pub async fn failed(&self, id: u64, file: &Path, message: &str) {
        let Some(live) = self.live.clone() else {
            return;
        };
        let episode = live.episodes.lock().ok().and_then(|mut e| e.remove(&id));
        if !self.enabled("failed") {
            if episode.is_some() {
                self.close(&live, episode).await;
            }
            return;
        }
        let summary = format!("Upload failed: {}", display_name(file));
        let body = format!("{}: {message}", file.display());
        let replaces = episode.map_or(0, |e| e.notification);
        live.show(replaces, &summary, &body, &[], 2).await;
    }

    async fn close(&self, live: &Live, episode: Option<Episode>) {
        if let Some(episode) = episode {
            let _ = bounded(live.proxy.close_notification(episode.notification)).await;
        }
    }

    pub async fn published(&self, id: u64, file: &Path, location: Option<&str>) {
        self.recovered(id).await;
        let Some(live) = self.wants("published") else {
            return;
        };
        let summary = format!("Published: {}", display_name(file));
        let body = location.map_or_else(|| file.display().to_string(), str::to_owned);
        live.show(0, &summary, &body, &[], 1).await;
    }

    pub async fn held(&self, id: u64, file: &Path) {
        self.recovered(id).await;
        let Some(live) = self.wants("held") else {
            return;
        };
        let summary = format!("Ready for review: {}", display_name(file));
        let body = format!(
            "{} is uploaded and held before publication; release it with `upqctl publish {id}`",
            file.display()
        );
        live.show(0, &summary, &body, &[], 1).await;
    }

    /// Jobs of `destination` wait for a sign-in: one notification per account, updated in
    /// place as the count changes, with a Sign in action.
    pub async fn signin_needed(&self, destination: &str, provider: &str, waiting: usize) {
        let Some(live) = self.live.clone() else {
            return;
        };
        let replaces = live
            .signins
            .lock()
            .ok()
            .and_then(|s| s.get(destination).copied())
            .unwrap_or(0);
        let uploads = if waiting == 1 {
            "1 upload".to_string()
        } else {
            format!("{waiting} uploads")
        };
        let summary = format!("Sign in to {provider} again to continue {uploads}");
        let body = format!(
            "The uploads to '{destination}' wait until you sign in; nothing is lost. \
             Sign in here or run `upqctl login {destination}`."
        );
        let actions: &[&str] = if live.actions {
            &[ACTION_SIGNIN, "Sign in"]
        } else {
            &[]
        };
        if let Some(notification) = live.show(replaces, &summary, &body, actions, 2).await {
            if let Ok(mut signins) = live.signins.lock() {
                signins.insert(destination.to_string(), notification);
            }
        }
    }

    /// `destination` is signed in again: its sign-in notification goes away.
    pub async fn signed_in(&self, destination: &str) {
        let Some(live) = self.live.clone() else {
            return;
        };
        let shown = live
            .signins
            .lock()
            .ok()
            .and_then(|mut s| s.remove(destination));
        if let Some(notification) = shown {
            let _ = bounded(live.proxy.close_notification(notification)).await;
        }
    }

    /// Processing takes longer than `processing_timeout`; the job goes on waiting.
    pub async fn processing_slow(&self, file: &Path, waited_secs: i64) {
        let Some(live) = self.live.clone() else {
            return;
        };
        let summary = format!("Still processing: {}", display_name(file));
        let body = format!(
            "The destination has been processing {} for {}; upq keeps waiting.",
            file.display(),
            human_duration(waited_secs)
        );
        live.show(0, &summary, &body, &[], 1).await;
    }
}

/// The first stall of an episode is detected `stall_timeout` after progress stopped;
/// the message says how long that was, so the notification counts it in.
fn stall_grace(message: &str) -> i64 {
    message
        .strip_prefix("no progress for ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl Live {
    /// Sends one notification; returns its id. Failures are logged once as a warning.
    async fn show(
        &self,
        replaces: u32,
        summary: &str,
        body: &str,
        actions: &[&str],
        urgency: u8,
    ) -> Option<u32> {
        let hints = HashMap::from([("urgency", Value::U8(urgency))]);
        match bounded(
            self.proxy
                .notify(APP_NAME, replaces, "", summary, body, actions, hints, -1),
        )
        .await
        {
            Ok(id) => Some(id),
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "showing a desktop notification failed; further failures are logged at debug level");
                } else {
                    tracing::debug!(error = %e, "showing a desktop notification failed");
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(42), "42 s");
        assert_eq!(human_duration(600), "10 min");
        assert_eq!(human_duration(3 * 3600 + 120), "3 h 2 min");
    }

    #[test]
    fn the_first_stall_counts_the_silent_time() {
        assert_eq!(
            stall_grace("no progress for 30 s (last speed 1.0 MiB/s)"),
            30
        );
        assert_eq!(stall_grace("only 1.0 KiB/s over the last 30 s"), 0);
    }
}
