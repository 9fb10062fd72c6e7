//! Talking to systemd: READY once the doors are open, a STATUS line that follows the
//! queue, WATCHDOG pings from the runtime itself, STOPPING on the way out.
//!
//! Does nothing when NOTIFY_SOCKET is unset (not started by systemd).

use std::collections::BTreeMap;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use upq_proto::{Event, JobState};

use crate::service::Service;

/// "2 uploading, 5 queued, 1 held", or "idle".
pub fn status_line(counts: &BTreeMap<String, u64>) -> String {
    const SHOWN: [JobState; 7] = [
        JobState::Uploading,
        JobState::Processing,
        JobState::Publishing,
        JobState::Retrying,
        JobState::Queued,
        JobState::Paused,
        JobState::Held,
    ];
    let parts: Vec<String> = SHOWN
        .iter()
        .filter_map(|state| {
            let count = counts.get(state.as_str()).copied().unwrap_or(0);
            (count > 0).then(|| format!("{count} {state}"))
        })
        .collect();
    if parts.is_empty() {
        "idle".to_string()
    } else {
        parts.join(", ")
    }
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "cannot notify the service manager");
    }
}

/// Runs until shutdown. Call once the socket (and the bus) are serving.
pub async fn run(service: Service, shutdown: CancellationToken) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let mut events = service.subscribe();
    let mut status = status_line(&service.status().counts);
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
    // Ping at half the watchdog period; each ping first takes the queue's lock, so a
    // wedged runtime or a deadlock stops the pings and lets systemd restart us.
    let period = sd_notify::watchdog_enabled().map(|usec| usec / 2);
    let mut watchdog = period.map(|period| {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    loop {
        let ping = async {
            match watchdog.as_mut() {
                Some(interval) => {
                    interval.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ping => {
                let _ = service.status();
                send(&[NotifyState::Watchdog]);
            }
            event = events.recv() => {
                if matches!(event, Ok(Event::Progress { .. })) {
                    continue;
                }
                let now = status_line(&service.status().counts);
                if now != status {
                    status = now;
                    send(&[NotifyState::Status(&status)]);
                }
            }
            _ = shutdown.cancelled() => {
                send(&[NotifyState::Stopping]);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_only_what_is_there() {
        let mut counts: BTreeMap<String, u64> = JobState::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        assert_eq!(status_line(&counts), "idle");
        counts.insert("uploading".into(), 2);
        counts.insert("queued".into(), 5);
        counts.insert("held".into(), 1);
        counts.insert("published".into(), 9);
        assert_eq!(status_line(&counts), "2 uploading, 5 queued, 1 held");
    }
}
