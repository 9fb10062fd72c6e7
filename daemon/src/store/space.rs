//! Room for the queue on a full disk: a reserve file in the data folder, given back the
//! moment free space runs out so sled can still save state, and taken again once space returns.
//!
//! sled treats one failed write as fatal until the next start, so it must never meet a full disk.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The reserve's file name in the data folder.
pub const RESERVE_FILE: &str = "space-reserve";
/// Size of the reserve: several of sled's 512 KiB segments and a large catalogue.
pub const RESERVE_BYTES: u64 = 4 * 1024 * 1024;
/// Free space below which the reserve is released and `add` refused.
pub const MIN_FREE_BYTES: u64 = 4 * 1024 * 1024;
/// Writes look at free space at most this often; one statfs call, not one per write.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Free bytes for an unprivileged writer on the file system holding `dir`.
pub fn available_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a valid NUL-terminated path and a buffer of the right type.
    if unsafe { libc::statvfs(c_path.as_ptr(), stats.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the buffer.
    let stats = unsafe { stats.assume_init() };
    #[allow(clippy::unnecessary_cast)]
    Ok(stats.f_bavail as u64 * stats.f_frsize as u64)
}

pub struct SpaceReserve {
    file: PathBuf,
    dir: PathBuf,
    checked_at: Mutex<Option<Instant>>,
}

impl SpaceReserve {
    /// Takes the reserve if it is missing and there is room for it.
    pub fn new(dir: &Path) -> SpaceReserve {
        let reserve = SpaceReserve {
            file: dir.join(RESERVE_FILE),
            dir: dir.to_path_buf(),
            checked_at: Mutex::new(None),
        };
        reserve.restore();
        reserve
    }

    /// Before a write: releases the reserve if the file system has run out of room.
    pub fn guard(&self) {
        {
            let mut checked_at = self
                .checked_at
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if checked_at.is_some_and(|at| at.elapsed() < CHECK_INTERVAL) {
                return;
            }
            *checked_at = Some(Instant::now());
        }
        if available_bytes(&self.dir).is_ok_and(|free| free < MIN_FREE_BYTES) {
            self.release();
        }
    }

    /// Whether a new job may be written: `Err(free bytes)` while the folder is full or the
    /// reserve is given back and cannot be taken again yet.
    pub fn admit(&self) -> Result<(), u64> {
        let Ok(free) = available_bytes(&self.dir) else {
            // Unknown free space is no reason to refuse; a failed write still reports itself.
            return Ok(());
        };
        if free < MIN_FREE_BYTES {
            self.release();
            return Err(free);
        }
        if self.file.exists() || self.restore() {
            Ok(())
        } else {
            Err(free)
        }
    }

    fn release(&self) {
        match std::fs::remove_file(&self.file) {
            Ok(()) => tracing::warn!(
                folder = %self.dir.display(),
                "the data folder is full: gave back upq's space reserve so the queue can still be saved; add is refused until space is freed"
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(error = %e, file = %self.file.display(), "cannot release the space reserve")
            }
        }
    }

    /// Allocates the reserve when there is room for it and the minimum besides.
    fn restore(&self) -> bool {
        if self.file.exists() {
            return true;
        }
        let room =
            available_bytes(&self.dir).is_ok_and(|free| free >= MIN_FREE_BYTES + RESERVE_BYTES);
        if !room {
            return false;
        }
        match allocate(&self.file, RESERVE_BYTES) {
            Ok(()) => {
                tracing::info!(folder = %self.dir.display(), bytes = RESERVE_BYTES, "space reserve in place");
                true
            }
            Err(e) => {
                let _ = std::fs::remove_file(&self.file);
                tracing::warn!(error = %e, file = %self.file.display(), "cannot allocate the space reserve");
                false
            }
        }
    }
}

/// Creates `path` with `len` bytes really allocated (a sparse file would reserve nothing).
fn allocate(path: &Path, len: u64) -> std::io::Result<()> {
    let temp = path.with_extension("tmp");
    let result = allocate_at(&temp, len).and_then(|()| std::fs::rename(&temp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn allocate_at(temp: &Path, len: u64) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let mut file = std::fs::File::create(temp)?;
    // SAFETY: fallocate on a descriptor we own, for a length that fits in off_t.
    let allocated = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
    if allocated != 0 {
        // File systems without fallocate get zeros written instead.
        let zeros = vec![0u8; 64 * 1024];
        for _ in 0..len / zeros.len() as u64 {
            file.write_all(&zeros)?;
        }
    }
    file.sync_all()
}
