//! Where the `upqd` and `upqctl` binaries under test live.
//!
//! Looks them up in the workspace's target dir; never builds anything itself.

use std::path::PathBuf;

/// The target dir: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// The workspace root: the parent of this crate's folder.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `debug` unless `UPQ_TEST_PROFILE` names another build profile (e.g. `release`).
fn profile() -> String {
    std::env::var("UPQ_TEST_PROFILE").unwrap_or_else(|_| "debug".to_string())
}

fn binary(name: &str) -> PathBuf {
    let profile = profile();
    let path = target_dir().join(&profile).join(name);
    if !path.is_file() {
        let flag = if profile == "debug" {
            String::new()
        } else {
            format!(" --profile {profile}")
        };
        panic!(
            "{} is missing; build the binaries first: cargo build --bins{flag}",
            path.display()
        );
    }
    path
}

/// The daemon binary, `target/debug/upqd` (see `UPQ_TEST_PROFILE`).
pub fn upqd() -> PathBuf {
    binary("upqd")
}

/// The control binary, `target/debug/upqctl` (see `UPQ_TEST_PROFILE`).
pub fn upqctl() -> PathBuf {
    binary("upqctl")
}
