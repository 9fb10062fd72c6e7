//! Opening the store: sled's own failures classified (damaged, unwritable, locked), records
//! that do not decode set aside, and the jobs compared with the catalogue beside the database.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::Utc;
use sled::transaction::{ConflictableTransactionError, Transactional};
use upq_proto::HistoryEntry;

use super::manifest::{self, Lost, Manifest};
use super::space::SpaceReserve;
use super::{
    catalogue_entry, encode, flatten, hex, Catalogue, Cleanup, Job, Store, StoreError, DB_DIR,
    NEXT_ID_KEY, QUARANTINE_TREE, RECORD_TREES, SCHEMA_KEY, SCHEMA_VERSION,
};

/// Why a record cannot be used, or `None` when it decodes.
pub(super) fn record_problem(tree: &str, key: &[u8], value: &[u8]) -> Option<String> {
    let key_len = match tree {
        "jobs" => return checked_job(key, value).err(),
        "posts" => {
            if key.len() != 8 {
                return Some(format!("{}-byte key, expected 8", key.len()));
            }
            return serde_json::from_slice::<crate::post::Post>(value)
                .err()
                .map(|e| e.to_string());
        }
        "history" | "cleanups" => 16,
        _ => return None,
    };
    if key.len() != key_len {
        return Some(format!("{}-byte key, expected {key_len}", key.len()));
    }
    let decoded = match tree {
        "history" => serde_json::from_slice::<HistoryEntry>(value).map(|_| ()),
        _ => serde_json::from_slice::<Cleanup>(value).map(|_| ()),
    };
    decoded.err().map(|e| e.to_string())
}

/// A job record that decodes and is stored under its own id, or why not.
fn checked_job(key: &[u8], value: &[u8]) -> Result<Job, String> {
    if key.len() != 8 {
        return Err(format!("{}-byte key, expected 8", key.len()));
    }
    let job = Job::decode(value).map_err(|e| e.to_string())?;
    if job.id().to_be_bytes() != key {
        return Err(format!("holds job {}", job.id()));
    }
    Ok(job)
}

pub(super) fn be_u64(raw: &[u8]) -> Option<u64> {
    raw.try_into().ok().map(u64::from_be_bytes)
}

/// Classifies a failure to open sled: a folder we may not write, or a damaged database.
fn open_error(path: &Path, source: sled::Error) -> StoreError {
    if let sled::Error::Io(io) = &source {
        if matches!(
            io.raw_os_error(),
            Some(libc::EACCES | libc::EPERM | libc::EROFS | libc::ENOSPC)
        ) {
            let io = std::io::Error::new(io.kind(), io.to_string());
            return StoreError::Unwritable {
                path: path.to_path_buf(),
                source: io,
            };
        }
    }
    StoreError::Damaged {
        path: path.to_path_buf(),
        detail: source.to_string(),
    }
}

/// Opens sled at `path`, waiting up to 3 s for a lock a just-stopped daemon still holds.
/// A panic inside sled's recovery is a damaged database, not a crashed daemon.
pub(super) fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(path)
        // The queue is small; a small cache keeps the daemon's memory flat.
        .cache_capacity(4 * 1024 * 1024)
        // Flushes are ours (see `flush_when_dirty`): an idle daemon never wakes up.
        .flush_every_ms(None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
        match opened {
            Ok(Ok(db)) => return Ok(db),
            Ok(Err(source)) if source.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::Locked {
                        path: path.to_path_buf(),
                    });
                }
                // Runs on a blocking thread (see `Store::open_async`), never on the runtime.
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Ok(Err(source)) => return Err(open_error(path, source)),
            Err(panic) => {
                let detail = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "sled could not recover it".into());
                return Err(StoreError::Damaged {
                    path: path.to_path_buf(),
                    detail,
                });
            }
        }
    }
}

impl Store {
    /// `open` on a blocking thread: sled's recovery reads the whole log, and a locked
    /// database is waited for.
    pub async fn open_async(dir: PathBuf) -> Result<Store, StoreError> {
        let path = dir.join(DB_DIR);
        tokio::task::spawn_blocking(move || Store::open(&dir))
            .await
            .unwrap_or_else(|e| {
                Err(StoreError::Damaged {
                    path,
                    detail: format!("opening it failed: {e}"),
                })
            })
    }

    /// Opens (or creates) the database under `dir`. Refuses a newer schema or a damaged
    /// database without touching it; sets aside records that do not decode; compares the
    /// jobs with the catalogue and records those that are gone.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(DB_DIR);
        let space = SpaceReserve::new(dir);
        let db = open_db(&path)?;
        let damaged = |e: sled::Error| open_error(&path, e);
        let meta = db.open_tree("meta").map_err(damaged)?;
        match meta.get(SCHEMA_KEY).map_err(damaged)? {
            Some(raw) => {
                let found = be_u64(&raw).ok_or_else(|| StoreError::Damaged {
                    path: path.clone(),
                    detail: format!("its schema version is {} bytes long", raw.len()),
                })?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { path, found });
                }
                if found < SCHEMA_VERSION {
                    migrate(&db, &meta, found).map_err(damaged)?;
                }
            }
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
                    .map_err(damaged)?;
            }
        }
        let tree = |name: &str| db.open_tree(name).map_err(|e| open_error(&path, e));
        let store = Store {
            jobs: tree("jobs")?,
            history: tree("history")?,
            cleanups: tree("cleanups")?,
            posts: tree("posts")?,
            quarantine: tree(QUARANTINE_TREE)?,
            meta,
            dir: dir.to_path_buf(),
            dirty: tokio::sync::Notify::new(),
            catalogue: Mutex::new(Catalogue {
                live: BTreeSet::new(),
                next_id: 1,
                added: Vec::new(),
                removed: Vec::new(),
            }),
            catalogue_gate: tokio::sync::Mutex::new(()),
            flushes_begun: Default::default(),
            flushed: Default::default(),
            lost: Vec::new(),
            space,
            found: Mutex::new(None),
            db,
        };
        // The job records, the other records and the catalogue file are read side by side:
        // at 100,000 jobs each pass takes a good part of a second.
        let (aside, jobs, known) = std::thread::scope(|scope| {
            let aside = scope.spawn(|| store.set_aside_undecodable());
            let known = scope.spawn(|| Manifest::read(dir));
            let jobs = store.read_jobs();
            let damaged = || StoreError::Damaged {
                path: path.clone(),
                detail: "reading its records failed".into(),
            };
            let unreadable = || manifest::ManifestError::Damaged {
                path: dir.join(manifest::MANIFEST_FILE),
                detail: "reading it failed".into(),
            };
            (
                joined(aside, || Err(damaged())),
                jobs,
                joined(known, || Err(unreadable())),
            )
        });
        aside?;
        let mut jobs = jobs?;
        let mut store = store;
        store.reconcile(std::mem::take(&mut jobs.live), known)?;
        store.flush_blocking()?;
        // The database now holds every live id on disk; the journal starts again from them.
        let next_id = store.catalogue().next_id;
        Manifest::write_lines(dir, next_id, &jobs.catalogue)
            .map_err(|source| store.catalogue_error(source))?;
        *store
            .found
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(jobs.summaries);
        Ok(store)
    }

    /// Moves every record that does not decode, raw, to the quarantine tree. Job records
    /// are checked by `read_jobs`, which reads them anyway.
    fn set_aside_undecodable(&self) -> Result<(), StoreError> {
        let path = self.dir.join(DB_DIR);
        for name in RECORD_TREES.into_iter().filter(|&name| name != "jobs") {
            let tree = self.tree(name);
            let mut bad = Vec::new();
            for item in tree.iter() {
                let (key, value) = item.map_err(|e| open_error(&path, e))?;
                if let Some(problem) = record_problem(name, &key, &value) {
                    bad.push((key, value, problem));
                }
            }
            for (key, value, problem) in bad {
                self.quarantine(name, &key, &value, &problem)?;
            }
        }
        Ok(())
    }

    /// Moves one record, bytes and all, from tree `name` to the quarantine tree.
    fn quarantine(
        &self,
        name: &str,
        key: &[u8],
        value: &[u8],
        problem: &str,
    ) -> Result<(), StoreError> {
        let mut quarantine_key = format!("{name}/").into_bytes();
        quarantine_key.extend_from_slice(key);
        (self.tree(name), &self.quarantine)
            .transaction(|(tree, quarantine)| {
                quarantine.insert(quarantine_key.as_slice(), value)?;
                tree.remove(key)?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(flatten)?;
        tracing::error!(
            tree = name,
            key = %hex(key),
            %problem,
            "a record of the queue database does not decode; moved it, bytes and all, to the quarantine tree"
        );
        Ok(())
    }

    /// The one pass over the job records at open: each is decoded once, for its summary
    /// and its catalogue line; one that does not decode goes to the quarantine tree.
    fn read_jobs(&self) -> Result<JobsRead, StoreError> {
        let path = self.dir.join(DB_DIR);
        let mut read = JobsRead::default();
        let mut names = crate::job::Names::default();
        let mut bad = Vec::new();
        for item in self.jobs.iter() {
            let (key, value) = item.map_err(|e| open_error(&path, e))?;
            match checked_job(&key, &value) {
                Ok(job) => {
                    let id = job.id();
                    manifest::add_line(&mut read.catalogue, id, catalogue_entry(&job));
                    read.summaries
                        .insert(id, job.summary(names.shared(job.destination())));
                    read.live.insert(id);
                }
                Err(problem) => bad.push((key, value, problem)),
            }
        }
        for (key, value, problem) in bad {
            self.quarantine("jobs", &key, &value, &problem)?;
        }
        Ok(read)
    }
    fn tree(&self, name: &str) -> &sled::Tree {
        match name {
            "jobs" => &self.jobs,
            "history" => &self.history,
            "cleanups" => &self.cleanups,
            "posts" => &self.posts,
            QUARANTINE_TREE => &self.quarantine,
            _ => &self.meta,
        }
    }

    /// Ids of jobs whose record is in quarantine.
    fn quarantined_job_ids(&self) -> Result<BTreeSet<u64>, StoreError> {
        let mut ids = BTreeSet::new();
        for key in self.quarantine.scan_prefix(b"jobs/").keys() {
            if let Some(id) = be_u64(&key?[5..]) {
                ids.insert(id);
            }
        }
        Ok(ids)
    }

    /// Compares the jobs in the database (`live`) with the catalogue file: jobs it lists
    /// that the database lost are recorded and reported, and the id counter never goes back.
    fn reconcile(
        &mut self,
        live: BTreeSet<u64>,
        known: Result<Option<Manifest>, manifest::ManifestError>,
    ) -> Result<(), StoreError> {
        let stored_next = match self.meta.get(NEXT_ID_KEY)? {
            Some(raw) => match be_u64(&raw) {
                Some(next) => Some(next),
                None => {
                    self.quarantine.insert(b"meta/next_id", raw.clone())?;
                    tracing::error!(
                        bytes = raw.len(),
                        "the id counter does not decode; moved it to the quarantine tree"
                    );
                    None
                }
            },
            None => None,
        };
        let known = match known {
            Ok(known) => known,
            Err(e) => {
                tracing::error!(error = %e, "the job catalogue cannot be used; rebuilding it from the database (jobs lost before now cannot be told)");
                None
            }
        };
        let quarantined = self.quarantined_job_ids()?;
        let mut lost = manifest::read_lost(&self.dir).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the list of lost jobs cannot be read");
            Vec::new()
        });
        let now = Utc::now();
        let newly_lost: Vec<Lost> = known
            .iter()
            .flat_map(|m| m.jobs.iter())
            .filter(|(id, _)| !live.contains(id) && !quarantined.contains(id))
            .map(|(&id, entry)| Lost {
                id,
                file: entry.file.clone(),
                title: entry.title.clone(),
                noticed_at: now,
            })
            .collect();
        let next_floor = [
            live.last().map_or(1, |id| id + 1),
            quarantined.iter().next_back().map_or(1, |id| id + 1),
            known.as_ref().map_or(1, |m| m.next_id),
            stored_next.unwrap_or(1),
        ]
        .into_iter()
        .max()
        .unwrap_or(1);
        if stored_next != Some(next_floor) && (stored_next.is_some() || next_floor > 1) {
            tracing::warn!(
                stored = ?stored_next,
                next_id = next_floor,
                "the id counter was behind the ids already given out; moved it forward so no id is reused"
            );
            self.meta.insert(NEXT_ID_KEY, &next_floor.to_be_bytes())?;
        }
        if !newly_lost.is_empty() {
            for job in &newly_lost {
                tracing::error!(
                    job = job.id,
                    file = %job.file,
                    title = job.title.as_deref().unwrap_or(""),
                    "job lost: the queue database no longer has it"
                );
            }
            tracing::error!(
                lost = newly_lost.len(),
                database = %self.dir.join(DB_DIR).display(),
                listed_in = %self.dir.join(manifest::LOST_FILE).display(),
                "the queue database lost jobs (damaged or truncated); they are listed in `upqctl status` until that file is deleted"
            );
            lost.retain(|old| newly_lost.iter().all(|new| new.id != old.id));
            lost.extend(newly_lost);
            manifest::write_lost(&self.dir, &lost).map_err(|source| StoreError::Catalogue {
                path: self.dir.join(manifest::LOST_FILE),
                source,
            })?;
        }
        self.lost = lost;
        self.catalogue = Mutex::new(Catalogue {
            live,
            next_id: next_floor,
            added: Vec::new(),
            removed: Vec::new(),
        });
        Ok(())
    }
}

/// What a thread of the open returned, or `failed()` when it panicked (inside sled).
fn joined<T>(thread: std::thread::ScopedJoinHandle<'_, T>, failed: impl FnOnce() -> T) -> T {
    thread.join().unwrap_or_else(|_| failed())
}

/// What the pass over the job records at open found.
#[derive(Default)]
struct JobsRead {
    live: BTreeSet<u64>,
    summaries: BTreeMap<u64, crate::job::Summary>,
    /// The catalogue's lines for them, without its start line.
    catalogue: Vec<u8>,
}

/// Brings a database written by an older upqd to `SCHEMA_VERSION`, in place, before anything
/// else reads it.
/// - Schema 1 → 2 drops the drafts index, which was written and never read: a draft is a
///   job in the `canceled` state.
/// - Schema 2 → 3 rewrites each flat job record in the layout of `job::Job`. A record that
///   reads in neither layout is left as it is, for the quarantine to keep.
///
/// Histories, clean-ups, the id counter and the quarantine are untouched. The new version
/// is written last, after a flush, so an interrupted upgrade runs again (a record already
/// rewritten reads as it is); from then on an older upqd refuses the database.
fn migrate(db: &sled::Db, meta: &sled::Tree, found: u64) -> Result<(), sled::Error> {
    if found < 2 {
        db.drop_tree("drafts")?;
        tracing::info!("queue database upgraded from schema {found}: the drafts index is gone");
    }
    if found < 3 {
        let jobs = db.open_tree("jobs")?;
        let mut rewritten = 0usize;
        for item in jobs.iter() {
            let (key, value) = item?;
            if let Ok(job) = Job::decode(&value) {
                let layout = encode(&job);
                if layout != value.as_ref() {
                    jobs.insert(key, layout)?;
                    rewritten += 1;
                }
            }
        }
        tracing::info!(
            "queue database upgraded from schema {found}: {rewritten} job records rewritten"
        );
    }
    db.flush()?;
    meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
    db.flush()?;
    Ok(())
}
