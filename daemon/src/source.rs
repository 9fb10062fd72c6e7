//! Reading the user's file: read-only, at exact offsets, checked against its fingerprint.
//!
//! Blocking I/O: callers run it on the blocking pool. Never writes, renames or deletes.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::job::Fingerprint;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: the file does not exist")]
    Missing { path: PathBuf },
    #[error("{path}: not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path}: cannot read the file: {source}")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("{path}: the file changed since it was queued ({what}); upq never uploads a mix of old and new bytes")]
    Changed { path: PathBuf, what: String },
}

fn fingerprint_of(meta: &std::fs::Metadata) -> Fingerprint {
    Fingerprint {
        size: meta.len(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        inode: meta.ino(),
        device: meta.dev(),
    }
}

fn describe_change(expected: &Fingerprint, found: &Fingerprint) -> Option<String> {
    if expected.inode != found.inode || expected.device != found.device {
        Some("it was replaced by another file".into())
    } else if expected.size != found.size {
        Some(format!("size {} -> {} bytes", expected.size, found.size))
    } else if expected.mtime_ns != found.mtime_ns {
        Some("its modification time changed".into())
    } else {
        None
    }
}

/// An open, read-only handle on a job's file.
pub struct Source {
    file: File,
    path: PathBuf,
    fingerprint: Fingerprint,
}

impl Source {
    /// Opens `path` read-only and returns it with its current fingerprint.
    pub fn open(path: &Path) -> Result<Source, SourceError> {
        let file = File::open(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => SourceError::Missing {
                path: path.to_path_buf(),
            },
            _ => SourceError::Unreadable {
                path: path.to_path_buf(),
                source,
            },
        })?;
        let meta = file.metadata().map_err(|source| SourceError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        if !meta.is_file() {
            return Err(SourceError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        Ok(Source {
            fingerprint: fingerprint_of(&meta),
            file,
            path: path.to_path_buf(),
        })
    }

    /// Opens `path` and insists it is still the file that was queued.
    pub fn open_expecting(path: &Path, expected: &Fingerprint) -> Result<Source, SourceError> {
        let source = Source::open(path)?;
        source.compare(expected, &source.fingerprint)?;
        Ok(source)
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    fn compare(&self, expected: &Fingerprint, found: &Fingerprint) -> Result<(), SourceError> {
        match describe_change(expected, found) {
            Some(what) => Err(SourceError::Changed {
                path: self.path.clone(),
                what,
            }),
            None => Ok(()),
        }
    }

    /// Fails if the open file or the file now at its path differs from `expected`.
    pub fn check_unchanged(&self, expected: &Fingerprint) -> Result<(), SourceError> {
        let open_meta = self
            .file
            .metadata()
            .map_err(|source| SourceError::Unreadable {
                path: self.path.clone(),
                source,
            })?;
        self.compare(expected, &fingerprint_of(&open_meta))?;
        match std::fs::metadata(&self.path) {
            Ok(meta) => self.compare(expected, &fingerprint_of(&meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SourceError::Changed {
                path: self.path.clone(),
                what: "it was moved or deleted".into(),
            }),
            Err(source) => Err(SourceError::Unreadable {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Reads exactly `len` bytes at `offset`; a short read means the file shrank.
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let mut buffer = vec![0u8; len];
        self.file
            .read_exact_at(&mut buffer, offset)
            .map_err(|source| match source.kind() {
                io::ErrorKind::UnexpectedEof => SourceError::Changed {
                    path: self.path.clone(),
                    what: format!("it ends before byte {}", offset + len as u64),
                },
                _ => SourceError::Unreadable {
                    path: self.path.clone(),
                    source,
                },
            })?;
        Ok(Bytes::from(buffer))
    }

    /// Hashes the first `len` bytes, to pick up the content hash after a resume.
    pub fn hash_prefix(
        &self,
        len: u64,
        hasher: &mut blake3::Hasher,
        mut on_block: impl FnMut(),
    ) -> Result<(), SourceError> {
        const BLOCK: u64 = 1024 * 1024;
        let mut buffer = vec![0u8; BLOCK as usize];
        let mut offset = 0;
        while offset < len {
            let n = BLOCK.min(len - offset) as usize;
            self.file
                .read_exact_at(&mut buffer[..n], offset)
                .map_err(|source| SourceError::Unreadable {
                    path: self.path.clone(),
                    source,
                })?;
            hasher.update(&buffer[..n]);
            offset += n as u64;
            on_block();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn detects_changes_and_short_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.mp4");
        std::fs::write(&path, b"0123456789").unwrap();
        let source = Source::open(&path).unwrap();
        let fingerprint = source.fingerprint();
        assert_eq!(fingerprint.size, 10);
        assert_eq!(&source.read_at(2, 3).unwrap()[..], b"234");
        assert!(matches!(
            source.read_at(8, 5),
            Err(SourceError::Changed { .. })
        ));
        source.check_unchanged(&fingerprint).unwrap();

        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"more")
            .unwrap();
        let err = source
            .check_unchanged(&fingerprint)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("changed"), "{err}");
    }

    #[test]
    fn refuses_directories_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Source::open(dir.path()),
            Err(SourceError::NotAFile { .. })
        ));
        assert!(matches!(
            Source::open(&dir.path().join("nope")),
            Err(SourceError::Missing { .. })
        ));
    }
}
