//! The persistent queue on sled: jobs, their history, drafts, pending remote clean-ups.
//!
//! A job record and its history entry are written in one transaction. Knows nothing of
//! sockets, HTTP or scheduling.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use upq_proto::HistoryEntry;

use crate::job::{Job, RemoteSession};

/// The layout this build writes and understands.
pub const SCHEMA_VERSION: u64 = 1;

const SCHEMA_KEY: &[u8] = b"schema_version";
const NEXT_ID_KEY: &[u8] = b"next_id";
const QUEUE_PAUSED_KEY: &[u8] = b"queue_paused";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the queue database in {path} is in use by another upqd; stop it first, or start with another --data-dir")]
    Locked { path: PathBuf },
    #[error("cannot open the queue database in {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error(
        "the queue database in {path} was written by a newer upq (schema {found}; this upqd \
         understands up to {SCHEMA_VERSION}). Nothing was changed: upgrade upq, or start with \
         another --data-dir"
    )]
    NewerSchema { path: PathBuf, found: u64 },
    #[error("queue database error: {0}")]
    Db(#[from] sled::Error),
    #[error("corrupt record in the queue database ({what}): {detail}")]
    Corrupt { what: String, detail: String },
}

/// A remote partial upload that must be discarded, kept until that succeeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cleanup {
    pub job_id: u64,
    pub destination: String,
    pub session: RemoteSession,
    pub created_at: DateTime<Utc>,
}

/// What a write does to the drafts index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftChange {
    Keep,
    Add,
    Remove,
}

pub struct Store {
    db: sled::Db,
    /// Signalled after every write that has not been flushed yet.
    dirty: tokio::sync::Notify,
    jobs: sled::Tree,
    history: sled::Tree,
    drafts: sled::Tree,
    cleanups: sled::Tree,
    meta: sled::Tree,
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

fn abort(e: ConflictableTransactionError<StoreError>) -> ConflictableTransactionError<StoreError> {
    e
}

fn flatten(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Db(e),
    }
}

impl Store {
    /// Opens (or creates) the database under `dir`. Refuses a newer schema without touching it.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join("queue.sled");
        let config = sled::Config::new()
            .path(&path)
            // The queue is small; a small cache keeps the daemon's memory flat.
            .cache_capacity(4 * 1024 * 1024)
            // Flushes are ours (see `flush_when_dirty`): an idle daemon never wakes up.
            .flush_every_ms(None);
        // A daemon that just exited may hold the file lock for a moment longer.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(source)
                    if source.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(source) if source.to_string().contains("could not acquire lock") => {
                    return Err(StoreError::Locked { path });
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        path: path.clone(),
                        source,
                    })
                }
            }
        };
        let meta = db.open_tree("meta")?;
        match meta.get(SCHEMA_KEY)? {
            Some(raw) => {
                let found = u64::from_be_bytes(raw.as_ref().try_into().map_err(|_| {
                    StoreError::Corrupt {
                        what: "schema version".into(),
                        detail: format!("{} bytes", raw.len()),
                    }
                })?);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { path, found });
                }
            }
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
        }
        Ok(Store {
            jobs: db.open_tree("jobs")?,
            history: db.open_tree("history")?,
            drafts: db.open_tree("drafts")?,
            cleanups: db.open_tree("cleanups")?,
            meta,
            db,
            dirty: tokio::sync::Notify::new(),
        })
    }

    /// Every job, in id order.
    pub fn load_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.jobs
            .iter()
            .values()
            .map(|value| decode("job", &value?))
            .collect()
    }

    /// Assigns the next id (never reused) and writes the new job with its first history entry.
    pub fn insert_new(&self, make: impl Fn(u64) -> (Job, HistoryEntry)) -> Result<Job, StoreError> {
        (&self.meta, &self.jobs, &self.history)
            .transaction(|(meta, jobs, history)| {
                let next = match meta.get(NEXT_ID_KEY)? {
                    Some(raw) => u64::from_be_bytes(raw.as_ref().try_into().map_err(|_| {
                        abort(ConflictableTransactionError::Abort(StoreError::Corrupt {
                            what: "id counter".into(),
                            detail: format!("{} bytes", raw.len()),
                        }))
                    })?),
                    None => 1,
                };
                let (job, entry) = make(next);
                meta.insert(NEXT_ID_KEY, &(next + 1).to_be_bytes())?;
                jobs.insert(&job.id.to_be_bytes(), encode(&job))?;
                history.insert(&history_key(job.id, job.history_len - 1), encode(&entry))?;
                Ok(job)
            })
            .map_err(flatten)
            .inspect(|_| self.dirty.notify_one())
    }

    /// Writes a job, with its new history entry, draft index change and clean-up, atomically.
    pub fn write(
        &self,
        job: &Job,
        entry: Option<&HistoryEntry>,
        draft: DraftChange,
        cleanup: Option<&Cleanup>,
    ) -> Result<(), StoreError> {
        let id = job.id.to_be_bytes();
        (&self.jobs, &self.history, &self.drafts, &self.cleanups)
            .transaction(|(jobs, history, drafts, cleanups)| {
                jobs.insert(&id, encode(job))?;
                if let Some(entry) = entry {
                    history.insert(&history_key(job.id, job.history_len - 1), encode(entry))?;
                }
                match draft {
                    DraftChange::Keep => {}
                    DraftChange::Add => {
                        drafts.insert(&id, &[])?;
                    }
                    DraftChange::Remove => {
                        drafts.remove(&id)?;
                    }
                }
                if let Some(cleanup) = cleanup {
                    cleanups.insert(&history_key(job.id, job.history_len), encode(cleanup))?;
                }
                Ok(())
            })
            .map_err(flatten)
            .inspect(|_| self.dirty.notify_one())
    }

    /// Writes only the job record (progress counters); no history entry.
    pub fn write_progress(&self, job: &Job) -> Result<(), StoreError> {
        self.jobs.insert(job.id.to_be_bytes(), encode(job))?;
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

    /// Ids of canceled jobs, in order.
    pub fn draft_ids(&self) -> Result<Vec<u64>, StoreError> {
        self.drafts
            .iter()
            .keys()
            .map(|key| {
                let key = key?;
                key.as_ref()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        what: "draft index".into(),
                        detail: format!("{} byte key", key.len()),
                    })
            })
            .collect()
    }

    /// Forgets a job entirely (a discarded draft). Pending clean-ups stay.
    pub fn remove_job(&self, id: u64) -> Result<(), StoreError> {
        let history_keys: Vec<_> = self
            .history
            .scan_prefix(id.to_be_bytes())
            .keys()
            .collect::<Result<_, _>>()?;
        (&self.jobs, &self.history, &self.drafts)
            .transaction(|(jobs, history, drafts)| {
                jobs.remove(&id.to_be_bytes())?;
                drafts.remove(&id.to_be_bytes())?;
                for key in &history_keys {
                    history.remove(key)?;
                }
                Ok(())
            })
            .map_err(flatten)
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

    /// Makes everything written so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Fingerprint, NewJob};
    use upq_proto::{JobState, Metadata};

    fn new_job(id: u64) -> (Job, HistoryEntry) {
        let new = NewJob {
            file: PathBuf::from("/v/a.mp4"),
            destination: "local".into(),
            metadata: Metadata::default(),
            fingerprint: Fingerprint {
                size: 10,
                mtime_ns: 0,
                inode: 1,
                device: 1,
            },
            publish_at: None,
            hold: false,
            priority: 0,
            warning: None,
        };
        Job::queued(id, new, Utc::now())
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert,
        RemoveNewest,
        Reopen,
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Whatever mix of inserts, removals and reopenings: every id is new and larger.
        #[test]
        fn ids_are_never_reused(ops in proptest::collection::vec(
            proptest::prop_oneof![
                4 => proptest::strategy::Just(Op::Insert),
                2 => proptest::strategy::Just(Op::RemoveNewest),
                1 => proptest::strategy::Just(Op::Reopen),
            ],
            1..40,
        )) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = Some(Store::open(dir.path()).unwrap());
            let mut issued: Vec<u64> = Vec::new();
            for op in ops {
                let current = store.as_ref().unwrap();
                match op {
                    Op::Insert => issued.push(current.insert_new(new_job).unwrap().id),
                    Op::RemoveNewest => {
                        if let Some(&id) = issued.last() {
                            current.remove_job(id).unwrap();
                        }
                    }
                    Op::Reopen => {
                        current.flush_blocking().unwrap();
                        drop(store.take());
                        store = Some(Store::open(dir.path()).unwrap());
                    }
                }
            }
            proptest::prop_assert!(issued.windows(2).all(|w| w[0] < w[1]), "{:?}", issued);
        }
    }

    #[test]
    fn a_transition_and_its_history_are_stored_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut job = store.insert_new(new_job).unwrap();
        job.state = JobState::Canceled;
        job.history_len += 1;
        let entry = HistoryEntry {
            at: Utc::now(),
            from: Some(JobState::Queued),
            to: JobState::Canceled,
            reason: "canceled by the user".into(),
        };
        store
            .write(&job, Some(&entry), DraftChange::Add, None)
            .unwrap();
        assert_eq!(store.history(job.id).unwrap().len(), 2);
        assert_eq!(store.draft_ids().unwrap(), vec![job.id]);
        assert_eq!(store.load_jobs().unwrap()[0].state, JobState::Canceled);
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.insert_new(new_job).unwrap();
            store
                .meta
                .insert(SCHEMA_KEY, &(SCHEMA_VERSION + 1).to_be_bytes())
                .unwrap();
            store.flush_blocking().unwrap();
        }
        let err = Store::open(dir.path())
            .err()
            .expect("newer schema must be refused");
        let message = err.to_string();
        assert!(message.contains("newer upq"), "{message}");
        // The data is still there for the newer version.
        let db = sled::open(dir.path().join("queue.sled")).unwrap();
        assert_eq!(db.open_tree("jobs").unwrap().len(), 1);
    }
}
