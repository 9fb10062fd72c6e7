//! The D-Bus door: `dev.upq.upq1` on the session bus, a manager object and one object per
//! job, mirrored from the service's events.
//!
//! An adapter like the socket: typed D-Bus values in, `Service` calls, named errors out.
//! Like the socket it answers only the user upqd runs as, whatever the bus policy allows.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use upq_proto::{AddRequest, BatchItem, ErrorCode, Event, JobView, Metadata, Selection};
use zbus::fdo::ManagedObjects;
use zbus::message::Header;
use zbus::names::InterfaceName;
use zbus::object_server::{Interface, SignalEmitter};
use zbus::{
    interface, Connection, ObjectPath, ObjectServer, OwnedObjectPath, OwnedVariant, Variant,
};

use crate::ipc::caller::Gate;
use crate::service::{Service, ServiceError};

pub const BUS_NAME: &str = "dev.upq.upq1";
pub const MANAGER_PATH: &str = "/dev/upq/upq1";

/// At most this many Progress signals per second and job.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

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

pub fn job_path(id: u64) -> String {
    format!("{MANAGER_PATH}/job/{id}")
}

/// One entry of `ListJobs`: id, file, destination, state, bytes sent, size, title, object.
type JobSummary = (
    u64,
    String,
    String,
    String,
    u64,
    u64,
    String,
    OwnedObjectPath,
);

fn summary(job: &JobView) -> JobSummary {
    (
        job.id,
        job.file.clone(),
        job.destination.clone(),
        job.state.to_string(),
        job.bytes_sent,
        job.size,
        job.metadata.title.clone().unwrap_or_default(),
        OwnedObjectPath::try_from(job_path(job.id)).expect("job paths are valid object paths"),
    )
}

/// Builds an `a{sv}`.
struct Dict(HashMap<String, OwnedVariant>);

impl Dict {
    fn new() -> Dict {
        Dict(HashMap::new())
    }

    fn put<'a>(&mut self, key: &str, value: impl Into<Variant<'a>>) {
        if let Ok(value) = OwnedVariant::try_from(value.into()) {
            self.0.insert(key.to_string(), value);
        }
    }
}

fn time_or_empty(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map(|at| at.to_rfc3339()).unwrap_or_default()
}

/// A job as `a{sv}`: the socket's job object field by field, optional ones as "" or 0.
fn job_dict(job: &JobView) -> HashMap<String, OwnedVariant> {
    let mut dict = Dict::new();
    dict.put("id", job.id);
    dict.put("file", job.file.as_str());
    dict.put("destination", job.destination.as_str());
    dict.put("state", job.state.as_str());
    dict.put("size", job.size);
    dict.put("bytes_sent", job.bytes_sent);
    dict.put("bytes_transferred", job.bytes_transferred);
    dict.put("attempts", job.attempts);
    dict.put("stalls", job.stalls);
    let (kind, message) = job
        .last_error
        .as_ref()
        .map(|e| (e.kind.as_str(), e.message.as_str()))
        .unwrap_or_default();
    dict.put("last_error_kind", kind);
    dict.put("last_error_message", message);
    dict.put("next_attempt_at", time_or_empty(job.next_attempt_at));
    dict.put("publish_at", time_or_empty(job.publish_at));
    dict.put("hold", job.hold);
    dict.put("priority", job.priority);
    dict.put("created_at", job.created_at.to_rfc3339());
    dict.put("updated_at", job.updated_at.to_rfc3339());
    dict.put("title", job.metadata.title.as_deref().unwrap_or_default());
    dict.put(
        "caption",
        job.metadata.caption.as_deref().unwrap_or_default(),
    );
    dict.put(
        "privacy",
        job.metadata.privacy.as_deref().unwrap_or_default(),
    );
    dict.put(
        "meta",
        job.metadata
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<String, String>>(),
    );
    dict.put("remote", job.remote.as_deref().unwrap_or_default());
    dict.put("upload_url", job.upload_url.as_deref().unwrap_or_default());
    dict.put(
        "content_hash",
        job.content_hash.as_deref().unwrap_or_default(),
    );
    dict.put("speed", job.speed.unwrap_or_default());
    dict.put("warning", job.warning.as_deref().unwrap_or_default());
    if let Some(history) = &job.history {
        let entries: Vec<(String, String, String, String)> = history
            .iter()
            .map(|entry| {
                (
                    entry.at.to_rfc3339(),
                    entry
                        .from
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    entry.to.as_str().to_string(),
                    entry.reason.clone(),
                )
            })
            .collect();
        dict.put("history", entries);
    }
    dict.0
}

/// A single-id batch answer as a D-Bus result.
fn single(mut items: Vec<BatchItem>) -> Result<(), BusError> {
    match items.pop() {
        Some(BatchItem {
            error: Some(error), ..
        }) => Err(ServiceError::new(error.code, error.message).into()),
        Some(_) => Ok(()),
        None => Err(BusError::Failed("no answer".into())),
    }
}

fn string_option(
    options: &HashMap<String, OwnedVariant>,
    key: &str,
) -> Result<Option<String>, BusError> {
    match options.get(key) {
        None => Ok(None),
        Some(value) => String::try_from(value.clone())
            .map(Some)
            .map_err(|_| BusError::BadRequest(format!("option '{key}' must be a string (s)"))),
    }
}

/// Turns `Add`'s `a{sv}` options into a request.
fn add_request(
    file: String,
    options: HashMap<String, OwnedVariant>,
) -> Result<AddRequest, BusError> {
    const KNOWN: &[&str] = &[
        "destination",
        "title",
        "caption",
        "privacy",
        "hold",
        "delay",
        "at",
        "priority",
        "meta",
    ];
    if let Some(unknown) = options.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(BusError::BadRequest(format!(
            "unknown option '{unknown}' (known: {})",
            KNOWN.join(", ")
        )));
    }
    let hold = match options.get("hold") {
        None => false,
        Some(value) => bool::try_from(value.clone())
            .map_err(|_| BusError::BadRequest("option 'hold' must be a boolean (b)".into()))?,
    };
    let delay_ms = match options.get("delay") {
        None => None,
        Some(value) => Some(
            u64::try_from(value.clone())
                .map(|seconds| seconds.saturating_mul(1000))
                .map_err(|_| BusError::BadRequest("option 'delay' must be seconds (t)".into()))?,
        ),
    };
    let at = match string_option(&options, "at")? {
        None => None,
        Some(text) => Some(
            chrono::DateTime::parse_from_rfc3339(&text)
                .map(|at| at.with_timezone(&chrono::Utc))
                .map_err(|e| BusError::BadRequest(format!("option 'at' is not RFC 3339: {e}")))?,
        ),
    };
    let priority = match options.get("priority") {
        None => 0,
        Some(value) => i32::try_from(value.clone())
            .map_err(|_| BusError::BadRequest("option 'priority' must be an int32 (i)".into()))?,
    };
    let extra = match options.get("meta") {
        None => Default::default(),
        Some(value) => HashMap::<String, String>::try_from(value.clone())
            .map(|map| map.into_iter().collect())
            .map_err(|_| BusError::BadRequest("option 'meta' must be a{ss}".into()))?,
    };
    Ok(AddRequest {
        file,
        destination: string_option(&options, "destination")?,
        metadata: Metadata {
            title: string_option(&options, "title")?,
            caption: string_option(&options, "caption")?,
            privacy: string_option(&options, "privacy")?,
            extra,
        },
        hold,
        delay_ms,
        at,
        priority,
    })
}

struct Manager {
    service: Service,
    gate: Gate,
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
        let request = add_request(file, options)?;
        Ok(self.service.add(request).await?.id)
    }

    /// Active jobs: (id, file, destination, state, bytes sent, size, title, object path).
    async fn list_jobs(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<JobSummary>, BusError> {
        self.gate.check(Some(&header)).await?;
        Ok(self.service.list(false).iter().map(summary).collect())
    }

    /// Every job, finished ones included.
    async fn list_all_jobs(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<JobSummary>, BusError> {
        self.gate.check(Some(&header)).await?;
        Ok(self.service.list(true).iter().map(summary).collect())
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

    async fn pause_job(&self, id: u64, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(
            self.service
                .pause(Selection {
                    ids: vec![id],
                    all: false,
                })
                .await?,
        )
    }

    async fn resume_job(
        &self,
        id: u64,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(
            self.service
                .resume(Selection {
                    ids: vec![id],
                    all: false,
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
                ids: vec![],
                all: true,
            })
            .await?;
        Ok(())
    }

    async fn resume_all(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        self.service
            .resume(Selection {
                ids: vec![],
                all: true,
            })
            .await?;
        Ok(())
    }

    async fn list_drafts(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<JobSummary>, BusError> {
        self.gate.check(Some(&header)).await?;
        Ok(self.service.drafts().iter().map(summary).collect())
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
        Ok(self.service.set_rate_limit(bytes_per_second))
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
        dict.put("queue_paused", status.queue_paused);
        dict.put("destinations", status.destinations);
        dict.put("data_dir", status.data_dir);
        dict.put("socket", status.socket);
        dict.put("quarantined", status.quarantined);
        Ok(dict.0)
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
    async fn job_changed(emitter: &SignalEmitter<'_>, id: u64, state: &str) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn progress(
        emitter: &SignalEmitter<'_>,
        id: u64,
        sent: u64,
        size: u64,
    ) -> zbus::Result<()>;
}

/// One job on the bus; its properties follow the service's events.
struct JobObject {
    service: Service,
    gate: Gate,
    view: JobView,
}

#[interface(interface = "dev.upq.upq1.Job")]
impl JobObject {
    #[zbus(property)]
    async fn id(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<u64, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.id)
    }

    #[zbus(property)]
    async fn file(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.file.clone())
    }

    #[zbus(property)]
    async fn destination(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.destination.clone())
    }

    #[zbus(property)]
    async fn state(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.state.to_string())
    }

    #[zbus(property)]
    async fn size(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<u64, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.size)
    }

    #[zbus(property)]
    async fn bytes_sent(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> Result<u64, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.bytes_sent)
    }

    #[zbus(property)]
    async fn attempts(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<u32, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.attempts)
    }

    /// (kind, message); both empty when there is none.
    #[zbus(property)]
    async fn last_error(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> Result<(String, String), BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self
            .view
            .last_error
            .as_ref()
            .map(|e| (e.kind.clone(), e.message.clone()))
            .unwrap_or_default())
    }

    /// RFC 3339, or empty when there is no review time.
    #[zbus(property)]
    async fn publish_at(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self
            .view
            .publish_at
            .map(|at| at.to_rfc3339())
            .unwrap_or_default())
    }

    #[zbus(property)]
    async fn hold(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<bool, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.hold)
    }

    #[zbus(property)]
    async fn title(&self, #[zbus(header)] header: Option<Header<'_>>) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.metadata.title.clone().unwrap_or_default())
    }

    #[zbus(property)]
    async fn caption(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.metadata.caption.clone().unwrap_or_default())
    }

    #[zbus(property)]
    async fn privacy(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
    ) -> Result<String, BusError> {
        self.gate.check(header.as_ref()).await?;
        Ok(self.view.metadata.privacy.clone().unwrap_or_default())
    }

    async fn pause(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(
            self.service
                .pause(Selection {
                    ids: vec![self.view.id],
                    all: false,
                })
                .await?,
        )
    }

    async fn resume(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(
            self.service
                .resume(Selection {
                    ids: vec![self.view.id],
                    all: false,
                })
                .await?,
        )
    }

    async fn cancel(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(self.service.cancel(vec![self.view.id]).await?)
    }

    async fn retry(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(self.service.retry(vec![self.view.id]).await?)
    }

    async fn publish(&self, #[zbus(header)] header: Header<'_>) -> Result<(), BusError> {
        self.gate.check(Some(&header)).await?;
        single(self.service.publish(vec![self.view.id]).await?)
    }
}

/// `org.freedesktop.DBus.ObjectManager` for the job objects, with the caller checked like every
/// other call (zbus's own would show any user every job). zbus still emits its signals.
struct Objects {
    service: Service,
    gate: Gate,
}

#[interface(name = "org.freedesktop.DBus.ObjectManager")]
impl Objects {
    /// Every job object with its properties, as `Properties.GetAll` gives them.
    async fn get_managed_objects(
        &self,
        #[zbus(object_server)] server: &ObjectServer,
        #[zbus(connection)] connection: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<ManagedObjects, BusError> {
        self.gate.check(Some(&header)).await?;
        let mut objects = ManagedObjects::new();
        for job in self.service.list(true) {
            let path = job_path(job.id);
            // A job the mirror has not published yet (or just removed) is left out.
            let Ok(object) = server.interface::<_, JobObject>(path.as_str()).await else {
                continue;
            };
            let properties = {
                let guard = object.get().await;
                // Checked above once for all: no header, no check per property.
                Interface::get_all(&*guard, server, connection, None, object.signal_emitter())
                    .await
                    .map_err(|e| BusError::Failed(e.to_string()))?
            };
            let Ok(path) = OwnedObjectPath::try_from(path) else {
                continue;
            };
            objects.insert(
                path,
                HashMap::from([(JobObject::name().into(), properties)]),
            );
        }
        Ok(objects)
    }

    /// A job object appeared, with its properties.
    #[zbus(signal)]
    async fn interfaces_added(
        emitter: &SignalEmitter<'_>,
        object_path: ObjectPath<'_>,
        interfaces_and_properties: HashMap<InterfaceName<'_>, HashMap<&str, Variant<'_>>>,
    ) -> zbus::Result<()>;

    /// A job object went away.
    #[zbus(signal)]
    async fn interfaces_removed(
        emitter: &SignalEmitter<'_>,
        object_path: ObjectPath<'_>,
        interfaces: Cow<'_, [&str]>,
    ) -> zbus::Result<()>;
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
            for job in service.list(true) {
                add_object(&connection, &gate, service, job).await;
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
        mirror(
            &self.connection,
            &self.gate,
            &service,
            self.events,
            shutdown,
        )
        .await;
    }
}

async fn add_object(connection: &Connection, gate: &Gate, service: &Service, view: JobView) {
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
async fn mirror(
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
                for job in service.list(true) {
                    update_object(connection, gate, service, job).await;
                }
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let emitter = manager.signal_emitter();
        match event {
            Event::State { id, to, job, .. } => {
                update_object(connection, gate, service, *job).await;
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
            Event::Lagged { .. } | Event::Unknown => {}
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: Vec<(&str, Variant<'static>)>) -> HashMap<String, OwnedVariant> {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), OwnedVariant::try_from(v).unwrap()))
            .collect()
    }

    #[test]
    fn add_options_become_a_request() {
        let request = add_request(
            "/v/a.mp4".into(),
            options(vec![
                ("title", Variant::from("Trip")),
                ("hold", Variant::from(true)),
                ("delay", Variant::from(60u64)),
                ("priority", Variant::from(3i32)),
            ]),
        )
        .unwrap();
        assert_eq!(request.metadata.title.as_deref(), Some("Trip"));
        assert!(request.hold);
        assert_eq!(request.delay_ms, Some(60_000));
        assert_eq!(request.priority, 3);
    }

    #[test]
    fn bad_options_are_named() {
        let err = add_request(
            "/v/a.mp4".into(),
            options(vec![("colour", Variant::from("red"))]),
        )
        .unwrap_err();
        assert!(
            matches!(err, BusError::BadRequest(ref m) if m.contains("colour")),
            "{err:?}"
        );
        let err = add_request(
            "/v/a.mp4".into(),
            options(vec![("hold", Variant::from("yes"))]),
        )
        .unwrap_err();
        assert!(
            matches!(err, BusError::BadRequest(ref m) if m.contains("hold")),
            "{err:?}"
        );
    }
}
