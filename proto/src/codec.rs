//! Framing: one JSON document a line, at most [`MAX_LINE_BYTES`] a line, for both sides.
//!
//! The capped line framer and request decoding never panic and never hold more than the cap;
//! errors carry the request id when one could be read. No sockets, no runtime: callers read.

use serde::Serialize;
use serde_json::Value;

use crate::message::{ErrorCode, RequestEnvelope};

/// The longest line either side accepts, newline excluded.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// A line longer than [`MAX_LINE_BYTES`] arrived; the connection cannot be trusted further.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line is longer than {MAX_LINE_BYTES} bytes")]
pub struct LineTooLong;

/// Cuts a byte stream into lines of at most [`MAX_LINE_BYTES`], newline excluded.
///
/// Holds no reader: the caller hands it whatever bytes it has (blocking or async alike),
/// and the bytes of an unfinished line wait here across reads and read timeouts.
#[derive(Debug, Default)]
pub struct LineFramer {
    partial: Vec<u8>,
}

impl LineFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes bytes from `input` up to and including the first newline. Returns how many
    /// bytes it took, and the line when one is complete. Never holds more than the cap.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Result<Vec<u8>, LineTooLong>>) {
        let (end, taken) = match input.iter().position(|&b| b == b'\n') {
            Some(end) => (Some(end), end + 1),
            None => (None, input.len()),
        };
        let body = &input[..end.unwrap_or(input.len())];
        if self.partial.len() + body.len() > MAX_LINE_BYTES {
            self.partial = Vec::new();
            return (taken, Some(Err(LineTooLong)));
        }
        self.partial.extend_from_slice(body);
        match end {
            Some(_) => (taken, Some(Ok(std::mem::take(&mut self.partial)))),
            None => (taken, None),
        }
    }

    /// Reads the next line from a blocking reader; `Ok(None)` when the stream ends first
    /// (an unfinished line is dropped). An error (a read timeout) keeps the partial line.
    pub fn read_from(
        &mut self,
        reader: &mut impl std::io::BufRead,
    ) -> std::io::Result<Option<Result<Vec<u8>, LineTooLong>>> {
        loop {
            // A signal handled meanwhile (a child's SIGCHLD) interrupts a read that has a
            // timeout even under SA_RESTART; it is not an error of the connection.
            let available = match reader.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(None);
            }
            let (taken, line) = self.feed(available);
            reader.consume(taken);
            if line.is_some() {
                return Ok(line);
            }
        }
    }
}

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
    "add_many",
    "add_post",
    "show_post",
    "list_posts",
    "list",
    "show",
    "edit",
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
    "login",
    "login_wait",
    "accounts",
    "logout",
    "open",
    "doctor",
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
        if matches!(method.as_str(), "status" | "accounts" | "open") {
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

    /// A read cut short by a signal is tried again, not taken for a broken connection.
    #[test]
    fn an_interrupted_read_is_tried_again() {
        struct Interrupting {
            interrupted: bool,
            data: std::io::Cursor<Vec<u8>>,
        }
        impl std::io::Read for Interrupting {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if !self.interrupted {
                    self.interrupted = true;
                    return Err(std::io::ErrorKind::Interrupted.into());
                }
                self.data.read(buf)
            }
        }
        let mut reader = std::io::BufReader::new(Interrupting {
            interrupted: false,
            data: std::io::Cursor::new(b"{\"a\":1}\n".to_vec()),
        });
        let line = LineFramer::new().read_from(&mut reader).unwrap();
        assert_eq!(line, Some(Ok(b"{\"a\":1}".to_vec())));
    }

    #[test]
    fn decodes_a_request() {
        let env = decode_line(br#"{"id":3,"method":"pause","params":{"ids":[1,2]}}"#).unwrap();
        assert_eq!(env.id, 3);
        assert_eq!(
            env.request,
            Request::Pause(Selection {
                ids: vec![1, 2],
                posts: vec![],
                all: false,
                now: false,
            })
        );
        let env = decode_line(br#"{"id":4,"method":"publish","params":{"posts":["p2"]}}"#).unwrap();
        assert_eq!(
            env.request,
            Request::Publish(crate::Ids {
                ids: vec![],
                posts: vec![crate::PostId(2)]
            })
        );
        assert!(decode_line(br#"{"id":5,"method":"publish","params":{"posts":["2"]}}"#).is_err());
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

    /// Every line `input` holds when read in pieces of `split` bytes, up to the first refusal.
    fn frame(input: &[u8], split: usize) -> Vec<Result<Vec<u8>, LineTooLong>> {
        let mut framer = LineFramer::new();
        let mut lines = Vec::new();
        for mut piece in input.chunks(split.max(1)) {
            while !piece.is_empty() {
                let (taken, line) = framer.feed(piece);
                assert!(taken > 0 && taken <= piece.len());
                piece = &piece[taken..];
                match line {
                    Some(Err(too_long)) => {
                        lines.push(Err(too_long));
                        return lines;
                    }
                    Some(line) => lines.push(line),
                    None => {}
                }
            }
        }
        lines
    }

    #[test]
    fn lines_are_split_and_capped() {
        let lines = frame(b"{\"a\":1}\n\n{\"b\":2}\npartial", 3);
        assert_eq!(
            lines,
            vec![
                Ok(b"{\"a\":1}".to_vec()),
                Ok(Vec::new()),
                Ok(b"{\"b\":2}".to_vec())
            ]
        );

        let mut long = vec![b'x'; MAX_LINE_BYTES + 10];
        long.push(b'\n');
        assert_eq!(frame(&long, 70_000).last(), Some(&Err(LineTooLong)));
        // Without a newline the refusal comes as soon as the cap is passed.
        let endless = vec![b'x'; MAX_LINE_BYTES + 1];
        assert_eq!(frame(&endless, 70_000), vec![Err(LineTooLong)]);
        // Exactly the cap is still a line.
        let mut full = vec![b'x'; MAX_LINE_BYTES];
        full.push(b'\n');
        assert_eq!(frame(&full, 70_000).len(), 1);
        assert!(frame(&full, 70_000)[0].is_ok());
    }

    #[test]
    fn a_blocking_reader_keeps_lines_whole_and_drops_a_torn_one() {
        let input: &[u8] = b"one\ntwo\nthr";
        let mut reader = std::io::BufReader::with_capacity(2, input);
        let mut framer = LineFramer::new();
        assert_eq!(
            framer.read_from(&mut reader).unwrap(),
            Some(Ok(b"one".to_vec()))
        );
        assert_eq!(
            framer.read_from(&mut reader).unwrap(),
            Some(Ok(b"two".to_vec()))
        );
        assert_eq!(framer.read_from(&mut reader).unwrap(), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Arbitrary bytes in arbitrary pieces: no panic, no line over the cap, and every
        /// complete line is exactly the bytes between newlines.
        #[test]
        fn arbitrary_input_is_framed_safely(
            input in proptest::collection::vec(proptest::num::u8::ANY, 0..4096),
            split in 1usize..600,
        ) {
            let lines = frame(&input, split);
            let mut expected: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
            expected.pop(); // the bytes after the last newline never form a line
            proptest::prop_assert_eq!(lines.len(), expected.len());
            for (got, want) in lines.iter().zip(expected) {
                let got = got.as_ref().unwrap();
                proptest::prop_assert!(got.len() <= MAX_LINE_BYTES);
                proptest::prop_assert_eq!(got.as_slice(), want);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_line(&bytes);
        }
    }
}
