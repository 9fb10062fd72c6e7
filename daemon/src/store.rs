//! The persistent queue on sled: jobs (a draft is a canceled job), their history, pending
//! remote clean-ups.
//!
//! A job record and its history entry are written in one transaction. Knows nothing of
//! sockets, HTTP or scheduling.

mod check;
pub mod manifest;
mod open;
pub mod space;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use upq_proto::HistoryEntry;

use crate::job::{Job, Names, RemoteSession, Summary};
use crate::post::Post;
pub use check::{check, CheckReport};
use manifest::{CatalogueEntry, Lost, Record};
use space::SpaceReserve;
pub use space::{available_bytes, MIN_FREE_BYTES};

/// The layout this build writes and understands. Schema 2 has no drafts index: a draft
/// is a job in the `canceled` state, and the jobs tree is the one place that says so.
/// Schema 3 stores a job's state with its data, and its remote upload apart from the rest
/// (see `job`); records of schema 1 and 2 still read, and opening rewrites them.
pub const SCHEMA_VERSION: u64 = 3;

/// The database's folder inside the data folder.
pub const DB_DIR: &str = "queue.sled";
/// Where records that do not decode are kept, raw, under `<tree>/<key>`.
pub const QUARANTINE_TREE: &str = "quarantine";
const SCHEMA_KEY: &[u8] = b"schema_version";
const NEXT_ID_KEY: &[u8] = b"next_id";
const NEXT_POST_ID_KEY: &[u8] = b"next_post_id";
const QUEUE_PAUSED_KEY: &[u8] = b"queue_paused";
/// The trees whose records are checked at open; the rest are the meta and quarantine trees.
const RECORD_TREES: [&str; 4] = ["jobs", "history", "cleanups", "posts"];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the queue database in {path} is in use by another upqd; stop it first, or start with another --data-dir")]
    Locked { path: PathBuf },
    #[error(
        "the queue database {path} is damaged ({detail}). upqd left it as it is: keep a copy \
         for recovery; `upqd --check` reports what it can still read"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error("the data folder {path} cannot be written: {source}")]
    Unwritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the queue database in {path} was written by a newer upq (schema {found}; this upqd \
         understands up to {SCHEMA_VERSION}). Nothing was changed: upgrade upq, or start with \
         another --data-dir"
    )]
    NewerSchema { path: PathBuf, found: u64 },
    #[error("no space left in the data folder {path} ({available} bytes free; upq keeps {MIN_FREE_BYTES} free for the queue). Queued jobs are safe; free some space and try again")]
    NoSpace { path: PathBuf, available: u64 },
    #[error("cannot write the job catalogue in {path}: {source}")]
    Catalogue {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("queue database error: {0}")]
    Db(#[from] sled::Error),
    #[error("corrupt record in the queue database ({what}): {detail}")]
    Corrupt { what: String, detail: String },
}

impl StoreError {
    /// True when the error comes from a full file system.
    pub fn is_no_space(&self) -> bool {
        let io = match self {
            StoreError::NoSpace { .. } => return true,
            StoreError::Db(sled::Error::Io(e)) => e,
            StoreError::Catalogue { source, .. } | StoreError::Unwritable { source, .. } => source,
            _ => return false,
        };
        io.raw_os_error() == Some(libc::ENOSPC)
    }
}

/// A remote partial upload that must be discarded, kept until that succeeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cleanup {
    pub job_id: u64,
    pub destination: String,
    pub session: RemoteSession,
    pub created_at: DateTime<Utc>,
}

/// The live ids as the store knows them, and the changes the catalogue file has yet to record.
struct Catalogue {
    live: BTreeSet<u64>,
    next_id: u64,
    /// Added since, with what the catalogue says of them; recorded after the database
    /// holds them on disk.
    added: Vec<(u64, CatalogueEntry)>,
    /// Removed since; recorded before the database forgets them on disk.
    removed: Vec<u64>,
}

impl Catalogue {
    fn take_added(&mut self) -> (Vec<(u64, CatalogueEntry)>, Vec<Record>) {
        let added = std::mem::take(&mut self.added);
        let records = added
            .iter()
            .map(|(id, entry)| Record::Add {
                id: *id,
                entry: entry.clone(),
            })
            .collect();
        (added, records)
    }

    /// After a failed write: changes not recorded are recorded at the next flush.
    fn put_back(&mut self, added: Vec<(u64, CatalogueEntry)>, removed: Vec<u64>) {
        for (id, entry) in added {
            if self.live.contains(&id) {
                self.added.push((id, entry));
            } else {
                // Removed meanwhile, and never recorded as added: nothing to record.
                self.removed.retain(|&r| r != id);
            }
        }
        self.removed.extend(removed);
    }
}

fn catalogue_entry(job: &Job) -> CatalogueEntry {
    CatalogueEntry {
        file: job.file().to_string_lossy().into_owned(),
        title: job.metadata().title.clone(),
    }
}

pub struct Store {
    db: sled::Db,
    dir: PathBuf,
    /// Signalled after every write that has not been flushed yet.
    dirty: tokio::sync::Notify,
    jobs: sled::Tree,
    history: sled::Tree,
    cleanups: sled::Tree,
    /// Posts by id (`crate::post::Post`).
    posts: sled::Tree,
    meta: sled::Tree,
    quarantine: sled::Tree,
    catalogue: Mutex<Catalogue>,
    /// One flush at a time updates the catalogue file, so its writes stay in order.
    catalogue_gate: tokio::sync::Mutex<()>,
    /// Flushes begun, and the last of them that succeeded: see `flush`.
    flushes_begun: AtomicU64,
    flushed: AtomicU64,
    lost: Vec<Lost>,
    space: SpaceReserve,
    /// What the pass at open read of every job, until the service takes it.
    found: Mutex<Option<BTreeMap<u64, Summary>>>,
}

fn history_key(id: u64, seq: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&id.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records always serialize")
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        detail: e.to_string(),
    })
}

/// Reads a job record in the current layout or an older one.
fn decode_job(bytes: &[u8]) -> Result<Job, StoreError> {
    Job::decode(bytes).map_err(|e| StoreError::Corrupt {
        what: "job".to_string(),
        detail: e.to_string(),
    })
}

/// A counter kept as 8 big-endian bytes; anything else aborts the transaction.
fn be_counter(raw: &[u8], what: &str) -> Result<u64, ConflictableTransactionError<StoreError>> {
    raw.try_into().map(u64::from_be_bytes).map_err(|_| {
        ConflictableTransactionError::Abort(StoreError::Corrupt {
            what: what.into(),
            detail: format!("{} bytes", raw.len()),
        })
    })
}

fn flatten(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Db(e),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    fn catalogue(&self) -> MutexGuard<'_, Catalogue> {
        // Each update is a single insert or remove; a poisoned lock still holds a whole map.
        self.catalogue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Jobs the catalogue listed and the database lost, oldest notice first.
    pub fn lost(&self) -> &[Lost] {
        &self.lost
    }

    /// Records set aside because they do not decode.
    pub fn quarantined(&self) -> usize {
        self.quarantine.len()
    }

    /// Refuses with `NoSpace` while the data folder's file system is full, or its space
    /// reserve (see `space.rs`) has been given back and cannot be taken again yet.
    pub fn check_space(&self) -> Result<(), StoreError> {
        self.space.admit().map_err(|available| StoreError::NoSpace {
            path: self.dir.clone(),
            available,
        })
    }

    /// Every job, in id order.
    pub fn load_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.jobs
            .iter()
            .values()
            .map(|value| decode_job(&value?))
            .collect()
    }

    /// One job's whole record.
    pub fn job(&self, id: u64) -> Result<Option<Job>, StoreError> {
        self.jobs
            .get(id.to_be_bytes())?
            .map(|value| decode_job(&value))
            .transpose()
    }

    /// What scheduling reads of every job, in id order. The first call takes what the
    /// pass at open read; later ones read the database again.
    pub fn summaries(&self) -> Result<BTreeMap<u64, Summary>, StoreError> {
        let found = self
            .found
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(found) = found {
            return Ok(found);
        }
        let mut names = Names::default();
        self.jobs
            .iter()
            .values()
            .map(|value| {
                let job = decode_job(&value?)?;
                Ok((job.id(), job.summary(names.shared(job.destination()))))
            })
            .collect()
    }

    /// Assigns the next id (never reused) and writes the new job with its first history entry.
    pub fn insert_new(&self, make: impl Fn(u64) -> (Job, HistoryEntry)) -> Result<Job, StoreError> {
        let mut jobs = self.insert_many(1, |id, _| make(id))?;
        Ok(jobs.remove(0))
    }

    /// Writes `count` new jobs in one transaction, with ids in a row (never reused):
    /// `make(id, n)` makes the `n`th. All are stored, or none.
    pub fn insert_many(
        &self,
        count: usize,
        make: impl Fn(u64, usize) -> (Job, HistoryEntry),
    ) -> Result<Vec<Job>, StoreError> {
        let no_post: Option<fn(u64, Vec<u64>) -> Post> = None;
        self.insert_jobs(count, make, no_post).map(|(jobs, _)| jobs)
    }

    /// Writes a post and its new jobs in one transaction, or nothing: the jobs get ids in a
    /// row, the post the next post id. `make_job(id, n)` makes the `n`th job of `count`;
    /// `make_post(post_id, job_ids)` the post.
    pub fn insert_post(
        &self,
        count: usize,
        make_job: impl Fn(u64, usize) -> (Job, HistoryEntry),
        make_post: impl Fn(u64, Vec<u64>) -> Post,
    ) -> Result<(Post, Vec<Job>), StoreError> {
        let (jobs, post) = self.insert_jobs(count, make_job, Some(make_post))?;
        let post = post.ok_or_else(|| StoreError::Corrupt {
            what: "new post".into(),
            detail: "the transaction made no post".into(),
        })?;
        Ok((post, jobs))
    }

    /// `count` new jobs with ids in a row, and the post `make_post` makes of them if given
    /// (the jobs then belong to it), in one transaction.
    fn insert_jobs(
        &self,
        count: usize,
        make_job: impl Fn(u64, usize) -> (Job, HistoryEntry),
        make_post: Option<impl Fn(u64, Vec<u64>) -> Post>,
    ) -> Result<(Vec<Job>, Option<Post>), StoreError> {
        self.space.guard();
        let counter = |raw: Option<sled::IVec>, what: &str| match raw {
            Some(raw) => be_counter(&raw, what),
            None => Ok(1),
        };
        (&self.meta, &self.jobs, &self.history, &self.posts)
            .transaction(|(meta, jobs, history, posts)| {
                let first = counter(meta.get(NEXT_ID_KEY)?, "id counter")?;
                meta.insert(NEXT_ID_KEY, &(first + count as u64).to_be_bytes())?;
                let post_id = match &make_post {
                    Some(_) => {
                        let id = counter(meta.get(NEXT_POST_ID_KEY)?, "post id counter")?;
                        meta.insert(NEXT_POST_ID_KEY, &(id + 1).to_be_bytes())?;
                        Some(id)
                    }
                    None => None,
                };
                let mut made = Vec::with_capacity(count);
                for (n, id) in (first..).take(count).enumerate() {
                    let (mut job, entry) = make_job(id, n);
                    if let Some(post) = post_id {
                        job.join_post(post);
                    }
                    jobs.insert(&job.id().to_be_bytes(), encode(&job))?;
                    history.insert(
                        &history_key(job.id(), job.history_len() - 1),
                        encode(&entry),
                    )?;
                    made.push(job);
                }
                let post = match (&make_post, post_id) {
                    (Some(make), Some(id)) => {
                        let post = make(id, made.iter().map(Job::id).collect());
                        posts.insert(&id.to_be_bytes(), encode(&post))?;
                        Some(post)
                    }
                    _ => None,
                };
                Ok((made, post))
            })
            .map_err(flatten)
            .inspect(|(made, _)| {
                let mut catalogue = self.catalogue();
                for job in made {
                    catalogue.live.insert(job.id());
                    catalogue.next_id = catalogue.next_id.max(job.id() + 1);
                    catalogue.added.push((job.id(), catalogue_entry(job)));
                }
                drop(catalogue);
                self.dirty.notify_one();
            })
    }

    /// A post by id.
    pub fn post(&self, id: u64) -> Result<Option<Post>, StoreError> {
        self.posts
            .get(id.to_be_bytes())?
            .map(|raw| {
                serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt {
                    what: format!("post p{id}"),
                    detail: e.to_string(),
                })
            })
            .transpose()
    }

    /// Every post, in id order; a record that does not decode is an error, not skipped.
    pub fn posts(&self) -> Result<Vec<Post>, StoreError> {
        self.posts_after(None).collect()
    }

    /// The posts after post number `after` (from the first when `None`), in id order, read
    /// one record at a time.
    pub fn posts_after(
        &self,
        after: Option<u64>,
    ) -> impl Iterator<Item = Result<Post, StoreError>> + '_ {
        let from = after.map_or(0, |id| id.saturating_add(1));
        self.posts.range(from.to_be_bytes()..).map(|item| {
            let (key, raw) = item?;
            serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt {
                what: format!("post record {}", hex(&key)),
                detail: e.to_string(),
            })
        })
    }

    /// Writes a post record (its release mark).
    pub fn write_post(&self, post: &Post) -> Result<(), StoreError> {
        self.space.guard();
        self.posts.insert(post.id().to_be_bytes(), encode(post))?;
        self.dirty.notify_one();
        Ok(())
    }

    /// Writes a job, with its new history entry and clean-up, atomically.
    pub fn write(
        &self,
        job: &Job,
        entry: Option<&HistoryEntry>,
        cleanup: Option<&Cleanup>,
    ) -> Result<(), StoreError> {
        self.space.guard();
        let id = job.id().to_be_bytes();
        (&self.jobs, &self.history, &self.cleanups)
            .transaction(|(jobs, history, cleanups)| {
                jobs.insert(&id, encode(job))?;
                if let Some(entry) = entry {
                    history.insert(&history_key(job.id(), job.history_len() - 1), encode(entry))?;
                }
                if let Some(cleanup) = cleanup {
                    cleanups.insert(&history_key(job.id(), job.history_len()), encode(cleanup))?;
                }
                Ok(())
            })
            .map_err(flatten)
            .inspect(|_| self.dirty.notify_one())
    }

    /// Writes only the job record (progress counters); no history entry.
    pub fn write_progress(&self, job: &Job) -> Result<(), StoreError> {
        self.space.guard();
        self.jobs.insert(job.id().to_be_bytes(), encode(job))?;
        self.dirty.notify_one();
        Ok(())
    }

    pub fn history(&self, id: u64) -> Result<Vec<HistoryEntry>, StoreError> {
        self.history
            .scan_prefix(id.to_be_bytes())
            .values()
            .map(|value| decode("history entry", &value?))
            .collect()
    }

    /// Forgets a job entirely (a discarded draft). Pending clean-ups stay.
    pub fn remove_job(&self, id: u64) -> Result<(), StoreError> {
        self.space.guard();
        let history_keys: Vec<_> = self
            .history
            .scan_prefix(id.to_be_bytes())
            .keys()
            .collect::<Result<_, _>>()?;
        (&self.jobs, &self.history)
            .transaction(|(jobs, history)| {
                jobs.remove(&id.to_be_bytes())?;
                for key in &history_keys {
                    history.remove(key)?;
                }
                Ok(())
            })
            .map_err(flatten)?;
        let mut catalogue = self.catalogue();
        catalogue.live.remove(&id);
        match catalogue.added.iter().position(|(added, _)| *added == id) {
            // Never recorded as added: nothing to record.
            Some(index) => {
                catalogue.added.remove(index);
            }
            None => catalogue.removed.push(id),
        }
        drop(catalogue);
        self.dirty.notify_one();
        Ok(())
    }

    /// Pending clean-ups with their keys.
    pub fn cleanups(&self) -> Result<Vec<(Vec<u8>, Cleanup)>, StoreError> {
        self.cleanups
            .iter()
            .map(|item| {
                let (key, value) = item?;
                Ok((key.to_vec(), decode("clean-up", &value)?))
            })
            .collect()
    }

    pub fn remove_cleanup(&self, key: &[u8]) -> Result<(), StoreError> {
        self.space.guard();
        self.cleanups.remove(key)?;
        Ok(())
    }

    /// Key of the clean-up written along with history entry `seq` of job `id`.
    pub fn cleanup_key(id: u64, seq: u64) -> Vec<u8> {
        history_key(id, seq).to_vec()
    }

    /// Whether `pause --all` holds the queue (survives restarts).
    pub fn queue_paused(&self) -> Result<bool, StoreError> {
        Ok(self
            .meta
            .get(QUEUE_PAUSED_KEY)?
            .is_some_and(|v| v.as_ref() == [1]))
    }

    pub fn set_queue_paused(&self, paused: bool) -> Result<(), StoreError> {
        self.space.guard();
        self.meta.insert(QUEUE_PAUSED_KEY, &[u8::from(paused)])?;
        Ok(())
    }

    /// Flushes writes that nobody flushed explicitly, at most `delay` after they happen.
    /// Sleeps while nothing is written.
    pub async fn flush_when_dirty(
        &self,
        delay: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = self.dirty.notified() => {}
                _ = stop.cancelled() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) = self.flush().await {
                tracing::error!(error = %e, "cannot flush the queue database");
            }
        }
    }

    /// Makes everything written so far durable, and records in the catalogue the ids that
    /// came or went: removals before the flush, additions after it, so the catalogue never
    /// lists an id the database may not hold on disk.
    ///
    /// Group commit: callers that arrive while a flush runs wait for the gate, and a flush
    /// that began after a caller arrived covers everything that caller wrote before it
    /// asked, so once that flush succeeded the caller returns without one of its own.
    /// Concurrent adds share one fsync, and a reply still means durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let arrived = self.flushes_begun.load(Ordering::SeqCst);
        let _gate = self.catalogue_gate.lock().await;
        if self.flushed.load(Ordering::SeqCst) > arrived {
            return Ok(());
        }
        let this = self.flushes_begun.fetch_add(1, Ordering::SeqCst) + 1;
        self.flush_now().await?;
        self.flushed.store(this, Ordering::SeqCst);
        Ok(())
    }

    async fn flush_now(&self) -> Result<(), StoreError> {
        self.space.guard();
        let removed = std::mem::take(&mut self.catalogue().removed);
        if !removed.is_empty() {
            let records = removed.iter().map(|&id| Record::Remove { id }).collect();
            if let Err(e) = self.append_async(records).await {
                self.catalogue().put_back(Vec::new(), removed);
                return Err(e);
            }
        }
        let (added, records) = self.catalogue().take_added();
        // On tokio's blocking pool rather than sled's own threads: the runtime then knows a
        // flush is under way (and a test's paused clock does not jump past it).
        let db = self.db.clone();
        let flushed = tokio::task::spawn_blocking(move || db.flush().map(|_| ()))
            .await
            .unwrap_or_else(|e| Err(sled::Error::Io(std::io::Error::other(e.to_string()))));
        if let Err(e) = flushed {
            self.catalogue().put_back(added, Vec::new());
            return Err(e.into());
        }
        if !records.is_empty() {
            if let Err(e) = self.append_async(records).await {
                self.catalogue().put_back(added, Vec::new());
                return Err(e);
            }
        }
        Ok(())
    }

    /// `flush` for start-up and tests, outside the runtime.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        let removed = std::mem::take(&mut self.catalogue().removed);
        if !removed.is_empty() {
            let records: Vec<Record> = removed.iter().map(|&id| Record::Remove { id }).collect();
            if let Err(e) = manifest::append(&self.dir, &records) {
                self.catalogue().put_back(Vec::new(), removed);
                return Err(self.catalogue_error(e));
            }
        }
        let (added, records) = self.catalogue().take_added();
        if let Err(e) = self.db.flush() {
            self.catalogue().put_back(added, Vec::new());
            return Err(e.into());
        }
        if !records.is_empty() {
            if let Err(e) = manifest::append(&self.dir, &records) {
                self.catalogue().put_back(added, Vec::new());
                return Err(self.catalogue_error(e));
            }
        }
        Ok(())
    }

    async fn append_async(&self, records: Vec<Record>) -> Result<(), StoreError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || manifest::append(&dir, &records))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
            .map_err(|e| self.catalogue_error(e))
    }

    fn catalogue_error(&self, source: std::io::Error) -> StoreError {
        StoreError::Catalogue {
            path: self.dir.join(manifest::MANIFEST_FILE),
            source,
        }
    }
}

#[cfg(test)]
mod tests;
