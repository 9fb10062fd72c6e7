//! The `dir` destination: a local folder that behaves like a careful remote.
//!
//! Chunks go to `<path>/.partial/<id>-<name>`, each fsynced before it is acknowledged; the
//! commit verifies the staged copy's hash and renames it into place without overwriting.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::{Chunk, Committed, DestError, Destination, ErrorClass, Processing, UploadInfo};
use crate::job::RemoteSession;
use crate::pacer::Pacer;

#[derive(Debug)]
pub struct DirDestination {
    root: PathBuf,
    chunk_size: u64,
}

fn io_error(what: &str, path: &Path, e: io::Error) -> DestError {
    // A vanished folder is usually an unmounted drive: worth waiting for.
    DestError::transient("destination", format!("{what} {}: {e}", path.display()))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DestError> + Send + 'static,
) -> Result<T, DestError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(DestError::transient(
            "internal",
            format!("I/O task failed: {e}"),
        ))
    })
}

impl DirDestination {
    pub fn new(root: PathBuf, chunk_size: u64) -> DirDestination {
        DirDestination { root, chunk_size }
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

    fn check_root(&self) -> Result<(), DestError> {
        match std::fs::metadata(&self.root) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(DestError::permanent(
                "destination",
                format!("destination {} is not a folder", self.root.display()),
            )),
            Err(e) => Err(io_error("destination folder", &self.root, e)),
        }
    }
}

/// `name`, then `name (1).ext`, `name (2).ext`, ...
fn candidate_name(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

/// Moves `from` to `to` only if `to` does not exist, atomically.
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    let from_c = CString::new(from.as_os_str().as_bytes())?;
    let to_c = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from_c.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // Filesystems without RENAME_NOREPLACE: a hard link also refuses to overwrite.
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        _ => Err(err),
    }
}

/// Asks the kernel to start writing a range to disk now, so the fsync that
/// acknowledges the chunk finds most of it already written.
fn start_writeback(file: &File, offset: u64, len: usize) {
    // SAFETY: a plain syscall on a descriptor we own; failure only loses the hint.
    unsafe {
        libc::sync_file_range(
            std::os::fd::AsRawFd::as_raw_fd(file),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

fn fsync_dir(path: &Path) {
    if let Ok(dir) = File::open(path) {
        let _ = dir.sync_all();
    }
}

/// BLAKE3 of a whole file. Maps it a window at a time and hashes each window on all
/// cores; unmapping each window keeps the mapped pages out of the resident set.
fn hash_file(path: &Path) -> io::Result<String> {
    const WINDOW: u64 = 4 * 1024 * 1024;
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut hasher = blake3::Hasher::new();
    let mut offset = 0u64;
    while offset < len {
        let window = WINDOW.min(len - offset) as usize;
        // SAFETY: a shared read-only mapping of a file we opened; the slice is only used
        // while mapped. A concurrent truncation would fault, but partial files are only
        // written by this daemon's own worker, which has finished before the commit.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                window,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                std::os::fd::AsRawFd::as_raw_fd(&file),
                offset as libc::off_t,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the mapping is `window` readable bytes until munmap below.
        let bytes = unsafe { std::slice::from_raw_parts(map as *const u8, window) };
        hasher.update_rayon(bytes);
        // SAFETY: unmapping exactly what was mapped; `bytes` is not used afterwards.
        unsafe { libc::munmap(map, window) };
        offset += window as u64;
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Looks for a file already moved into place under `name` or a suffixed name with the
/// expected size and content.
fn find_committed(root: &Path, name: &str, size: u64, hash: &str) -> Option<Committed> {
    (0..10_000)
        .map(|n| root.join(candidate_name(name, n)))
        .take_while(|path| path.exists())
        .find(|path| {
            std::fs::metadata(path).is_ok_and(|m| m.len() == size)
                && hash_file(path).is_ok_and(|h| h == hash)
        })
        .map(|path| Committed {
            location: path.to_string_lossy().into_owned(),
        })
}

#[async_trait]
impl Destination for DirDestination {
    fn kind(&self) -> &'static str {
        "dir"
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
        match self.check_root() {
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
        self.check_root()?;
        let partial_dir = self.partial_dir();
        std::fs::create_dir_all(&partial_dir)
            .map_err(|e| io_error("cannot create", &partial_dir, e))?;
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
        self.check_root()?;
        let partial = Self::partial_path(session)?;
        let size = upload.size;
        blocking(move || {
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
        self.check_root()?;
        let partial = Self::partial_path(session)?;
        let offset = chunk.offset;
        let file = {
            let partial = partial.clone();
            blocking(move || {
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
            blocking(move || {
                file.write_all_at(&piece, at)
                    .map_err(|e| io_error("cannot write", &partial, e))?;
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
        blocking(move || {
            file.sync_data()
                .map_err(|e| io_error("cannot sync", &partial, e))?;
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
        self.check_root()?;
        let partial = Self::partial_path(session)?;
        let root = self.root.clone();
        let name = upload.name.clone();
        let expected = content_hash.to_string();
        let size = upload.size;
        blocking(move || {
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
        })
    }

    async fn discard(&self, session: &RemoteSession) -> Result<(), DestError> {
        let partial = match Self::partial_path(session) {
            Ok(partial) => partial,
            Err(_) => return Ok(()),
        };
        blocking(move || match std::fs::remove_file(&partial) {
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
}
