//! The D-Bus vocabulary of `upqd`: its bus name, object paths, interface and error names,
//! and the shape of a `ListJobs` entry, shared by the daemon, `upqctl --bus` and the tests.
//!
//! Plain constants and types, no zbus: zbus's attribute macros need string literals, so the
//! crates that use them check in a test that their literals equal these constants.

/// The well-known name upqd owns on the session bus.
pub const BUS_NAME: &str = "dev.upq.upq1";
/// The manager object.
pub const MANAGER_PATH: &str = "/dev/upq/upq1";
/// The manager object's interface.
pub const MANAGER_INTERFACE: &str = "dev.upq.upq1.Manager";
/// Each job object's interface.
pub const JOB_INTERFACE: &str = "dev.upq.upq1.Job";
/// The standard interface through which the job objects are listed and announced.
pub const OBJECT_MANAGER_INTERFACE: &str = "org.freedesktop.DBus.ObjectManager";
/// The prefix of upq's own error names (`dev.upq.upq1.Error.NotFound`, ...), dot included.
pub const ERROR_PREFIX: &str = "dev.upq.upq1.Error.";
/// Each post object's interface.
pub const POST_INTERFACE: &str = "dev.upq.upq1.Post";
/// The object path of a post, before its id (`p12`).
pub const POST_PATH_PREFIX: &str = "/dev/upq/upq1/post/";

/// The object path of post `id`: `/dev/upq/upq1/post/p12`.
pub fn post_path(id: crate::post::PostId) -> String {
    format!("{POST_PATH_PREFIX}{id}")
}

/// The object path of a job, before its id.
pub const JOB_PATH_PREFIX: &str = "/dev/upq/upq1/job/";

/// The object path of job `id`.
pub fn job_path(id: u64) -> String {
    format!("{JOB_PATH_PREFIX}{id}")
}

/// The job id of a job object's path; `None` for any other path.
pub fn job_id(path: &str) -> Option<u64> {
    path.strip_prefix(JOB_PATH_PREFIX)?.parse().ok()
}

/// One entry of `ListJobs`: id, file, destination, state, bytes sent, size, title, object.
/// `Path` is the bus library's object path type (zbus's `OwnedObjectPath`).
pub type JobSummary<Path> = (u64, String, String, String, u64, u64, String, Path);

/// The D-Bus signature of [`JobSummary`].
pub const JOB_SUMMARY_SIGNATURE: &str = "(tsssttso)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_hang_together() {
        assert!(MANAGER_INTERFACE.starts_with(BUS_NAME));
        assert!(JOB_INTERFACE.starts_with(BUS_NAME));
        assert_eq!(ERROR_PREFIX, format!("{BUS_NAME}.Error."));
        assert_eq!(JOB_PATH_PREFIX, format!("{MANAGER_PATH}/job/"));
        assert!(POST_INTERFACE.starts_with(BUS_NAME));
        assert_eq!(post_path(crate::post::PostId(12)), "/dev/upq/upq1/post/p12");
    }

    #[test]
    fn job_paths_round_trip() {
        assert_eq!(job_path(12), "/dev/upq/upq1/job/12");
        assert_eq!(job_id(&job_path(12)), Some(12));
        assert_eq!(job_id("/dev/upq/upq1/job/x"), None);
        assert_eq!(job_id(MANAGER_PATH), None);
    }
}
