//! A recording `org.freedesktop.Notifications` server on a test's private session bus (its own
//! tokio runtime), and `upqd` started with no bus at all and without `--no-dbus`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use zbus::object_server::SignalEmitter;
use zbus::OwnedVariant;

use crate::bus::PrivateBus;

/// The notification server's well-known name and object.
pub const NOTIFICATIONS_NAME: &str = "org.freedesktop.Notifications";
pub const NOTIFICATIONS_PATH: &str = "/org/freedesktop/Notifications";

/// Capabilities of a server that shows actions as buttons.
pub const WITH_ACTIONS: &[&str] = &["body", "actions"];
/// Capabilities of a server without action buttons.
pub const WITHOUT_ACTIONS: &[&str] = &["body", "body-markup"];

/// A `Notify` call as the server received it.
#[derive(Debug, Clone)]
pub struct NotifyCall {
    pub app_name: String,
    pub replaces_id: u32,
    pub app_icon: String,
    pub summary: String,
    pub body: String,
    /// Alternating keys and labels: `["cancel", "Cancel", ...]`.
    pub actions: Vec<String>,
    /// Hint values in their D-Bus text form.
    pub hints: BTreeMap<String, String>,
    pub expire_timeout: i32,
    /// The id this server answered with.
    pub id: u32,
}

impl NotifyCall {
    /// The action keys (every other entry of `actions`, from the first).
    pub fn action_keys(&self) -> Vec<&str> {
        self.actions.iter().step_by(2).map(String::as_str).collect()
    }
}

/// One method call on the notification server.
#[derive(Debug, Clone)]
pub enum Call {
    GetCapabilities,
    GetServerInformation,
    Notify(NotifyCall),
    CloseNotification(u32),
}

/// A call and when it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub call: Call,
}

impl Recorded {
    /// The `Notify` arguments, when this is a `Notify` call.
    pub fn notify(&self) -> Option<&NotifyCall> {
        match &self.call {
            Call::Notify(notify) => Some(notify),
            _ => None,
        }
    }
}

struct Shared {
    capabilities: Vec<String>,
    next_id: AtomicU32,
    calls: Mutex<Vec<Recorded>>,
    /// Set by [`NotificationServer::stop_answering_notify`]: `Notify` is recorded, never answered.
    silent: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn calls(&self) -> MutexGuard<'_, Vec<Recorded>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, call: Call) {
        self.calls().push(Recorded {
            at: Instant::now(),
            call,
        });
    }
}

/// The exported object.
struct Notifications {
    shared: Arc<Shared>,
}

#[zbus::interface(interface = "org.freedesktop.Notifications")]
impl Notifications {
    async fn get_capabilities(&self) -> Vec<String> {
        self.shared.record(Call::GetCapabilities);
        self.shared.capabilities.clone()
    }

    #[zbus(out_args("name", "vendor", "version", "spec_version"))]
    async fn get_server_information(&self) -> (String, String, String, String) {
        self.shared.record(Call::GetServerInformation);
        (
            "upq-test-notifications".into(),
            "upq".into(),
            "1".into(),
            "1.2".into(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    async fn notify(
        &self,
        app_name: String,
        replaces_id: u32,
        app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        hints: HashMap<String, OwnedVariant>,
        expire_timeout: i32,
    ) -> u32 {
        // The spec: a replacement keeps its id; anything else gets a new one.
        let id = if replaces_id != 0 {
            replaces_id
        } else {
            self.shared.next_id.fetch_add(1, Ordering::SeqCst)
        };
        let hints = hints
            .iter()
            .map(|(key, value)| (key.clone(), value.to_string()))
            .collect();
        self.shared.record(Call::Notify(NotifyCall {
            app_name,
            replaces_id,
            app_icon,
            summary,
            body,
            actions,
            hints,
            expire_timeout,
            id,
        }));
        if self.shared.silent.load(Ordering::SeqCst) {
            // A wedged notification server: the caller waits for a reply that never comes.
            std::future::pending::<()>().await;
        }
        id
    }

    async fn close_notification(
        &self,
        id: u32,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> zbus::fdo::Result<()> {
        self.shared.record(Call::CloseNotification(id));
        // Reason 3: closed by a call to CloseNotification.
        Notifications::notification_closed(&emitter, id, 3).await?;
        Ok(())
    }

    #[zbus(signal)]
    async fn action_invoked(
        emitter: &SignalEmitter<'_>,
        id: u32,
        action_key: &str,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn notification_closed(
        emitter: &SignalEmitter<'_>,
        id: u32,
        reason: u32,
    ) -> zbus::Result<()>;
}

/// A notification server on a [`PrivateBus`] that records every call.
pub struct NotificationServer {
    shared: Arc<Shared>,
    connection: Option<zbus::Connection>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl NotificationServer {
    /// Owns `org.freedesktop.Notifications` on `bus`, advertising `capabilities`.
    pub fn start(bus: &PrivateBus, capabilities: &[&str]) -> NotificationServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("notifications")
            .enable_all()
            .build()
            .expect("notification server runtime");
        let shared = Arc::new(Shared {
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
            next_id: AtomicU32::new(1),
            calls: Mutex::new(Vec::new()),
            silent: std::sync::atomic::AtomicBool::new(false),
        });
        let object = Notifications {
            shared: shared.clone(),
        };
        let connection = runtime
            .block_on(
                zbus::connection::Builder::address(bus.address())
                    .serve_at(NOTIFICATIONS_PATH, object)
                    .name(NOTIFICATIONS_NAME)
                    .build(),
            )
            .unwrap_or_else(|e| panic!("serve {NOTIFICATIONS_NAME} on {}: {e}", bus.address()));
        NotificationServer {
            shared,
            connection: Some(connection),
            runtime: Some(runtime),
        }
    }

    fn connection(&self) -> &zbus::Connection {
        self.connection.as_ref().expect("the server is running")
    }

    fn block_on<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        self.runtime
            .as_ref()
            .expect("the server is running")
            .block_on(future)
    }

    /// From now on `Notify` calls are recorded but never answered.
    pub fn stop_answering_notify(&self) {
        self.shared.silent.store(true, Ordering::SeqCst);
    }

    /// Emits `ActionInvoked(id, key)`, as a click on a notification's button does.
    pub fn invoke_action(&self, id: u32, key: &str) {
        let connection = self.connection().clone();
        self.block_on(async move {
            let emitter = SignalEmitter::new(&connection, NOTIFICATIONS_PATH)?;
            Notifications::action_invoked(&emitter, id, key).await
        })
        .unwrap_or_else(|e| panic!("emit ActionInvoked({id}, {key:?}): {e}"));
    }

    /// Emits `NotificationClosed(id, reason)` (1 expired, 2 dismissed, 3 closed by a call).
    pub fn close_from_server(&self, id: u32, reason: u32) {
        let connection = self.connection().clone();
        self.block_on(async move {
            let emitter = SignalEmitter::new(&connection, NOTIFICATIONS_PATH)?;
            Notifications::notification_closed(&emitter, id, reason).await
        })
        .unwrap_or_else(|e| panic!("emit NotificationClosed({id}, {reason}): {e}"));
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<Recorded> {
        self.shared.calls().clone()
    }

    /// The `Notify` calls so far, with when each arrived.
    pub fn notifies(&self) -> Vec<(Instant, NotifyCall)> {
        self.calls()
            .into_iter()
            .filter_map(|r| r.notify().cloned().map(|n| (r.at, n)))
            .collect()
    }

    /// How many times `GetCapabilities` was called.
    pub fn capability_queries(&self) -> usize {
        self.calls()
            .iter()
            .filter(|r| matches!(r.call, Call::GetCapabilities))
            .count()
    }

    /// The ids passed to `CloseNotification`, with when each call arrived.
    pub fn closed(&self) -> Vec<(Instant, u32)> {
        self.calls()
            .into_iter()
            .filter_map(|r| match r.call {
                Call::CloseNotification(id) => Some((r.at, id)),
                _ => None,
            })
            .collect()
    }

    /// Waits for a call `accept` likes and returns it.
    pub fn wait_for_call(
        &self,
        timeout: Duration,
        what: &str,
        accept: impl Fn(&Recorded) -> bool,
    ) -> Recorded {
        let explain = || format!("a notification call: {what}; calls:\n{}", self.describe());
        crate::wait::wait_for_first(timeout, explain, || self.calls(), accept)
    }

    /// Waits for a `Notify` call whose arguments `accept` likes.
    pub fn wait_for_notify(
        &self,
        timeout: Duration,
        what: &str,
        accept: impl Fn(&NotifyCall) -> bool,
    ) -> (Instant, NotifyCall) {
        let found = self.wait_for_call(timeout, what, |r| r.notify().is_some_and(&accept));
        let notify = found.notify().cloned().expect("a Notify call");
        (found.at, notify)
    }

    /// Every call as text, for assertion messages.
    pub fn describe(&self) -> String {
        let calls = self.calls();
        let start = calls.first().map(|r| r.at);
        calls
            .iter()
            .map(|r| {
                let at = start.map_or(0.0, |s| r.at.duration_since(s).as_secs_f64());
                format!("  +{at:.3}s {:?}", r.call)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for NotificationServer {
    fn drop(&mut self) {
        let connection = self.connection.take();
        if let Some(runtime) = self.runtime.take() {
            // The connection's tasks live on this runtime: let go of it there, then stop it.
            {
                let _context = runtime.enter();
                drop(connection);
            }
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}
