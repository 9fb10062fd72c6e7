//! Checks of a folder for `doctor`, shared by the data folder and `dir` destinations: that it
//! exists, that a file can be made in it, and how much room is left. They run on a blocking
//! thread and change nothing (the probe file is removed at once).

use std::io::ErrorKind;
use std::path::Path;

use upq_proto::text::human_size;
use upq_proto::CheckView;

use crate::store::space::available_bytes;

/// How full a folder may get: below `problem` bytes free, uploads stop; below `warning`,
/// they soon will.
#[derive(Debug, Clone, Copy)]
pub struct Room {
    pub problem: u64,
    pub warning: u64,
}

/// `dir` destinations: a video needs room; under 64 MiB nothing of size fits.
pub const VIDEO_ROOM: Room = Room {
    problem: 64 * 1024 * 1024,
    warning: 1024 * 1024 * 1024,
};

/// The data folder: the queue refuses `add` below 4 MiB free, and gives back its 4 MiB
/// reserve as it gets there, so a folder with less than both and a margin is full already.
pub const QUEUE_ROOM: Room = Room {
    problem: 16 * 1024 * 1024,
    warning: 64 * 1024 * 1024,
};

/// The finding for folder `dir`, called `what` in messages ("the data folder"), under check
/// name `check`. `where_set` says where the folder's path is configured, for fixes.
pub fn folder(check: &str, what: &str, dir: &Path, room: Room, where_set: &str) -> CheckView {
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return CheckView::problem(
                check,
                format!("{what} {shown} is not a folder"),
                format!("point {where_set} at a folder"),
            )
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return CheckView::problem(
                check,
                format!("{what} {shown} does not exist (a drive not mounted?)"),
                format!("mount its drive or create it (`mkdir -p {shown}`), or change {where_set}"),
            )
        }
        Err(e) => {
            return CheckView::problem(
                check,
                format!("cannot look at {what} {shown}: {e}"),
                format!("give yourself access to it, or change {where_set}"),
            )
        }
    }
    let free = available_bytes(dir);
    if let Err(e) = probe(dir) {
        let full = matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT));
        return if full {
            CheckView::problem(
                check,
                format!("{what} {shown} is full: no file can be made in it"),
                "free space on its disk",
            )
        } else {
            CheckView::problem(
                check,
                format!("cannot write in {what} {shown}: {e}"),
                format!("give yourself write access (`chmod u+w {shown}`), or change {where_set}"),
            )
        };
    }
    match free {
        Err(e) => CheckView::warning(
            check,
            format!("{what} {shown} is writable, but its free space cannot be read: {e}"),
            "check the disk with `df`",
        ),
        Ok(free) if free < room.problem => CheckView::problem(
            check,
            format!("{what} {shown} is full: {} free", human_size(free)),
            "free space on its disk",
        ),
        Ok(free) if free < room.warning => CheckView::warning(
            check,
            format!(
                "{what} {shown} is writable but nearly full: {} free",
                human_size(free)
            ),
            "free space on its disk before it runs out",
        ),
        Ok(free) => CheckView::ok(
            check,
            format!("{what} {shown} is writable, {} free", human_size(free)),
        ),
    }
}

/// Makes and removes an empty file in `dir`: what a write needs, without leaving anything.
fn probe(dir: &Path) -> std::io::Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let path = dir.join(format!(".upq-doctor-{}-{nanos}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use upq_proto::CheckStatus;

    #[test]
    fn a_folder_is_writable_missing_or_not_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let found = folder(
            "data folder",
            "the data folder",
            dir.path(),
            QUEUE_ROOM,
            "--data-dir",
        );
        assert_eq!(found.status, CheckStatus::Ok, "{found:?}");
        assert!(found.message.contains("free"), "{found:?}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the probe is gone"
        );

        let missing = dir.path().join("gone");
        let found = folder("x", "the folder", &missing, VIDEO_ROOM, "`path`");
        assert_eq!(found.status, CheckStatus::Problem);
        assert!(found.message.contains("does not exist"), "{found:?}");
        assert!(found.fix.unwrap().contains("mkdir -p"));

        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let found = folder("x", "the folder", &file, VIDEO_ROOM, "`path`");
        assert_eq!(found.status, CheckStatus::Problem);
        assert!(found.message.contains("not a folder"), "{found:?}");
    }

    #[test]
    fn a_folder_one_cannot_write_in_is_a_problem() {
        use std::os::unix::fs::PermissionsExt;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // root writes anywhere; the mode cannot be what refuses it.
            let dir = tempfile::tempdir().unwrap();
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o500)).unwrap();
            assert_eq!(
                folder("x", "the folder", dir.path(), VIDEO_ROOM, "`path`").status,
                CheckStatus::Ok
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o500)).unwrap();
        let found = folder("x", "the folder", dir.path(), VIDEO_ROOM, "`path`");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(found.status, CheckStatus::Problem, "{found:?}");
        assert!(found.message.contains("cannot write"), "{found:?}");
    }

    #[test]
    fn too_little_room_is_a_problem_and_little_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let huge = Room {
            problem: u64::MAX,
            warning: u64::MAX,
        };
        let found = folder("x", "the folder", dir.path(), huge, "`path`");
        assert_eq!(found.status, CheckStatus::Problem, "{found:?}");
        assert!(found.message.contains("is full"), "{found:?}");
        let tight = Room {
            problem: 0,
            warning: u64::MAX,
        };
        let found = folder("x", "the folder", dir.path(), tight, "`path`");
        assert_eq!(found.status, CheckStatus::Warning, "{found:?}");
        assert!(found.message.contains("nearly full"), "{found:?}");
    }
}
