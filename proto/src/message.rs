//! Requests, responses and events of the control socket.
//!
//! One JSON object a line in each direction. Every request carries an `id` that
//! its response repeats. On connect the daemon first sends a `hello` line
//! (response id 0) stating its protocol version; a client may send `hello`
//! with the version it speaks and gets `unsupported_version` on a mismatch.
//!
//! ```text
//! <- {"id":0,"result":{"type":"hello","data":{"protocol":1,"version":"0.1.0"}}}
//! -> {"id":1,"method":"add","params":{"file":"/v/a.mp4","title":"Trip"}}
//! <- {"id":1,"result":{"type":"job","data":{"id":7,"state":"queued",...}}}
//! -> {"id":2,"method":"pause","params":{"ids":[7]}}
//! <- {"id":2,"result":{"type":"batch","data":[{"id":7,"job":{...}}]}}
//! -> {"id":3,"method":"show","params":{"id":99}}
//! <- {"id":3,"error":{"code":"not_found","message":"no job 99"}}
//! -> {"id":4,"method":"subscribe","params":{}}
//! <- {"id":4,"result":{"type":"subscribed","data":null}}
//! <- {"id":4,"result":{"type":"event","data":{"kind":"progress",...}}}
//! ```

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::account::{AccountView, LoginResult};
use crate::job::{JobState, JobView, Metadata, StatusView};

/// The protocol version this crate speaks. Bumped on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// A request line: `{"id": N, "method": "...", "params": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestEnvelope {
    pub id: u64,
    #[serde(flatten)]
    pub request: Request,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", rename_all = "snake_case")]
pub enum Request {
    Hello(Hello),
    Add(AddRequest),
    /// Many files at once: each is checked alone, those that pass are stored in one
    /// transaction and made durable with one flush. Answered with `Reply::Added`.
    AddMany(AddManyRequest),
    /// One file to several destinations: a post and one job each, stored in one
    /// transaction, or nothing. Answered with `Reply::Post`.
    AddPost(AddPostRequest),
    /// A post with its jobs (each with its history); answered with `Reply::Post`.
    ShowPost {
        id: crate::post::PostId,
    },
    /// Posts in id order, each with its jobs (no histories): those with a job not ended,
    /// or every one (`all`). `after` (a post number) and `limit` page like `List`.
    /// Answered with `Reply::Posts`.
    ListPosts {
        #[serde(default)]
        all: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Jobs in id order. `after` and `limit` page through long lists, whose answer
    /// would otherwise outgrow the line cap.
    List {
        #[serde(default)]
        all: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    Show {
        id: u64,
    },
    /// Changes a job's title, caption or privacy; answered with the job.
    Edit(EditRequest),
    Pause(Selection),
    Resume(Selection),
    Cancel(Ids),
    Retry(Ids),
    Publish(Ids),
    /// Canceled jobs in id order, paged like `List`.
    Drafts {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    Recover(Ids),
    Discard(Ids),
    Status,
    /// Change the global rate limit; bytes per second, 0 for none. It holds for
    /// `until_ms`, or until the `rate_limit` timetable next changes when absent (for good
    /// when the configured rate is a plain one).
    Limit {
        rate: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<u64>,
    },
    Subscribe(SubscribeRequest),
    /// Starts a sign-in for a destination's account; answered with `Reply::Login` (the URL
    /// to open) at once. `timeout_ms` bounds how long the daemon waits for the browser.
    Login {
        destination: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Waits for the end of sign-in `attempt`; answered with `Reply::LoginFinished`.
    LoginWait {
        destination: String,
        attempt: u64,
    },
    /// Every destination's account.
    Accounts,
    /// Revokes a destination's grant at the platform and forgets its tokens.
    Logout {
        destination: String,
    },
    /// A one-time address that signs a browser in to the desk (the daemon's web page);
    /// answered with `Reply::Desk`.
    Open,
    /// The checks only the daemon can make (its data folder, each destination, without
    /// uploading anything), run at once, each given `timeout_ms` (5 s when absent);
    /// answered with `Reply::Checks`.
    Doctor {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
}

impl Request {
    pub fn method(&self) -> &'static str {
        match self {
            Request::Hello(_) => "hello",
            Request::Add(_) => "add",
            Request::AddMany(_) => "add_many",
            Request::AddPost(_) => "add_post",
            Request::ShowPost { .. } => "show_post",
            Request::ListPosts { .. } => "list_posts",
            Request::List { .. } => "list",
            Request::Show { .. } => "show",
            Request::Edit(_) => "edit",
            Request::Pause(_) => "pause",
            Request::Resume(_) => "resume",
            Request::Cancel(_) => "cancel",
            Request::Retry(_) => "retry",
            Request::Publish(_) => "publish",
            Request::Drafts { .. } => "drafts",
            Request::Recover(_) => "recover",
            Request::Discard(_) => "discard",
            Request::Status => "status",
            Request::Limit { .. } => "limit",
            Request::Subscribe(_) => "subscribe",
            Request::Login { .. } => "login",
            Request::LoginWait { .. } => "login_wait",
            Request::Accounts => "accounts",
            Request::Logout { .. } => "logout",
            Request::Open => "open",
            Request::Doctor { .. } => "doctor",
        }
    }
}

/// `edit`: the fields to change (absent: unchanged; `""`: cleared).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EditRequest {
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<String>,
}

impl EditRequest {
    /// True when it names no field to change.
    pub fn is_empty(&self) -> bool {
        self.title.is_none() && self.caption.is_none() && self.privacy.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    /// The sender's software version, for logs.
    #[serde(default)]
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ids {
    #[serde(default)]
    pub ids: Vec<u64>,
    /// Posts, each standing for all of its jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub posts: Vec<crate::post::PostId>,
}

/// Jobs named by id, or every job (`all`), which for pause/resume also
/// pauses or resumes the queue itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Selection {
    #[serde(default)]
    pub ids: Vec<u64>,
    /// Posts, each standing for all of its jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub posts: Vec<crate::post::PostId>,
    #[serde(default)]
    pub all: bool,
    /// `resume --now`: the jobs resumed ignore the upload policies from then on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub now: bool,
}

impl Selection {
    /// The one job `id`.
    pub fn job(id: u64) -> Selection {
        Selection {
            ids: vec![id],
            ..Selection::default()
        }
    }
}

/// `add`: one file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AddRequest {
    /// Absolute path; clients resolve relative paths before sending.
    pub file: String,
    #[serde(flatten)]
    pub options: AddOptions,
}

/// `add_many`: many files with the same options, stored in one transaction.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AddManyRequest {
    /// Absolute paths; clients resolve relative paths before sending.
    pub files: Vec<String>,
    #[serde(flatten)]
    pub options: AddOptions,
}

/// `add_post`: one file to several destinations, with what differs for each.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AddPostRequest {
    /// Absolute path; clients resolve relative paths before sending.
    pub file: String,
    /// At least two distinct destination names, in the order the jobs get their ids.
    pub destinations: Vec<String>,
    /// Shared by every job (`destination` is not used).
    #[serde(flatten)]
    pub options: AddOptions,
    /// Metadata that differs for a destination, by destination name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub overrides: crate::post::Overrides,
    /// A job failing before the release keeps the others held.
    #[serde(default)]
    pub all_or_nothing: bool,
}

/// How a file is to be uploaded: everything of an add but the file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AddOptions {
    /// Destination name from the config; the default destination when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
    /// Hold before the commit point until `publish`.
    #[serde(default)]
    pub hold: bool,
    /// Commit no earlier than this long after the upload is queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Commit no earlier than this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// Higher runs first; equal priorities run in the order they were added.
    #[serde(default)]
    pub priority: i32,
    /// `add --now`: the job ignores the upload policies (hours, metered, battery).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub now: bool,
}

/// Which events a subscriber wants: every job, or only the ones named.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SubscribeRequest {
    #[serde(default)]
    pub ids: Vec<u64>,
}

/// A response line: `{"id": N, "result": {...}}` or `{"id": N, "error": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub id: u64,
    #[serde(flatten)]
    pub body: ResponseBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseBody {
    Result(Reply),
    Error(ErrorBody),
}

impl Response {
    pub fn ok(id: u64, reply: Reply) -> Self {
        Response {
            id,
            body: ResponseBody::Result(reply),
        }
    }

    pub fn error(id: u64, code: ErrorCode, message: impl Into<String>) -> Self {
        Response {
            id,
            body: ResponseBody::Error(ErrorBody {
                code,
                message: message.into(),
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Reply {
    Hello(HelloReply),
    Job(Box<JobView>),
    Jobs(Vec<JobView>),
    /// One entry per id of a multi-id command, each succeeding or failing alone.
    Batch(Vec<BatchItem>),
    /// One entry per file of `add_many`, in the order given, each queued or refused alone.
    Added(Vec<AddedItem>),
    /// A post with its jobs.
    Post(Box<crate::post::PostView>),
    /// Posts, each with its jobs.
    Posts(Vec<crate::post::PostView>),
    Status(Box<StatusView>),
    /// The new global rate limit, bytes per second.
    Limit(u64),
    Subscribed,
    Event(Event),
    /// A sign-in started: open `url` in a browser.
    Login {
        url: String,
        attempt: u64,
    },
    LoginFinished(LoginResult),
    Accounts(Vec<AccountView>),
    /// What `logout` did.
    LoggedOut {
        message: String,
    },
    /// The desk's sign-in address: valid once, for a minute.
    Desk {
        url: String,
    },
    /// The daemon's findings for `doctor`, in a stable order.
    Checks(Vec<crate::check::CheckView>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloReply {
    pub protocol: u32,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchItem {
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Box<JobView>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddedItem {
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Box<JobView>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// Something that happened to a job, pushed to subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A state change; `job` is the job after it.
    State {
        id: u64,
        from: Option<JobState>,
        to: JobState,
        reason: String,
        job: Box<JobView>,
    },
    /// Bytes moved. `bytes_sent` is the acknowledged offset, `bytes_in_flight`
    /// what has left for the destination but is not yet acknowledged.
    Progress {
        id: u64,
        bytes_sent: u64,
        bytes_in_flight: u64,
        size: u64,
        speed: u64,
    },
    /// The platform's processing moved on (while the job is `processing`, where the
    /// platform tells how far it is).
    Processing {
        id: u64,
        parts_processed: u64,
        parts_total: u64,
        #[serde(default)]
        time_left_ms: Option<u64>,
    },
    /// A job was forgotten (`discard`).
    Removed { id: u64 },
    /// The subscriber fell behind and missed events; re-read the state.
    Lagged { missed: u64 },
    /// An event kind this version does not know (from a newer daemon); never sent.
    #[serde(other)]
    Unknown,
}

impl Event {
    pub fn job_id(&self) -> Option<u64> {
        match self {
            Event::State { id, .. }
            | Event::Progress { id, .. }
            | Event::Processing { id, .. }
            | Event::Removed { id } => Some(*id),
            Event::Lagged { .. } | Event::Unknown => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Machine-readable error classes. Clients map them to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line was not a valid request (bad JSON, missing fields, too deep).
    BadRequest,
    UnknownMethod,
    UnsupportedVersion,
    /// The line exceeded the size cap; the connection is closed after this.
    LineTooLong,
    NotFound,
    /// The command does not apply to the job's current state.
    InvalidState,
    /// The destination passed its commit point; the upload can no longer be stopped.
    TooLate,
    /// The file is missing, unreadable, not a regular file, or changed.
    File,
    UnknownDestination,
    /// The request was understood but refused (a bad value, a full queue, ...).
    Refused,
    PermissionDenied,
    Internal,
    /// The data folder's file system is full; nothing was queued.
    NoSpace,
    /// Catch-all for codes from a newer daemon.
    #[serde(other)]
    Other,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownMethod => "unknown_method",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::LineTooLong => "line_too_long",
            ErrorCode::NotFound => "not_found",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::TooLate => "too_late",
            ErrorCode::File => "file",
            ErrorCode::UnknownDestination => "unknown_destination",
            ErrorCode::Refused => "refused",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::Internal => "internal",
            ErrorCode::NoSpace => "no_space",
            ErrorCode::Other => "other",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
