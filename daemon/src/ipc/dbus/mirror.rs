//! Keeps the bus in step with the queue: job objects appear, change and go as the service's
//! events say, and the manager's signals follow them. Reads events only; never acts on jobs.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use upq_proto::dbus::{job_path, post_path, MANAGER_PATH};
use upq_proto::{Event, JobView};
use zbus::Connection;

use crate::ipc::caller::Gate;
use crate::service::Service;

use super::job::JobObject;
use super::manager::Manager;
use super::post::{PostObject, PostSummary};

/// At most this many Progress signals per second and job.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

pub(super) async fn add_object(
    connection: &Connection,
    gate: &Gate,
    service: &Service,
    view: JobView,
) {
    let path = job_path(view.id);
    let object = JobObject {
        service: service.clone(),
        gate: gate.clone(),
        view,
    };
    if let Err(e) = connection.object_server().at(path.as_str(), object).await {
        tracing::warn!(error = %e, %path, "cannot publish a job on D-Bus");
    }
}

/// Follows the service's events: job objects, their properties, and the manager's signals.
pub(super) async fn mirror(
    connection: &Connection,
    gate: &Gate,
    service: &Service,
    mut events: tokio::sync::broadcast::Receiver<Event>,
    shutdown: CancellationToken,
) {
    let manager = match connection
        .object_server()
        .interface::<_, Manager>(MANAGER_PATH)
        .await
    {
        Ok(manager) => manager,
        Err(e) => {
            tracing::error!(error = %e, "the D-Bus manager object vanished");
            return;
        }
    };
    let mut last_progress: HashMap<u64, Instant> = HashMap::new();
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = shutdown.cancelled() => return,
        };
        let event = match event {
            Ok(event) => event,
            Err(RecvError::Lagged(_)) => {
                // Missed changes: bring every object up to date.
                for job in service.list(true).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "cannot read the jobs to bring D-Bus up to date");
                    Vec::new()
                }) {
                    update_object(connection, gate, service, job).await;
                }
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let emitter = manager.signal_emitter();
        match event {
            Event::State { id, to, job, .. } => {
                let post = job.post;
                update_object(connection, gate, service, *job).await;
                if let Some(post) = post {
                    update_post(connection, gate, service, post).await;
                }
                let _ = Manager::job_changed(emitter, id, to.as_str()).await;
                last_progress.remove(&id);
            }
            Event::Progress {
                id,
                bytes_sent,
                bytes_in_flight,
                size,
                ..
            } => {
                let now = Instant::now();
                let due = last_progress
                    .get(&id)
                    .is_none_or(|last| now.duration_since(*last) >= PROGRESS_EVERY);
                if due || bytes_sent == size {
                    last_progress.insert(id, now);
                    let _ =
                        Manager::progress(emitter, id, bytes_sent + bytes_in_flight, size).await;
                    update_bytes_sent(connection, id, bytes_sent).await;
                }
            }
            Event::Removed { id } => {
                last_progress.remove(&id);
                let path = job_path(id);
                let _ = connection
                    .object_server()
                    .remove::<JobObject, _>(path.as_str())
                    .await;
            }
            // The job objects carry no processing figures; GetJob's view has them.
            Event::Processing { .. } | Event::Lagged { .. } | Event::Unknown => {}
        }
    }
}

/// Publishes post `id`'s object, or brings it up to date and announces what changed.
pub(super) async fn update_post(
    connection: &Connection,
    gate: &Gate,
    service: &Service,
    id: upq_proto::PostId,
) {
    let summary = match service.post_view(id, false) {
        Ok(view) => PostSummary::from(&view),
        Err(e) => {
            tracing::warn!(post = %id, error = %e, "cannot read a post for D-Bus");
            return;
        }
    };
    let path = post_path(id);
    let object = match connection
        .object_server()
        .interface::<_, PostObject>(path.as_str())
        .await
    {
        Ok(object) => object,
        Err(_) => {
            let object = PostObject {
                service: service.clone(),
                gate: gate.clone(),
                summary,
            };
            if let Err(e) = connection.object_server().at(path.as_str(), object).await {
                tracing::warn!(error = %e, %path, "cannot publish a post on D-Bus");
            }
            return;
        }
    };
    let old = {
        let mut guard = object.get_mut().await;
        std::mem::replace(&mut guard.summary, summary)
    };
    let guard = object.get().await;
    let emitter = object.signal_emitter();
    if old.state != guard.summary.state {
        let _ = guard.state_changed(emitter).await;
    }
    if old.jobs != guard.summary.jobs {
        let _ = guard.jobs_changed(emitter).await;
    }
    if old.title != guard.summary.title {
        let _ = guard.title_changed(emitter).await;
    }
}

/// Moves a job object's BytesSent forward only; other properties follow state events.
async fn update_bytes_sent(connection: &Connection, id: u64, bytes_sent: u64) {
    let path = job_path(id);
    let Ok(object) = connection
        .object_server()
        .interface::<_, JobObject>(path.as_str())
        .await
    else {
        return;
    };
    let changed = {
        let mut guard = object.get_mut().await;
        let changed = guard.view.bytes_sent != bytes_sent;
        guard.view.bytes_sent = bytes_sent;
        changed
    };
    if changed {
        let guard = object.get().await;
        let _ = guard.bytes_sent_changed(object.signal_emitter()).await;
    }
}

/// Replaces a job object's view and announces the properties that changed.
async fn update_object(connection: &Connection, gate: &Gate, service: &Service, view: JobView) {
    let path = job_path(view.id);
    let object = match connection
        .object_server()
        .interface::<_, JobObject>(path.as_str())
        .await
    {
        Ok(object) => object,
        Err(_) => return add_object(connection, gate, service, view).await,
    };
    let old = {
        let mut guard = object.get_mut().await;
        std::mem::replace(&mut guard.view, view)
    };
    let guard = object.get().await;
    let new = &guard.view;
    let emitter = object.signal_emitter();
    if old.state != new.state {
        let _ = guard.state_changed(emitter).await;
    }
    if old.bytes_sent != new.bytes_sent {
        let _ = guard.bytes_sent_changed(emitter).await;
    }
    if old.attempts != new.attempts {
        let _ = guard.attempts_changed(emitter).await;
    }
    if old.last_error != new.last_error {
        let _ = guard.last_error_changed(emitter).await;
    }
    if old.publish_at != new.publish_at {
        let _ = guard.publish_at_changed(emitter).await;
    }
    if old.hold != new.hold {
        let _ = guard.hold_changed(emitter).await;
    }
    if old.size != new.size {
        let _ = guard.size_changed(emitter).await;
    }
}
