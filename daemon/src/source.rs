//! Reading the user's file: read-only, at exact offsets, checked against its fingerprint.
//!
//! Blocking I/O: callers run it on the blocking pool. Never writes, renames or deletes, and
//! never waits on a FIFO, socket or device: those are refused before any read.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex};

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

/// Opens `path` read-only without ever blocking in `open` (a FIFO with no writer) and without
/// taking a terminal as the controlling one. Regular files read as usual with `O_NONBLOCK`.
pub fn open_without_waiting(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// An open, read-only handle on a job's file.
pub struct Source {
    file: File,
    path: PathBuf,
    fingerprint: Fingerprint,
    buffers: BufferPool,
}

/// Read buffers given back once the bytes read into them were sent, and handed out again.
///
/// A fresh 2 MiB buffer is fresh pages from the kernel: each one faulted in and zeroed,
/// and unmapped (with a TLB shootdown) when the bytes were sent. A profile of a tus
/// upload showed that costing more CPU than the read itself; a few buffers that go round
/// cost nothing.
#[derive(Debug, Clone, Default)]
struct BufferPool(Arc<Mutex<Vec<Vec<u8>>>>);

/// Buffers kept for reuse: the read ahead, the one being sent, and what the transport holds.
const POOLED_BUFFERS: usize = 6;

impl BufferPool {
    /// A buffer of exactly `len` bytes, reused when one is free.
    fn take(&self, len: usize) -> Vec<u8> {
        let reused = self.0.lock().ok().and_then(|mut free| free.pop());
        match reused {
            Some(mut buffer) => {
                buffer.resize(len, 0);
                buffer
            }
            None => vec![0u8; len],
        }
    }

    /// `buffer` as `Bytes` that return it to the pool when the last of them is dropped.
    fn bytes(&self, buffer: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buffer,
            pool: self.clone(),
        })
    }
}

struct Pooled {
    buffer: Vec<u8>,
    pool: BufferPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.buffer);
        if let Ok(mut free) = self.pool.0.lock() {
            if free.len() < POOLED_BUFFERS {
                free.push(buffer);
            }
        }
    }
}

impl Source {
    /// Opens `path` read-only and returns it with its current fingerprint; anything but a
    /// regular file is refused at once.
    pub fn open(path: &Path) -> Result<Source, SourceError> {
        let unreadable = |source| SourceError::Unreadable {
            path: path.to_path_buf(),
            source,
        };
        // Looked at before opening: opening a FIFO waits for a writer, a device may act on open.
        let meta = std::fs::metadata(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => SourceError::Missing {
                path: path.to_path_buf(),
            },
            _ => unreadable(source),
        })?;
        if !meta.is_file() {
            return Err(SourceError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        let file = open_without_waiting(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => SourceError::Missing {
                path: path.to_path_buf(),
            },
            _ => unreadable(source),
        })?;
        // The path may have been swapped between the look and the open: judge what was opened.
        let meta = file.metadata().map_err(unreadable)?;
        if !meta.is_file() {
            return Err(SourceError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        Ok(Source {
            fingerprint: fingerprint_of(&meta),
            file,
            path: path.to_path_buf(),
            buffers: BufferPool::default(),
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
        let mut buffer = self.buffers.take(len);
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
        Ok(self.buffers.bytes(buffer))
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
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn read_buffers_go_round_once_their_bytes_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.mp4");
        let content: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let source = Source::open(&path).unwrap();
        let first = source.read_at(0, 2048).unwrap();
        let held = source.read_at(2048, 2048).unwrap();
        assert_eq!(&first[..], &content[..2048]);
        assert_ne!(
            first.as_ptr(),
            held.as_ptr(),
            "a buffer in use is not handed out"
        );
        let address = first.as_ptr();
        drop(first);
        let again = source.read_at(1000, 1000).unwrap();
        assert_eq!(again.as_ptr(), address, "the dropped buffer is reused");
        assert_eq!(
            &again[..],
            &content[1000..2000],
            "and holds only the new bytes"
        );
        assert_eq!(&held[..], &content[2048..]);
    }

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

    /// Runs `work` on its own thread and fails the test if it takes longer than `limit`
    /// (an open that waits for a FIFO's writer would otherwise hang the test).
    fn within<T: Send + 'static>(
        limit: std::time::Duration,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let result = work();
            let _ = tx.send((result, started.elapsed()));
        });
        let (result, took) = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the call hung");
        assert!(took < limit, "took {took:?}, more than {limit:?}");
        result
    }

    #[test]
    fn refuses_fifos_sockets_and_devices_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.mp4");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo has no other preconditions.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let socket = dir.path().join("socket.mp4");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let limit = std::time::Duration::from_millis(100);
        for path in [fifo.clone(), socket, PathBuf::from("/dev/zero")] {
            let shown = path.display().to_string();
            let result = within(limit, move || Source::open(&path).map(|_| ()));
            assert!(
                matches!(result, Err(SourceError::NotAFile { .. })),
                "{shown}: {result:?}"
            );
        }
        // A FIFO put in place after the look is opened without waiting and then refused.
        let file = within(limit, move || open_without_waiting(&fifo)).unwrap();
        assert!(file.metadata().unwrap().file_type().is_fifo());
    }
}
