//! Framing: one JSON document a line, at most [`MAX_LINE_BYTES`] a line.
//!
//! Decoding never panics and never allocates more than the line it is given;
//! errors say what was wrong and carry the request id when one could be read.

use serde::Serialize;
use serde_json::Value;

use crate::message::{ErrorCode, RequestEnvelope};

/// The longest line either side accepts, newline excluded.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Why a request line could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("line is longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
    #[error("line is not valid UTF-8")]
    NotUtf8,
    #[error("line is not valid JSON: {0}")]
    NotJson(String),
    #[error("request has no numeric \"id\"")]
    MissingId,
    #[error("request has no \"method\"")]
    MissingMethod { id: u64 },
    #[error("unknown method '{method}'")]
    UnknownMethod { id: u64, method: String },
    #[error("bad parameters for '{method}': {detail}")]
    BadParams {
        id: u64,
        method: String,
        detail: String,
    },
}

impl FrameError {
    /// The request id to answer with (0 when none could be read).
    pub fn request_id(&self) -> u64 {
        match self {
            FrameError::MissingMethod { id }
            | FrameError::UnknownMethod { id, .. }
            | FrameError::BadParams { id, .. } => *id,
            _ => 0,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::TooLong => ErrorCode::LineTooLong,
            FrameError::UnknownMethod { .. } => ErrorCode::UnknownMethod,
            _ => ErrorCode::BadRequest,
        }
    }
}

const METHODS: &[&str] = &[
    "hello",
    "add",
    "list",
    "show",
    "pause",
    "resume",
    "cancel",
    "retry",
    "publish",
    "drafts",
    "recover",
    "discard",
    "status",
    "limit",
    "subscribe",
];

/// Decodes one request line (without its newline).
pub fn decode_line(line: &[u8]) -> Result<RequestEnvelope, FrameError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(FrameError::TooLong);
    }
    let text = std::str::from_utf8(line).map_err(|_| FrameError::NotUtf8)?;
    // serde_json refuses nesting deeper than 128 levels, so hostile input stays cheap.
    let mut value: Value =
        serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
    let id = value
        .get("id")
        .and_then(Value::as_u64)
        .ok_or(FrameError::MissingId)?;
    let method = match value.get("method").and_then(Value::as_str) {
        Some(m) => m.to_owned(),
        None => return Err(FrameError::MissingMethod { id }),
    };
    if !METHODS.contains(&method.as_str()) {
        return Err(FrameError::UnknownMethod { id, method });
    }
    // Methods whose parameters are all optional may omit "params".
    if let Some(object) = value.as_object_mut() {
        // Unit methods take no params at all; the rest may leave them out when optional.
        if matches!(method.as_str(), "status") {
            object.remove("params");
        } else if !object.contains_key("params") {
            object.insert("params".into(), Value::Object(Default::default()));
        }
    }
    serde_json::from_value(value).map_err(|e| FrameError::BadParams {
        id,
        method,
        detail: e.to_string(),
    })
}

/// Encodes a message as one line, newline included.
pub fn encode_line<T: Serialize>(message: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(message).expect("protocol types always serialize");
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Event, Request, Selection};

    #[test]
    fn decodes_a_request() {
        let env = decode_line(br#"{"id":3,"method":"pause","params":{"ids":[1,2]}}"#).unwrap();
        assert_eq!(env.id, 3);
        assert_eq!(
            env.request,
            Request::Pause(Selection {
                ids: vec![1, 2],
                all: false
            })
        );
    }

    #[test]
    fn unknown_event_kinds_from_a_newer_daemon_are_readable() {
        let event: Event =
            serde_json::from_str(r#"{"kind":"teleported","id":3,"to":"mars"}"#).unwrap();
        assert_eq!(event, Event::Unknown);
        assert_eq!(event.job_id(), None);
        let known: Event = serde_json::from_str(r#"{"kind":"removed","id":3}"#).unwrap();
        assert_eq!(known, Event::Removed { id: 3 });
    }

    #[test]
    fn params_may_be_omitted() {
        let env = decode_line(br#"{"id":1,"method":"status"}"#).unwrap();
        assert_eq!(env.request, Request::Status);
        let env = decode_line(br#"{"id":1,"method":"list"}"#).unwrap();
        assert_eq!(
            env.request,
            Request::List {
                all: false,
                after: None,
                limit: None
            }
        );
        let env = decode_line(br#"{"id":1,"method":"drafts","params":{}}"#).unwrap();
        assert_eq!(
            env.request,
            Request::Drafts {
                after: None,
                limit: None
            }
        );
        let env = decode_line(br#"{"id":1,"method":"drafts"}"#).unwrap();
        assert!(matches!(env.request, Request::Drafts { .. }));
    }

    #[test]
    fn errors_keep_the_request_id() {
        let err = decode_line(br#"{"id":9,"method":"fly"}"#).unwrap_err();
        assert_eq!(err.request_id(), 9);
        assert_eq!(err.code(), ErrorCode::UnknownMethod);
        let err = decode_line(br#"{"id":4,"method":"show","params":{"id":"x"}}"#).unwrap_err();
        assert_eq!(err.request_id(), 4);
        assert_eq!(err.code(), ErrorCode::BadRequest);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut line = String::new();
        for _ in 0..100_000 {
            line.push('[');
        }
        let err = decode_line(line.as_bytes()).unwrap_err();
        assert!(matches!(err, FrameError::NotJson(_)), "{err:?}");
    }

    #[test]
    fn oversized_lines_are_refused() {
        let line = vec![b' '; MAX_LINE_BYTES + 1];
        assert_eq!(decode_line(&line).unwrap_err(), FrameError::TooLong);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_line(&bytes);
        }
    }
}
