//! Default places shared by the daemon and its clients (DESIGN.md "Files and places").
//!
//! Pure functions of the environment they are given; nothing here creates files.

use std::path::PathBuf;

/// What a client tells its user when no daemon answers, on the socket or the bus alike.
pub const HOW_TO_START: &str = "start it with `upqd &` or `systemctl --user start upqd`";

/// The control socket: `$XDG_RUNTIME_DIR/upq/upqd.sock`, or `/tmp/upq-$UID/upqd.sock`
/// when there is no runtime directory.
pub fn default_socket_path(runtime_dir: Option<&str>, uid: u32) -> PathBuf {
    match runtime_dir.filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("upq").join("upqd.sock"),
        None => PathBuf::from(format!("/tmp/upq-{uid}")).join("upqd.sock"),
    }
}

/// The socket path from the process environment (`UPQ_SOCKET` is handled by the CLI).
pub fn socket_path_from_env(uid: u32) -> PathBuf {
    let runtime_dir = std::env::var("XDG_RUNTIME_DIR").ok();
    default_socket_path(runtime_dir.as_deref(), uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_dir_wins() {
        assert_eq!(
            default_socket_path(Some("/run/user/1000"), 1000),
            PathBuf::from("/run/user/1000/upq/upqd.sock")
        );
        assert_eq!(
            default_socket_path(None, 1000),
            PathBuf::from("/tmp/upq-1000/upqd.sock")
        );
        assert_eq!(
            default_socket_path(Some(""), 7),
            PathBuf::from("/tmp/upq-7/upqd.sock")
        );
    }
}
