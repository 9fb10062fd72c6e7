//! The job catalogue kept beside the database: every live job id with its file and title,
//! and the id counter, so a database that silently lost records is noticed at open.
//!
//! Lives outside `queue.sled` (a truncated log cannot take it along) and is replaced
//! atomically (temp file, fsync, rename, fsync of the folder) only when ids come or go.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the catalogue in the data folder.
pub const MANIFEST_FILE: &str = "queue.manifest";
/// File name of the list of jobs found missing, kept until the user deletes it.
pub const LOST_FILE: &str = "lost-jobs.json";

/// What is known of a job without its database record: enough to tell the user what is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueEntry {
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// The catalogue as written: ids, the next id, and a checksum over both.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub next_id: u64,
    pub jobs: BTreeMap<u64, CatalogueEntry>,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    next_id: u64,
    count: u64,
    /// BLAKE3 of the ids and the counter, so a damaged or hand-edited file is not trusted.
    checksum: String,
    jobs: Vec<OnDiskEntry>,
}

#[derive(Serialize, Deserialize)]
struct OnDiskEntry {
    id: u64,
    #[serde(flatten)]
    entry: CatalogueEntry,
}

/// Why a catalogue on disk cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged: {detail}")]
    Damaged { path: PathBuf, detail: String },
}

fn checksum(next_id: u64, ids: impl Iterator<Item = u64>) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&next_id.to_be_bytes());
    for id in ids {
        hasher.update(&id.to_be_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

impl Manifest {
    /// Reads the catalogue in `dir`; `Ok(None)` when there is none yet (a new or older folder).
    pub fn read(dir: &Path) -> Result<Option<Manifest>, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ManifestError::Read { path, source }),
        };
        let damaged = |detail: String| ManifestError::Damaged {
            path: path.clone(),
            detail,
        };
        let on_disk: OnDisk = serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
        if on_disk.version != 1 {
            return Err(damaged(format!("unknown version {}", on_disk.version)));
        }
        if on_disk.count != on_disk.jobs.len() as u64 {
            return Err(damaged(format!(
                "says {} jobs but lists {}",
                on_disk.count,
                on_disk.jobs.len()
            )));
        }
        let expected = checksum(on_disk.next_id, on_disk.jobs.iter().map(|j| j.id));
        if expected != on_disk.checksum {
            return Err(damaged("checksum mismatch".into()));
        }
        Ok(Some(Manifest {
            next_id: on_disk.next_id,
            jobs: on_disk.jobs.into_iter().map(|j| (j.id, j.entry)).collect(),
        }))
    }

    /// Replaces the catalogue in `dir` atomically and durably.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let on_disk = OnDisk {
            version: 1,
            next_id: self.next_id,
            count: self.jobs.len() as u64,
            checksum: checksum(self.next_id, self.jobs.keys().copied()),
            jobs: self
                .jobs
                .iter()
                .map(|(&id, entry)| OnDiskEntry {
                    id,
                    entry: entry.clone(),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&on_disk).map_err(std::io::Error::other)?;
        write_atomically(dir, MANIFEST_FILE, &bytes)
    }
}

/// A job the catalogue listed and the database no longer has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lost {
    pub id: u64,
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub noticed_at: chrono::DateTime<chrono::Utc>,
}

impl Lost {
    pub fn view(&self) -> upq_proto::LostJob {
        upq_proto::LostJob {
            id: self.id,
            file: self.file.clone(),
            title: self.title.clone(),
            noticed_at: self.noticed_at,
        }
    }
}

/// The jobs found missing so far (empty when the file does not exist).
pub fn read_lost(dir: &Path) -> Result<Vec<Lost>, ManifestError> {
    let path = dir.join(LOST_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ManifestError::Damaged {
            path,
            detail: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(ManifestError::Read { path, source }),
    }
}

pub fn write_lost(dir: &Path, lost: &[Lost]) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(lost).map_err(std::io::Error::other)?;
    write_atomically(dir, LOST_FILE, &bytes)
}

/// Temp file, fsync, rename over `name`, fsync of the folder: a reader sees the old or the new file.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let temp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, dir.join(name))?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let mut jobs = BTreeMap::new();
        jobs.insert(
            3,
            CatalogueEntry {
                file: "/v/a.mp4".into(),
                title: Some("A".into()),
            },
        );
        jobs.insert(
            7,
            CatalogueEntry {
                file: "/v/b.mp4".into(),
                title: None,
            },
        );
        Manifest { next_id: 8, jobs }
    }

    #[test]
    fn a_written_catalogue_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), None);
        sample().write(dir.path()).unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), Some(sample()));
    }

    #[test]
    fn a_catalogue_whose_ids_were_changed_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        sample().write(dir.path()).unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"id\":7", "\"id\":6")).unwrap();
        let err = Manifest::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
    }
}
