//! `Tmpfs`: a small tmpfs mounted by a test (a full or read-only data folder), unmounted on drop.
//!
//! Mounting needs root; where it is not permitted the test prints why and skips.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "24m") with extra `options` (e.g. "ro") at `path`,
    /// or returns why it could not.
    pub fn mount(path: &Path, size: &str, options: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
        let mut all = format!("size={size},mode=0700");
        if !options.is_empty() {
            all.push(',');
            all.push_str(options);
        }
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &all, "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs refused: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a file until the file system is full; returns its path (remove it to free
    /// the space again).
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path.join("filler");
        let mut file = std::fs::File::create(&path).expect("create filler");
        let block = vec![0x5a_u8; 64 * 1024];
        loop {
            match file.write_all(&block) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("fill {}: {e}", path.display()),
            }
        }
        // Whatever a partial block left: the file system has no whole block free now.
        let _ = file.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let status = Command::new("umount").arg(&self.path).status();
        if !status.is_ok_and(|s| s.success()) {
            // Lazily, so a test that failed with a file still open leaves no mount behind.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Mounts or explains why the test is skipped (printed, so the skip is visible).
#[macro_export]
macro_rules! tmpfs_or_skip {
    ($path:expr, $size:expr, $options:expr) => {
        match $crate::mount::Tmpfs::mount($path, $size, $options) {
            Ok(mount) => mount,
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                return;
            }
        }
    };
}
