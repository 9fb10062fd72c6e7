//! The `dir` destination: a local folder that behaves like a careful remote.
//!
//! Chunks go to `<path>/.partial/<id>-<name>`, each fsynced before it is acknowledged; the
//! commit verifies the staged copy's hash and renames it into place without overwriting.

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::{Chunk, Committed, DestError, Destination, ErrorClass, Processing, UploadInfo};
use crate::job::RemoteSession;
use crate::pacer::Pacer;

mod files;

use files::{
    candidate_name, find_committed, fsync_dir, hash_file, rename_no_replace, start_writeback,
};

/// Called on the blocking pool before each file-system call of a `dir` destination, with
/// its folder: the daemon sets none; a test can hold calls back like a hung network mount.
pub type IoGate = Arc<dyn Fn(&Path) + Send + Sync>;

pub struct DirDestination {
    root: PathBuf,
    chunk_size: u64,
    gate: Option<IoGate>,
}

impl fmt::Debug for DirDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirDestination")
            .field("root", &self.root)
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

/// How long `add` waits for the folder check before queuing with a warning.
const PREFLIGHT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What a full destination says, whichever call found it full.
pub const NO_SPACE: &str = "no space left on the destination";

fn io_error(what: &str, path: &Path, e: io::Error) -> DestError {
    if matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) {
        // Transient: the user frees space and the job waits for it (see worker::fail).
        return DestError::transient(
            "no_space",
            format!("{NO_SPACE} ({what} {})", path.display()),
        );
    }
    // A vanished folder is usually an unmounted drive: worth waiting for.
    DestError::transient("destination", format!("{what} {}: {e}", path.display()))
}

fn root_state(root: &Path) -> Result<(), DestError> {
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(DestError::permanent(
            "destination",
            format!("destination {} is not a folder", root.display()),
        )),
        Err(e) => Err(io_error("destination folder", root, e)),
    }
}

impl DirDestination {
    pub fn new(root: PathBuf, chunk_size: u64) -> DirDestination {
        DirDestination {
            root,
            chunk_size,
            gate: None,
        }
    }

    /// The same destination with `gate` run before every file-system call.
    pub fn with_io_gate(mut self, gate: IoGate) -> DirDestination {
        self.gate = Some(gate);
        self
    }

    /// Runs file-system work on the blocking pool, never on the runtime: a hung mount
    /// then holds one blocking thread, not the socket and every other job.
    async fn io<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, DestError> + Send + 'static,
    ) -> Result<T, DestError> {
        let gate = self.gate.clone();
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(gate) = gate {
                gate(&root);
            }
            work()
        })
        .await
        .unwrap_or_else(|e| {
            Err(DestError::transient(
                "internal",
                format!("I/O task failed: {e}"),
            ))
        })
    }

    fn partial_dir(&self) -> PathBuf {
        self.root.join(".partial")
    }

    fn partial_path(session: &RemoteSession) -> Result<PathBuf, DestError> {
        session
            .0
            .get("partial")
            .and_then(|p| p.as_str())
            .map(PathBuf::from)
            .ok_or_else(|| {
                DestError::permanent("destination", "stored session has no partial path")
                    .with_class(ErrorClass::SessionGone)
            })
    }

    async fn check_root(&self) -> Result<(), DestError> {
        let root = self.root.clone();
        self.io(move || root_state(&root)).await
    }
}

#[async_trait]
impl Destination for DirDestination {
    fn kind(&self) -> &'static str {
        "dir"
    }

    /// The folder keeps no title or caption: they are upq's own until the job ends.
    fn editable_after_start(&self, _upload: &UploadInfo) -> &'static [&'static str] {
        &["title", "caption", "privacy"]
    }

    /// A folder; one a sync client mirrors still counts as local (metered and battery
    /// policies apply to it all the same).
    fn uses_network(&self) -> bool {
        false
    }

    fn chunk_size(&self, _size: u64) -> u64 {
        self.chunk_size
    }

    fn piece_size(&self) -> usize {
        // A local disk has no latency to smooth over; fewer, larger writes go faster.
        4 * 1024 * 1024
    }

    fn commits_with_final_chunk(&self) -> bool {
        false
    }

    async fn preflight(&self, _upload: &UploadInfo) -> Result<Vec<String>, DestError> {
        // `add` answers even when the folder's mount hangs; the worker waits for it instead.
        let Ok(checked) = tokio::time::timeout(PREFLIGHT_TIMEOUT, self.check_root()).await else {
            return Ok(vec![format!(
                "the folder {} did not answer within {} s; the upload waits until it does",
                self.root.display(),
                PREFLIGHT_TIMEOUT.as_secs()
            )]);
        };
        match checked {
            Ok(()) => Ok(Vec::new()),
            Err(e) if matches!(e.class, ErrorClass::Transient { .. }) => Ok(vec![format!(
                "{}; the upload waits until the folder is there",
                e.message
            )]),
            Err(e) => Err(e),
        }
    }

    async fn open(
        &self,
        upload: &UploadInfo,
        existing: Option<&RemoteSession>,
    ) -> Result<RemoteSession, DestError> {
        let partial_dir = self.partial_dir();
        {
            let (root, partial_dir) = (self.root.clone(), partial_dir.clone());
            self.io(move || {
                root_state(&root)?;
                std::fs::create_dir_all(&partial_dir)
                    .map_err(|e| io_error("cannot create", &partial_dir, e))
            })
            .await?;
        }
        if let Some(existing) = existing {
            if Self::partial_path(existing).is_ok() {
                return Ok(existing.clone());
            }
        }
        let partial = partial_dir.join(format!("{}-{}", upload.job_id, upload.name));
        Ok(RemoteSession(json!({ "partial": partial })))
    }

    async fn confirmed_offset(
        &self,
        session: &RemoteSession,
        upload: &UploadInfo,
        _recorded: u64,
    ) -> Result<u64, DestError> {
        self.check_root().await?;
        let partial = Self::partial_path(session)?;
        let size = upload.size;
        self.io(move || {
            let file = match OpenOptions::new().write(true).open(&partial) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(io_error("cannot open", &partial, e)),
            };
            // Whatever reached the file becomes durable before it counts as received.
            file.sync_data()
                .map_err(|e| io_error("cannot sync", &partial, e))?;
            let len = file
                .metadata()
                .map_err(|e| io_error("cannot stat", &partial, e))?
                .len();
            if len > size {
                file.set_len(0)
                    .map_err(|e| io_error("cannot truncate", &partial, e))?;
                return Ok(0);
            }
            Ok(len)
        })
        .await
    }

    async fn send_chunk(
        &self,
        session: &RemoteSession,
        _upload: &UploadInfo,
        mut chunk: Chunk,
        pacer: &Pacer,
    ) -> Result<u64, DestError> {
        self.check_root().await?;
        let partial = Self::partial_path(session)?;
        let offset = chunk.offset;
        let file = {
            let partial = partial.clone();
            self.io(move || {
                let file = OpenOptions::new()
                    .write(true)
                    .create(offset == 0)
                    .truncate(false)
                    .open(&partial)
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::NotFound => DestError::transient(
                            "destination",
                            format!("partial file {} vanished", partial.display()),
                        )
                        .with_class(ErrorClass::SessionGone),
                        _ => io_error("cannot open", &partial, e),
                    })?;
                let len = file
                    .metadata()
                    .map_err(|e| io_error("cannot stat", &partial, e))?
                    .len();
                if len != offset {
                    return Err(DestError::transient(
                        "offset_mismatch",
                        format!("partial file holds {len} bytes, chunk starts at {offset}"),
                    )
                    .with_class(ErrorClass::OffsetMismatch));
                }
                Ok(Arc::new(file))
            })
            .await?
        };
        let mut at = offset;
        while let Some(piece) = chunk.body.next_piece().await? {
            pacer.admit(piece.len()).await;
            let len = piece.len();
            let (file, partial) = (file.clone(), partial.clone());
            self.io(move || {
                file.write_all_at(&piece, at).map_err(|e| {
                    // Only acknowledged bytes stay: a half-written chunk gives its space back.
                    let _ = file.set_len(offset);
                    io_error("cannot write", &partial, e)
                })?;
                start_writeback(&file, at, piece.len());
                Ok(())
            })
            .await?;
            pacer.sent(len);
            at += len as u64;
        }
        if at != offset + chunk.len {
            return Err(DestError::transient(
                "source",
                format!("read {} bytes of a {}-byte chunk", at - offset, chunk.len),
            ));
        }
        self.io(move || {
            file.sync_data().map_err(|e| {
                let _ = file.set_len(offset);
                io_error("cannot sync", &partial, e)
            })?;
            Ok(at)
        })
        .await
    }

    async fn commit(
        &self,
        session: &RemoteSession,
        upload: &UploadInfo,
        content_hash: &str,
    ) -> Result<Committed, DestError> {
        self.check_root().await?;
        let partial = Self::partial_path(session)?;
        let root = self.root.clone();
        let name = upload.name.clone();
        let expected = content_hash.to_string();
        let size = upload.size;
        self.io(move || {
            if !partial.exists() {
                // A crash between the rename and recording it: find the copy we moved.
                return find_committed(&root, &name, size, &expected).ok_or_else(|| {
                    DestError::permanent(
                        "destination",
                        format!(
                            "the staged copy {} vanished before it was moved into place",
                            partial.display()
                        ),
                    )
                });
            }
            let staged = hash_file(&partial).map_err(|e| io_error("cannot read", &partial, e))?;
            if staged != expected {
                return Err(DestError::permanent(
                    "verify_failed",
                    format!(
                        "the staged copy {} does not match the source (blake3 {staged}, expected {expected})",
                        partial.display()
                    ),
                ));
            }
            for n in 0..10_000 {
                let target = root.join(candidate_name(&name, n));
                match rename_no_replace(&partial, &target) {
                    Ok(()) => {
                        fsync_dir(&root);
                        fsync_dir(&root.join(".partial"));
                        return Ok(Committed {
                            location: target.to_string_lossy().into_owned(),
                            note: None,
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(io_error("cannot move into place", &target, e)),
                }
            }
            Err(DestError::permanent(
                "destination",
                format!("no free name for {name} in {}", root.display()),
            ))
        })
        .await
    }

    async fn poll_processing(
        &self,
        _session: &RemoteSession,
        _upload: &UploadInfo,
    ) -> Result<Processing, DestError> {
        Ok(Processing::Done {
            location: None,
            needs_publish: false,
            note: None,
        })
    }

    async fn check(&self) -> Vec<upq_proto::CheckView> {
        let root = self.root.clone();
        let found = self
            .io(move || {
                Ok(crate::doctor::folder(
                    "destination",
                    "the folder",
                    &root,
                    crate::doctor::VIDEO_ROOM,
                    "its `path` in the config",
                ))
            })
            .await;
        vec![found.unwrap_or_else(|e| {
            upq_proto::CheckView::problem("destination", e.message, "run `upqctl doctor` again")
        })]
    }

    async fn discard(&self, session: &RemoteSession) -> Result<(), DestError> {
        let partial = match Self::partial_path(session) {
            Ok(partial) => partial,
            Err(_) => return Ok(()),
        };
        self.io(move || match std::fs::remove_file(&partial) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("cannot remove", &partial, e)),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collision_names_keep_the_extension() {
        assert_eq!(candidate_name("trip.mp4", 0), "trip.mp4");
        assert_eq!(candidate_name("trip.mp4", 2), "trip (2).mp4");
        assert_eq!(candidate_name("README", 1), "README (1)");
        assert_eq!(candidate_name(".hidden", 1), ".hidden (1)");
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, b"new").unwrap();
        std::fs::write(&b, b"old").unwrap();
        let err = rename_no_replace(&a, &b).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&b).unwrap(), b"old");
        assert_eq!(std::fs::read(&a).unwrap(), b"new");
    }

    /// While one `dir` destination's file-system call hangs (a dead network mount), the
    /// control socket answers and a job to another destination completes. The runtime has
    /// one thread: a single file-system call made on it would freeze all of that.
    #[test]
    fn a_hung_folder_holds_its_own_job_only() {
        let (finished, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(hung_folder_scenario());
            let _ = finished.send(());
        });
        // A frozen runtime never reports: the deadline turns that into a failure.
        outcome
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect(
                "the scenario ends: it panicked above, or the runtime froze while a folder hung",
            );
    }

    #[tokio::test]
    async fn add_answers_while_the_folder_hangs() {
        let dir = tempfile::tempdir().unwrap();
        let (held_tx, mut held) = tokio::sync::mpsc::unbounded_channel();
        let hang = Arc::new(Hang {
            armed: true.into(),
            released: std::sync::Mutex::new(false),
            wake: std::sync::Condvar::new(),
            held: held_tx,
        });
        let destination =
            DirDestination::new(dir.path().to_path_buf(), 1024 * 1024).with_io_gate(hang.gate());
        let upload = UploadInfo {
            job_id: 1,
            path: dir.path().join("a.mp4"),
            name: "a.mp4".into(),
            size: 1,
            metadata: Default::default(),
            hold: false,
            publish_at: None,
        };
        let started = std::time::Instant::now();
        let answer =
            tokio::time::timeout(PREFLIGHT_TIMEOUT * 3, destination.preflight(&upload)).await;
        hang.release();
        let warnings = answer
            .expect("preflight answers while the folder hangs")
            .unwrap();
        assert!(held.try_recv().is_ok(), "the folder call was held");
        assert!(
            started.elapsed() >= PREFLIGHT_TIMEOUT,
            "it waited for the folder first"
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("did not answer"), "{warnings:?}");
    }

    /// Holds every call to a folder, once armed, until released; says when a call is held.
    struct Hang {
        armed: std::sync::atomic::AtomicBool,
        released: std::sync::Mutex<bool>,
        wake: std::sync::Condvar,
        held: tokio::sync::mpsc::UnboundedSender<()>,
    }

    impl Hang {
        fn gate(self: &Arc<Self>) -> IoGate {
            let hang = self.clone();
            Arc::new(move |_root: &Path| {
                if !hang.armed.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let _ = hang.held.send(());
                let mut released = hang.released.lock().unwrap();
                while !*released {
                    released = hang.wake.wait(released).unwrap();
                }
            })
        }

        fn release(&self) {
            *self.released.lock().unwrap() = true;
            self.wake.notify_all();
        }
    }

    async fn hung_folder_scenario() {
        use crate::config::{Config, Paths};
        use crate::service::Service;
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        use upq_proto::{AddRequest, Event, JobState};

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for folder in ["data", "stuck", "free"] {
            std::fs::create_dir_all(root.join(folder)).unwrap();
        }
        let paths = Paths {
            config_file: None,
            data_dir: root.join("data"),
            socket: root.join("upqd.sock"),
        };
        let text = format!(
            "[destinations.stuck]\nkind = \"dir\"\npath = \"{}\"\n[destinations.free]\nkind = \"dir\"\npath = \"{}\"\n",
            root.join("stuck").display(),
            root.join("free").display()
        );
        let config = Config::from_toml(paths.clone(), Path::new("c.toml"), &text).unwrap();
        let accounts = crate::accounts::Accounts::in_files(paths.data_dir.join("accounts"));
        let mut destinations = crate::destinations::build(&config.destinations, &accounts).unwrap();
        let (held_tx, mut held) = tokio::sync::mpsc::unbounded_channel();
        let hang = Arc::new(Hang {
            armed: false.into(),
            released: std::sync::Mutex::new(false),
            wake: std::sync::Condvar::new(),
            held: held_tx,
        });
        destinations.insert(
            "stuck".into(),
            Arc::new(
                DirDestination::new(root.join("stuck"), 1024 * 1024).with_io_gate(hang.gate()),
            ),
        );
        let shutdown = tokio_util::sync::CancellationToken::new();
        let store = crate::store::Store::open(&paths.data_dir).unwrap();
        let service = Service::new(
            config,
            store,
            destinations,
            accounts,
            crate::notify::Notifier::disabled(),
            shutdown.clone(),
        )
        .unwrap();
        let tasks = service.inner.tasks.clone();
        tasks.spawn(service.clone().run_scheduler());
        let listener = crate::ipc::socket::bind(&paths.socket).unwrap();
        tasks.spawn(crate::ipc::socket::serve(
            listener,
            service.clone(),
            shutdown.clone(),
        ));
        let mut events = service.subscribe();

        let video = |name: &str, byte: u8| {
            let path = root.join(name);
            std::fs::write(&path, vec![byte; 3 * 1024 * 1024]).unwrap();
            path
        };
        let add = |file: PathBuf, to: &str| AddRequest {
            file: file.to_string_lossy().into_owned(),
            options: upq_proto::AddOptions {
                destination: Some(to.into()),
                ..Default::default()
            },
        };
        let stuck = service
            .add(add(video("a.mp4", b'a'), "stuck"))
            .await
            .unwrap()
            .id;
        hang.armed.store(true, std::sync::atomic::Ordering::SeqCst);
        // `add` ran before the hang; the worker's first call to the folder is held.
        let deadline = std::time::Duration::from_secs(20);
        tokio::time::timeout(deadline, held.recv())
            .await
            .expect("the stuck folder was called");

        let free = service
            .add(add(video("b.mp4", b'b'), "free"))
            .await
            .unwrap()
            .id;
        let published = |events: &mut tokio::sync::broadcast::Receiver<Event>, id: u64| {
            let mut events = events.resubscribe();
            async move {
                loop {
                    match events.recv().await {
                        Ok(Event::State { id: job, to, .. })
                            if job == id && to == JobState::Published =>
                        {
                            return
                        }
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(e) => panic!("events ended: {e}"),
                    }
                }
            }
        };
        let free_done = published(&mut events, free);
        if service.show(free).unwrap().state != JobState::Published {
            tokio::time::timeout(deadline, free_done)
                .await
                .expect("the job to the other folder completes while one folder hangs");
        }
        assert_eq!(
            std::fs::read(root.join("free/b.mp4")).unwrap(),
            vec![b'b'; 3 * 1024 * 1024]
        );

        // The control socket answers `status` while the call is still held.
        let stream = tokio::net::UnixStream::connect(&paths.socket)
            .await
            .unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write
            .write_all(b"{\"id\":1,\"method\":\"status\"}\n")
            .await
            .unwrap();
        let answer = tokio::time::timeout(deadline, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.starts_with("{\"id\":1,") {
                    return line;
                }
            }
            panic!("the socket closed without answering");
        })
        .await
        .expect("status answers while a folder hangs");
        assert!(answer.contains("\"result\""), "{answer}");
        assert!(
            !matches!(service.show(stuck).unwrap().state, JobState::Published),
            "the stuck job waited for its folder"
        );

        let worker = format!("job {stuck}: upload worker");
        assert!(
            tasks.running().contains(&worker),
            "the held worker is tracked: {:?}",
            tasks.running()
        );

        let stuck_done = published(&mut events, stuck);
        hang.release();
        if service.show(stuck).unwrap().state != JobState::Published {
            tokio::time::timeout(deadline, stuck_done)
                .await
                .expect("the held job completes once its folder answers");
        }
        assert_eq!(
            std::fs::read(root.join("stuck/a.mp4")).unwrap(),
            vec![b'a'; 3 * 1024 * 1024]
        );
        shutdown.cancel();
        tasks.close();
        tokio::time::timeout(deadline, tasks.wait())
            .await
            .expect("the service stops");
    }
}
