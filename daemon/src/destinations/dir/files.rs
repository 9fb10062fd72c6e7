//! The careful file-system steps of the `dir` destination: collision names, no-replace rename,
//! early writeback, fsync of folders, hashing and finding a committed copy. No queue state here.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::destinations::Committed;

/// `name`, then `name (1).ext`, `name (2).ext`, ...
pub(super) fn candidate_name(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

/// Moves `from` to `to` only if `to` does not exist, atomically.
pub(super) fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
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
pub(super) fn start_writeback(file: &File, offset: u64, len: usize) {
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

pub(super) fn fsync_dir(path: &Path) {
    if let Ok(dir) = File::open(path) {
        let _ = dir.sync_all();
    }
}

/// BLAKE3 of a whole file. Maps it a window at a time and hashes each window on all
/// cores; unmapping each window keeps the mapped pages out of the resident set.
pub(super) fn hash_file(path: &Path) -> io::Result<String> {
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
pub(super) fn find_committed(root: &Path, name: &str, size: u64, hash: &str) -> Option<Committed> {
    (0..10_000)
        .map(|n| root.join(candidate_name(name, n)))
        .take_while(|path| path.exists())
        .find(|path| {
            std::fs::metadata(path).is_ok_and(|m| m.len() == size)
                && hash_file(path).is_ok_and(|h| h == hash)
        })
        .map(|path| Committed {
            location: path.to_string_lossy().into_owned(),
            note: None,
        })
}
