//! The D-Bus door: `dev.upq.upq1` on the session bus, a manager object and one object per
//! job, mirrored from the service's events.
//!
//! An adapter like the socket: typed D-Bus values in, `Service` calls, named errors out.
//! Like the socket it answers only the user upqd runs as, whatever the bus policy allows.
//! Here: the connection, the name and the error names; each object has its own module, and
//! the names come from `upq_proto::dbus`.

mod convert;
mod job;
mod manager;
mod mirror;
mod objects;
mod post;

use tokio_util::sync::CancellationToken;
use upq_proto::dbus::{BUS_NAME, MANAGER_PATH};
use upq_proto::{ErrorCode, Event};
use zbus::object_server::SignalEmitter;
use zbus::Connection;

use crate::ipc::caller::{Gate, Refused};
use crate::service::{Service, ServiceError};

use self::manager::Manager;
use self::mirror::{add_object, mirror, update_post};
use self::objects::Objects;

/// Errors as D-Bus clients see them: `dev.upq.upq1.Error.NotFound`, ...
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "dev.upq.upq1.Error")]
pub enum BusError {
    #[zbus(error)]
    ZBus(zbus::Error),
    NotFound(String),
    InvalidState(String),
    TooLate(String),
    BadRequest(String),
    /// Understood but refused: a destination's preflight, a bad value.
    Refused(String),
    PermissionDenied(String),
    /// Anything else (an internal error).
    Failed(String),
}

impl From<Refused> for BusError {
    fn from(refused: Refused) -> BusError {
        BusError::PermissionDenied(refused.to_string())
    }
}

impl From<ServiceError> for BusError {
    fn from(e: ServiceError) -> BusError {
        match e.code {
            ErrorCode::NotFound => BusError::NotFound(e.message),
            ErrorCode::InvalidState => BusError::InvalidState(e.message),
            ErrorCode::TooLate => BusError::TooLate(e.message),
            ErrorCode::BadRequest | ErrorCode::UnknownDestination | ErrorCode::File => {
                BusError::BadRequest(e.message)
            }
            // The bus has no name of its own for a full data folder; the message says so.
            ErrorCode::Refused | ErrorCode::NoSpace => BusError::Refused(e.message),
            ErrorCode::PermissionDenied => BusError::PermissionDenied(e.message),
            _ => BusError::Failed(e.message),
        }
    }
}

/// The D-Bus door, connected and named, before it starts following the queue.
pub struct Bus {
    connection: Connection,
    gate: Gate,
    events: tokio::sync::broadcast::Receiver<Event>,
}

/// Connects to the session bus and owns `dev.upq.upq1`. Without a bus (or with the name
/// taken) it logs one warning and returns `None`: the socket keeps working.
pub async fn connect(service: &Service) -> Option<Bus> {
    // Subscribe first so no change between the initial listing and the mirror is lost.
    let events = service.subscribe();
    match serve_objects(service).await {
        Ok((connection, gate)) => {
            for job in service.list(true).unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read the jobs to publish them on D-Bus");
                Vec::new()
            }) {
                add_object(&connection, &gate, service, job).await;
            }
            for post in service.post_ids().unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read the posts to publish them on D-Bus");
                Vec::new()
            }) {
                update_post(&connection, &gate, service, post).await;
            }
            tracing::info!(name = BUS_NAME, "serving on the session bus");
            Some(Bus {
                connection,
                gate,
                events,
            })
        }
        Err(e) => {
            tracing::warn!(error = %e, "D-Bus control is off (no session bus, or {BUS_NAME} is taken); the socket works as usual");
            None
        }
    }
}

/// Connects, puts the manager and its object manager in place, then takes the name, so no
/// call arrives before the objects that answer it.
async fn serve_objects(service: &Service) -> zbus::Result<(Connection, Gate)> {
    let connection = Connection::session().await?;
    let gate = Gate::new(&connection).await?;
    let server = connection.object_server();
    server
        .at(
            MANAGER_PATH,
            Manager {
                service: service.clone(),
                gate: gate.clone(),
            },
        )
        .await?;
    server
        .at(
            MANAGER_PATH,
            Objects {
                service: service.clone(),
                gate: gate.clone(),
            },
        )
        .await?;
    connection.request_name(BUS_NAME).await?;
    Ok((connection, gate))
}

impl Bus {
    /// Keeps the bus objects in step with the queue until shutdown.
    pub async fn serve(self, service: Service, shutdown: CancellationToken) {
        let logins = announce_logins(&self.connection, &service, shutdown.clone());
        let jobs = mirror(
            &self.connection,
            &self.gate,
            &service,
            self.events,
            shutdown,
        );
        tokio::join!(logins, jobs);
    }
}

/// Emits `LoginFinished` for every sign-in that ends, until shutdown.
async fn announce_logins(connection: &Connection, service: &Service, shutdown: CancellationToken) {
    let mut finished = service.inner.accounts.finished();
    let Ok(emitter) = SignalEmitter::new(connection, MANAGER_PATH) else {
        return;
    };
    loop {
        let outcome = tokio::select! {
            outcome = finished.recv() => outcome,
            _ = shutdown.cancelled() => return,
        };
        match outcome {
            Ok(outcome) => {
                if let Err(e) = Manager::login_finished(
                    &emitter,
                    &outcome.destination,
                    outcome.ok,
                    &outcome.message,
                )
                .await
                {
                    tracing::debug!(error = %e, "LoginFinished not sent");
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use zbus::object_server::Interface;
    use zbus::zvariant::Type;

    use super::convert::JobSummary;
    use super::job::JobObject;
    use super::*;

    /// zbus's attributes need literals: they must say what `upq_proto::dbus` says.
    #[test]
    fn the_literals_are_the_shared_names() {
        use upq_proto::dbus as names;
        assert_eq!(Manager::name().as_str(), names::MANAGER_INTERFACE);
        assert_eq!(JobObject::name().as_str(), names::JOB_INTERFACE);
        assert_eq!(Objects::name().as_str(), names::OBJECT_MANAGER_INTERFACE);
        let error = BusError::NotFound("no job 9".into());
        assert_eq!(
            zbus::DBusError::name(&error).as_str(),
            format!("{}NotFound", names::ERROR_PREFIX)
        );
        assert_eq!(
            JobSummary::SIGNATURE.to_string(),
            names::JOB_SUMMARY_SIGNATURE
        );
    }
}
