//! Source files with deterministic content, streamed hashes, and outbox inspection.
//!
//! Big files are written and hashed block by block; no file is ever held whole in memory.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const BLOCK: usize = 1024 * 1024;
const PAGE: usize = 4096;

/// A file created by a test: where it is, how big, and the BLAKE3 (hex) of its content.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub size: u64,
    pub hash: String,
}

impl SourceFile {
    /// Writes `size` bytes of pseudo-random content determined by `seed`, one block at a time.
    ///
    /// Every 4 KiB page is stamped with its own index, so no two pages of a file are equal
    /// and a chunk written at the wrong offset changes the hash.
    pub fn create(path: &Path, size: u64, seed: u64) -> SourceFile {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create source folder");
        }
        let mut base = vec![0u8; BLOCK];
        let mut state = seed ^ 0x005E_ED0F_u64.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for word in base.chunks_exact_mut(8) {
            word.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        let file = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        let mut out = BufWriter::with_capacity(BLOCK, file);
        let mut hasher = blake3::Hasher::new();
        let mut block = vec![0u8; BLOCK];
        let mut written = 0u64;
        let mut page_index = 0u64;
        while written < size {
            let len = (size - written).min(BLOCK as u64) as usize;
            block[..len].copy_from_slice(&base[..len]);
            for page in block[..len].chunks_mut(PAGE) {
                let mut stamp_state = seed.wrapping_add(page_index);
                let stamp = splitmix64(&mut stamp_state).to_le_bytes();
                let n = page.len().min(stamp.len());
                page[..n].copy_from_slice(&stamp[..n]);
                page_index += 1;
            }
            hasher.update(&block[..len]);
            out.write_all(&block[..len]).expect("write source block");
            written += len as u64;
        }
        out.flush().expect("flush source file");
        SourceFile {
            path: path.to_path_buf(),
            size,
            hash: hasher.finalize().to_hex().to_string(),
        }
    }

    /// The file name, as the outbox will name the published copy.
    pub fn name(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("source names are UTF-8")
    }

    /// The path as a string, for command lines.
    pub fn arg(&self) -> &str {
        self.path.to_str().expect("temp paths are UTF-8")
    }

    /// Panics unless the file still has the content it was created with.
    pub fn assert_unchanged(&self) {
        let size = fs::metadata(&self.path)
            .unwrap_or_else(|e| panic!("source {} vanished: {e}", self.path.display()))
            .len();
        assert_eq!(
            size,
            self.size,
            "source {} changed size",
            self.path.display()
        );
        assert_eq!(
            hash_file(&self.path),
            self.hash,
            "source {} changed content",
            self.path.display()
        );
    }

    /// Panics unless `copy` has exactly this file's content.
    pub fn assert_same_content(&self, copy: &Path) {
        let meta = fs::metadata(copy)
            .unwrap_or_else(|e| panic!("expected {} to exist: {e}", copy.display()));
        assert_eq!(
            meta.len(),
            self.size,
            "{} has the wrong size",
            copy.display()
        );
        assert_eq!(
            hash_file(copy),
            self.hash,
            "{} differs from {}",
            copy.display(),
            self.path.display()
        );
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// BLAKE3 (hex) of a file, read in a stream.
pub fn hash_file(path: &Path) -> String {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(file)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    hasher.finalize().to_hex().to_string()
}

/// The modification time of a file.
pub fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
}

/// Appends `count` bytes to a file (a user still writing the video).
pub fn append_bytes(path: &Path, count: usize) {
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} for append: {e}", path.display()));
    file.write_all(&vec![0xA5; count]).expect("append");
    file.sync_all().expect("sync appended file");
}

/// Partial uploads of job `id` in a `dir` destination: `<outbox>/.partial/<id>-*`.
pub fn partial_files(outbox: &Path, id: u64) -> Vec<PathBuf> {
    let prefix = format!("{id}-");
    list_dir(&outbox.join(".partial"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect()
}

/// Published files in a `dir` destination (the `.partial` folder left out).
pub fn final_files(outbox: &Path) -> Vec<PathBuf> {
    list_dir(outbox)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != ".partial"))
        .collect()
}

fn list_dir(dir: &Path) -> Vec<PathBuf> {
    match fs::read_dir(dir) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> =
                entries.map(|e| e.expect("read dir entry").path()).collect();
            paths.sort();
            paths
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", dir.display()),
    }
}
