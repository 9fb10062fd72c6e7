//! upqd as a library: `run(config, shutdown, on_ready)` starts the queue, the scheduler
//! and the control socket, and returns once `shutdown` fires and work is saved.
//!
//! Never exits the process; the binary decides exit codes.

pub mod accounts;
pub mod backoff;
mod cleanup;
pub mod clock;
pub mod config;
pub mod destinations;
pub mod doctor;
pub mod ipc;
pub mod job;
pub mod media;
pub mod notify;
pub mod pacer;
pub mod policy;
pub mod post;
pub mod redact;
mod scheduler;

/// Test hook: `UPQ_CRASH_AT=<step>` kills the daemon with SIGKILL at that step (of a token
/// refresh, of a post's release), so the crash tests can stop it exactly between two steps.
pub(crate) fn crash_point(step: &str) {
    if std::env::var_os("UPQ_CRASH_AT").is_some_and(|at| at == step) {
        tracing::warn!(step, "UPQ_CRASH_AT: killing the daemon here");
        // SAFETY: sending a signal to our own process.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
pub mod service;
pub mod service_manager;
pub mod source;
pub mod stall;
pub mod store;
mod system_facts;
pub mod tasks;
mod worker;

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use service::Service;

/// How long shutdown waits for workers to save their offsets.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Socket(#[from] ipc::socket::SocketError),
    /// The data folder cannot be created or written.
    #[error("the data folder {path} cannot be {doing}: {source}")]
    DataDir {
        path: PathBuf,
        doing: &'static str,
        source: std::io::Error,
    },
    /// A start-up step that runs off the runtime panicked or was cancelled.
    #[error("{step} did not finish: {source}")]
    Setup {
        step: &'static str,
        source: tokio::task::JoinError,
    },
    #[error(transparent)]
    Destinations(#[from] destinations::BuildError),
}

/// What `run` reports once it serves.
#[derive(Debug, Clone)]
pub struct Ready {
    pub socket: PathBuf,
    pub jobs: usize,
    /// The desk's address, when it serves.
    pub web_url: Option<String>,
}

/// Runs the daemon until `shutdown` is cancelled; each `reload` notification re-reads
/// the config file and applies it (a broken file is logged and the old config kept).
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    reload: Arc<Notify>,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), DaemonError> {
    let build = |config: &Config, accounts: &accounts::Accounts| {
        destinations::build(&config.destinations, accounts)
    };
    run_with(config, build, shutdown, reload, on_ready).await
}

/// `run`, with the destinations made by `build` (after the data folder is ready) instead of
/// from the config: tests run the whole daemon in-process over an in-memory destination.
/// Returns to the system the memory the start-up pass over the queue used and freed:
/// glibc keeps freed memory for later, and at 100,000 jobs that pass leaves about 20 MiB.
fn give_back_start_up_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

pub async fn run_with(
    config: Config,
    build: impl FnOnce(
        &Config,
        &accounts::Accounts,
    ) -> Result<destinations::Destinations, destinations::BuildError>,
    shutdown: CancellationToken,
    reload: Arc<Notify>,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), DaemonError> {
    let data_dir = config.paths.data_dir.clone();
    {
        let data_dir = data_dir.clone();
        tokio::task::spawn_blocking(move || prepare_data_dir(&data_dir))
            .await
            .map_err(|source| DaemonError::Setup {
                step: "the data folder check",
                source,
            })??;
    }
    // The default outbox is ours to create; configured folders may be drives not yet mounted.
    if let Some(config::DestinationConfig::Dir { path, .. }) =
        config.destinations.get(config::DEFAULT_DESTINATION)
    {
        if *path == data_dir.join("outbox") {
            std::fs::create_dir_all(path).map_err(|source| DaemonError::DataDir {
                path: path.clone(),
                doing: "created",
                source,
            })?;
        }
    }
    let socket_path = config.paths.socket.clone();
    // Without D-Bus (`--no-dbus`) the tokens stay off the bus too: files only.
    let accounts = if config.dbus {
        accounts::Accounts::new(data_dir.join("accounts"))
    } else {
        accounts::Accounts::in_files(data_dir.join("accounts"))
    };
    let destinations = build(&config, &accounts)?;
    let store = store::Store::open_async(data_dir.clone()).await?;
    let listener = ipc::socket::bind(&socket_path)?;
    // The desk is a convenience: a port it cannot open is said, and the daemon serves on.
    let desk = match ipc::web::bind(&config).await {
        Ok(desk) => desk,
        Err(e) => {
            tracing::error!(error = %e, "the desk is off");
            None
        }
    };
    let web_url = desk.as_ref().map(|desk| desk.url().to_owned());
    let notifier = if config.dbus {
        notify::Notifier::connect(&config.daemon.notify).await
    } else {
        notify::Notifier::disabled()
    };
    let dbus = config.dbus;
    let service = Service::new(
        config,
        store,
        destinations,
        accounts,
        notifier.clone(),
        shutdown.clone(),
    )?;
    let cleanups = service.resume_cleanups()?;
    match service.finish_releases().await {
        Ok(0) => {}
        Ok(released) => {
            tracing::info!(
                jobs = released,
                "released the rest of posts whose release had begun"
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot finish the release of posts whose release had begun")
        }
    }
    let jobs = service.job_count();
    give_back_start_up_memory();
    tracing::info!(jobs, cleanups, socket = %socket_path.display(), "upqd ready");

    // What the system says comes before the first job starts: with `on_metered = "pause"`
    // on a metered connection, nothing should start and stop again.
    if dbus {
        system_facts::follow(&service, shutdown.clone()).await;
    } else {
        service.update_facts(|facts| *facts = policy::Facts::assumed("assumed: D-Bus is off"));
    }
    let tasks = service.inner.tasks.clone();
    tasks.spawn_named("scheduler", service.clone().run_scheduler());
    tasks.spawn_named("rate policy", service.clone().run_rate_policy());
    {
        let service = service.clone();
        let stop = shutdown.clone();
        tasks.spawn_named("queue flusher", async move {
            service
                .inner
                .store
                .flush_when_dirty(Duration::from_millis(200), stop)
                .await
        });
    }
    tasks.spawn_named(
        "control socket",
        ipc::socket::serve(listener, service.clone(), shutdown.clone()),
    );
    if let Some(desk) = desk {
        // The address is known before the ready line, so `upqctl open` works from then on.
        service.set_desk_url(Some(desk.url().to_owned()));
        tasks.spawn_named(
            "desk",
            ipc::web::serve(desk, service.clone(), shutdown.clone()),
        );
    }
    // Without a bus the notifier has said so once already.
    if service.config().dbus && notifier.has_bus() {
        if let Some(bus) = ipc::dbus::connect(&service).await {
            tasks.spawn_named(
                "D-Bus service",
                bus.serve(service.clone(), shutdown.clone()),
            );
        }
    }
    if let Some(actions) = notifier.actions().await {
        tasks.spawn_named(
            "notification actions",
            act_on_notifications(service.clone(), actions, shutdown.clone()),
        );
    }
    on_ready(&Ready {
        socket: socket_path,
        jobs,
        web_url,
    });
    tasks.spawn_named(
        "service manager",
        service_manager::run(service.clone(), shutdown.clone()),
    );
    tasks.spawn_named(
        "sign-in watcher",
        service.clone().continue_after_signins(shutdown.clone()),
    );
    tasks.spawn_named(
        "config reloader",
        reload_on_request(service.clone(), reload, shutdown.clone()),
    );

    shutdown.cancelled().await;
    tracing::info!("shutting down: stopping transfers and saving offsets");
    let aborted = tasks.drain(DRAIN_TIMEOUT).await;
    if !aborted.is_empty() {
        tracing::warn!(
            count = aborted.len(),
            "tasks aborted at the end of the drain; job state was already saved"
        );
    }
    service.inner.store.flush().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Creates the data folder if needed and proves it can be written, so a read-only or
/// unusable folder is named at start instead of failing at the first write.
fn prepare_data_dir(data_dir: &std::path::Path) -> Result<(), DaemonError> {
    let failed = |doing, source| DaemonError::DataDir {
        path: data_dir.to_path_buf(),
        doing,
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| failed("created", e))?;
    let probe = data_dir.join(".upqd-write-test");
    let written = std::fs::File::create(&probe).and_then(|file| file.sync_all());
    let _ = std::fs::remove_file(&probe);
    written.map_err(|e| failed("written", e))
}

/// Carries out what the user clicked on a notification.
async fn act_on_notifications(
    service: Service,
    actions: impl futures::Stream<Item = notify::Action>,
    shutdown: CancellationToken,
) {
    use futures::StreamExt;
    tokio::pin!(actions);
    loop {
        let action = tokio::select! {
            action = actions.next() => action,
            _ = shutdown.cancelled() => return,
        };
        let result = match action {
            Some(notify::Action::Cancel(id)) => service.cancel(vec![id]).await,
            Some(notify::Action::Retry(id)) => service.retry(vec![id]).await,
            Some(notify::Action::SignIn(destination)) => {
                if let Err(e) = service.login_in_browser(&destination).await {
                    tracing::warn!(destination, error = %e, "the sign-in from the notification did not start");
                }
                continue;
            }
            None => return,
        };
        match result {
            Ok(items) => {
                for item in items
                    .iter()
                    .filter_map(|item| item.error.as_ref().map(|e| (item.id, e)))
                {
                    tracing::warn!(job = item.0, error = %item.1, "notification action refused");
                }
            }
            Err(e) => tracing::warn!(error = %e, "notification action failed"),
        }
    }
}

/// Re-reads the config file whenever asked (SIGHUP), until shutdown.
async fn reload_on_request(service: Service, reload: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = reload.notified() => {}
            _ = shutdown.cancelled() => return,
        }
        let paths = service.config().paths.clone();
        let loaded = tokio::task::spawn_blocking(move || Config::load(paths)).await;
        match loaded {
            Ok(Ok(config)) => match service.reload(config) {
                Ok(notes) => tracing::info!(changes = ?notes, "configuration reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "configuration not reloaded; keeping the old one")
                }
            },
            Ok(Err(e)) => {
                tracing::error!(error = %e, "configuration not reloaded; keeping the old one")
            }
            Err(e) => tracing::error!(error = %e, "configuration reload failed"),
        }
    }
}
