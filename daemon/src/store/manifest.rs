//! The job catalogue kept beside the database: every live job id with its file and title,
//! and the id counter, so a database that silently lost records is noticed at open.
//!
//! Lives outside `queue.sled` (a truncated log cannot take it along): a journal of checksummed
//! lines, appended and synced only when ids come or go, rewritten whole (atomically) at start.

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

/// The catalogue: live ids and the next id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub next_id: u64,
    pub jobs: BTreeMap<u64, CatalogueEntry>,
}

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    /// The first line of a rewritten journal.
    Start {
        version: u32,
        next_id: u64,
    },
    Add {
        id: u64,
        #[serde(flatten)]
        entry: CatalogueEntry,
    },
    Remove {
        id: u64,
    },
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

fn checksum(body: &[u8]) -> String {
    blake3::hash(body).to_hex()[..16].to_string()
}

fn line(record: &Record) -> Vec<u8> {
    let body = serde_json::to_vec(record).expect("catalogue records serialize");
    let mut line = format!("{} ", checksum(&body)).into_bytes();
    line.extend_from_slice(&body);
    line.push(b'\n');
    line
}

impl Manifest {
    /// Replays the catalogue in `dir`; `Ok(None)` when there is none yet (a new or older folder).
    /// A last line cut short is an append a crash interrupted, and is ignored.
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
        let complete = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(end) => &bytes[..=end],
            None => &[][..],
        };
        let mut manifest = None::<Manifest>;
        for (number, text) in complete.split(|&b| b == b'\n').enumerate() {
            if text.is_empty() {
                continue;
            }
            let (sum, body) = text
                .iter()
                .position(|&b| b == b' ')
                .map(|space| (&text[..space], &text[space + 1..]))
                .ok_or_else(|| damaged(format!("line {} has no checksum", number + 1)))?;
            if sum != checksum(body).as_bytes() {
                return Err(damaged(format!("line {} fails its checksum", number + 1)));
            }
            let record: Record = serde_json::from_slice(body)
                .map_err(|e| damaged(format!("line {}: {e}", number + 1)))?;
            match (record, manifest.as_mut()) {
                (
                    Record::Start {
                        version: 1,
                        next_id,
                    },
                    None,
                ) => {
                    manifest = Some(Manifest {
                        next_id,
                        jobs: BTreeMap::new(),
                    })
                }
                (Record::Add { id, entry }, Some(m)) => {
                    m.next_id = m.next_id.max(id + 1);
                    m.jobs.insert(id, entry);
                }
                (Record::Remove { id }, Some(m)) => {
                    m.jobs.remove(&id);
                }
                (record, _) => {
                    return Err(damaged(format!(
                        "line {} is out of place: {record:?}",
                        number + 1
                    )))
                }
            }
        }
        manifest
            .map(Some)
            .ok_or_else(|| damaged("it does not start with a start line".into()))
    }

    /// Replaces the catalogue in `dir` with this one, atomically and durably.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let mut lines = Vec::new();
        for (&id, entry) in &self.jobs {
            add_line(&mut lines, id, entry.clone());
        }
        Manifest::write_lines(dir, self.next_id, &lines)
    }

    /// Replaces the catalogue in `dir`, atomically and durably, with one that starts at
    /// `next_id` and holds `lines` (made by `add_line`).
    pub fn write_lines(dir: &Path, next_id: u64, lines: &[u8]) -> std::io::Result<()> {
        let start = line(&Record::Start {
            version: 1,
            next_id,
        });
        write_atomically(dir, MANIFEST_FILE, &[&start, lines])
    }
}

/// Appends the catalogue line that lists job `id`.
pub fn add_line(lines: &mut Vec<u8>, id: u64, entry: CatalogueEntry) {
    lines.extend(line(&Record::Add { id, entry }));
}

/// Appends `records` to the catalogue in `dir` and syncs it (one write, one fdatasync).
pub fn append(dir: &Path, records: &[Record]) -> std::io::Result<()> {
    let bytes: Vec<u8> = records.iter().flat_map(line).collect();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join(MANIFEST_FILE))?;
    file.write_all(&bytes)?;
    file.sync_data()
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
    write_atomically(dir, LOST_FILE, &[&bytes])
}

/// Temp file, fsync, rename over `name`, fsync of the folder: a reader sees the old or the new file.
fn write_atomically(dir: &Path, name: &str, parts: &[&[u8]]) -> std::io::Result<()> {
    let temp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        for part in parts {
            file.write_all(part)?;
        }
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

    fn entry(file: &str, title: Option<&str>) -> CatalogueEntry {
        CatalogueEntry {
            file: file.into(),
            title: title.map(Into::into),
        }
    }

    fn sample() -> Manifest {
        let mut jobs = BTreeMap::new();
        jobs.insert(3, entry("/v/a.mp4", Some("A")));
        jobs.insert(7, entry("/v/b.mp4", None));
        Manifest { next_id: 8, jobs }
    }

    #[test]
    fn a_written_and_appended_catalogue_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), None);
        sample().write(dir.path()).unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), Some(sample()));
        append(
            dir.path(),
            &[
                Record::Remove { id: 3 },
                Record::Add {
                    id: 9,
                    entry: entry("/v/c.mp4", Some("C")),
                },
            ],
        )
        .unwrap();
        let read = Manifest::read(dir.path()).unwrap().unwrap();
        assert_eq!(read.next_id, 10);
        assert_eq!(read.jobs.keys().copied().collect::<Vec<_>>(), [7, 9]);
    }

    #[test]
    fn a_catalogue_whose_ids_were_changed_is_not_trusted_but_a_torn_append_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        sample().write(dir.path()).unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{text}0123 {{\"add\":{{\"id\":")).unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), Some(sample()));
        std::fs::write(&path, text.replace("\"id\":7", "\"id\":6")).unwrap();
        let err = Manifest::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("fails its checksum"), "{err}");
    }
}
