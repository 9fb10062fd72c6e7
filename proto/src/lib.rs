//! upq's control protocol, shared by `upqd` and every client.
//!
//! Wire types only: the request and response messages, the public view of a
//! job, the newline-delimited JSON framing with its size cap, and the D-Bus names;
//! with feature `cli`, upqd's command line (read by `upqctl man` too). No I/O policy.

pub mod account;
pub mod check;
#[cfg(feature = "cli")]
pub mod cli;
pub mod codec;
pub mod dbus;
pub mod ids;
pub mod job;
pub mod message;
pub mod paths;
pub mod post;
pub mod text;

pub use account::{AccountView, LoginResult};
pub use check::{CheckStatus, CheckView};
pub use codec::{decode_line, encode_line, FrameError, LineFramer, LineTooLong, MAX_LINE_BYTES};
pub use job::{
    Command, HistoryEntry, JobError, JobState, JobView, LostJob, Metadata, ProcessingProgress,
    StatusView, SystemView,
};
pub use message::{
    AddManyRequest, AddOptions, AddPostRequest, AddRequest, AddedItem, BatchItem, EditRequest,
    ErrorBody, ErrorCode, Event, Hello, HelloReply, Ids, Reply, Request, RequestEnvelope, Response,
    ResponseBody, Selection, SubscribeRequest, PROTOCOL_VERSION,
};
pub use post::{metadata_for, Overrides, PostId, PostState, PostView};
