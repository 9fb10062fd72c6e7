//! The connection to `upqd` over its local socket: handshake, requests, the event stream.
//! Blocking I/O and typed errors only; it knows nothing about how results are shown.

use std::collections::VecDeque;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use interprocess::local_socket::{prelude::*, GenericFilePath, Stream};
use serde::Deserialize;
use serde_json::Value;
use upq_proto::paths::HOW_TO_START;
use upq_proto::{
    encode_line, AddedItem, BatchItem, ErrorBody, ErrorCode, Event, JobView, LineFramer,
    LineTooLong, Reply, Request, RequestEnvelope, Response, ResponseBody, StatusView,
    SubscribeRequest, MAX_LINE_BYTES, PROTOCOL_VERSION,
};

/// How long a plain request may take before the daemon is considered stuck.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the daemon may take to greet a new connection.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("upqd is not running ({reason} at {}); {HOW_TO_START}", path.display())]
    NotRunning { path: PathBuf, reason: &'static str },
    #[error("cannot connect to upqd at {}: {source}", path.display())]
    Connect { path: PathBuf, source: io::Error },
    #[error(
        "upqd speaks protocol {daemon} but this upqctl speaks protocol {PROTOCOL_VERSION}; \
         use an upqctl from the same release as the running upqd"
    )]
    Version { daemon: u32 },
    #[error("upqd did not answer within {}s", .0.as_secs())]
    NoAnswer(Duration),
    #[error("timed out")]
    Timeout,
    #[error("upqd closed the connection")]
    Closed,
    #[error("connection to upqd failed: {0}")]
    Io(#[source] io::Error),
    #[error("upqd sent a line longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    #[error("the request is longer than {MAX_LINE_BYTES} bytes; shorten the title or caption")]
    RequestTooLong,
    #[error("upqd sent something this upqctl does not understand: {0}")]
    Protocol(String),
    #[error("{0}")]
    Daemon(ErrorBody),
}

impl ClientError {
    /// The daemon's error code, when the daemon refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Daemon(body) => Some(body.code),
            _ => None,
        }
    }

    fn from_io(error: io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout,
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset => ClientError::Closed,
            _ => ClientError::Io(error),
        }
    }
}

fn connect_error(path: &Path, source: io::Error) -> ClientError {
    match source.kind() {
        io::ErrorKind::NotFound => ClientError::NotRunning {
            path: path.to_owned(),
            reason: "no socket",
        },
        io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
            path: path.to_owned(),
            reason: "nothing listens on the socket",
        },
        _ => ClientError::Connect {
            path: path.to_owned(),
            source,
        },
    }
}

/// A successful reply: the typed value, and the `data` exactly as the daemon sent it.
#[derive(Debug)]
pub struct Answer {
    pub reply: Reply,
    pub data: Value,
}

impl Answer {
    pub fn job(self) -> Result<(JobView, Value), ClientError> {
        match self.reply {
            Reply::Job(job) => Ok((*job, self.data)),
            other => Err(unexpected("job", &other)),
        }
    }

    pub fn post(self) -> Result<(upq_proto::PostView, Value), ClientError> {
        match self.reply {
            Reply::Post(post) => Ok((*post, self.data)),
            other => Err(unexpected("post", &other)),
        }
    }

    pub fn posts(self) -> Result<(Vec<upq_proto::PostView>, Value), ClientError> {
        match self.reply {
            Reply::Posts(posts) => Ok((posts, self.data)),
            other => Err(unexpected("posts", &other)),
        }
    }

    pub fn batch(self) -> Result<(Vec<BatchItem>, Value), ClientError> {
        match self.reply {
            Reply::Batch(items) => Ok((items, self.data)),
            other => Err(unexpected("batch", &other)),
        }
    }

    pub fn added(self) -> Result<(Vec<AddedItem>, Value), ClientError> {
        match self.reply {
            Reply::Added(items) => Ok((items, self.data)),
            other => Err(unexpected("added", &other)),
        }
    }

    pub fn status(self) -> Result<(StatusView, Value), ClientError> {
        match self.reply {
            Reply::Status(status) => Ok((*status, self.data)),
            other => Err(unexpected("status", &other)),
        }
    }

    pub fn limit(self) -> Result<u64, ClientError> {
        match self.reply {
            Reply::Limit(rate) => Ok(rate),
            other => Err(unexpected("limit", &other)),
        }
    }
}

/// What a reply is, for messages about unexpected replies.
pub fn reply_kind(reply: &Reply) -> &'static str {
    match reply {
        Reply::Hello(_) => "hello",
        Reply::Job(_) => "job",
        Reply::Jobs(_) => "jobs",
        Reply::Batch(_) => "batch",
        Reply::Added(_) => "added",
        Reply::Post(_) => "post",
        Reply::Posts(_) => "posts",
        Reply::Status(_) => "status",
        Reply::Limit(_) => "limit",
        Reply::Subscribed => "subscribed",
        Reply::Event(_) => "event",
        Reply::Login { .. } => "login",
        Reply::LoginFinished(_) => "login_finished",
        Reply::Accounts(_) => "accounts",
        Reply::LoggedOut { .. } => "logged_out",
        Reply::Desk { .. } => "desk",
        Reply::Checks(_) => "checks",
    }
}

/// The error for a reply of the wrong type.
pub fn unexpected(wanted: &str, got: &Reply) -> ClientError {
    ClientError::Protocol(format!(
        "expected a '{wanted}' reply, got '{}'",
        reply_kind(got)
    ))
}

/// One connection to the daemon, past the handshake.
pub struct Client {
    reader: BufReader<Stream>,
    /// Holds the bytes of a line not yet complete (kept across a read timeout).
    framer: LineFramer,
    next_id: u64,
}

impl Client {
    /// Connects and checks the daemon's protocol version.
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        Client::open(path, CALL_TIMEOUT, Instant::now() + HELLO_TIMEOUT)
            .map_err(|e| no_answer(e, HELLO_TIMEOUT))
    }

    /// [`Client::connect`] for a caller in a hurry (the shell's completion): the greeting
    /// must come before `deadline`, else `ClientError::Timeout`.
    pub fn connect_until(path: &Path, deadline: Instant) -> Result<Self, ClientError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClientError::Timeout);
        }
        Client::open(path, left, deadline)
    }

    fn open(path: &Path, send_timeout: Duration, hello_by: Instant) -> Result<Self, ClientError> {
        let name = path
            .to_fs_name::<GenericFilePath>()
            .map_err(|source| connect_error(path, source))?;
        let stream = loop {
            match Stream::connect(name.borrow()) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                connected => break connected.map_err(|source| connect_error(path, source))?,
            }
        };
        stream
            .set_send_timeout(Some(send_timeout))
            .map_err(ClientError::Io)?;
        let mut client = Client {
            reader: BufReader::new(stream),
            framer: LineFramer::new(),
            next_id: 1,
        };
        client.handshake(hello_by)?;
        Ok(client)
    }

    fn handshake(&mut self, deadline: Instant) -> Result<(), ClientError> {
        let value = self.read_value(Some(deadline))?;
        // Check the version before anything else of the line, so that a daemon
        // speaking another protocol gets a clear message rather than a parse error.
        if let Some(protocol) = value
            .pointer("/result/data/protocol")
            .and_then(Value::as_u64)
        {
            if protocol != u64::from(PROTOCOL_VERSION) {
                return Err(ClientError::Version {
                    daemon: u32::try_from(protocol).unwrap_or(u32::MAX),
                });
            }
        }
        match parse_response(&value)?.body {
            ResponseBody::Result(Reply::Hello(hello)) => {
                if hello.protocol != PROTOCOL_VERSION {
                    return Err(ClientError::Version {
                        daemon: hello.protocol,
                    });
                }
                Ok(())
            }
            ResponseBody::Error(body) => Err(ClientError::Daemon(body)),
            ResponseBody::Result(other) => Err(unexpected("hello", &other)),
        }
    }

    /// Sends one request and waits for its reply; an error reply becomes `ClientError::Daemon`.
    pub fn call(&mut self, request: Request) -> Result<Answer, ClientError> {
        self.call_until(request, Instant::now() + CALL_TIMEOUT)
            .map_err(|e| no_answer(e, CALL_TIMEOUT))
    }

    /// One request whose answer may take until `deadline` (a sign-in's end);
    /// `ClientError::Timeout` when it passes first.
    pub fn call_until(
        &mut self,
        request: Request,
        deadline: Instant,
    ) -> Result<Answer, ClientError> {
        let id = self.send(request)?;
        let (response, value) = self.read_answer(id, Some(deadline))?;
        match response.body {
            ResponseBody::Result(reply) => Ok(Answer {
                reply,
                data: result_data(&value),
            }),
            ResponseBody::Error(body) => Err(ClientError::Daemon(body)),
        }
    }

    /// Turns this connection into a stream of events for `ids` (every job when empty).
    pub fn subscribe(mut self, ids: Vec<u64>) -> Result<Subscription, ClientError> {
        let id = self.send(Request::Subscribe(SubscribeRequest { ids }))?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        let mut early_events = VecDeque::new();
        loop {
            let (response, value) = self
                .read_answer(id, Some(deadline))
                .map_err(|e| no_answer(e, CALL_TIMEOUT))?;
            match response.body {
                ResponseBody::Result(Reply::Subscribed) => break,
                ResponseBody::Result(Reply::Event(event)) => {
                    early_events.push_back((event, result_data(&value)));
                }
                ResponseBody::Result(other) => return Err(unexpected("subscribed", &other)),
                ResponseBody::Error(body) => return Err(ClientError::Daemon(body)),
            }
        }
        Ok(Subscription {
            client: self,
            id,
            early_events,
        })
    }

    fn send(&mut self, request: Request) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let line = encode_line(&RequestEnvelope { id, request });
        if line.len() > MAX_LINE_BYTES + 1 {
            return Err(ClientError::RequestTooLong);
        }
        let mut writer: &Stream = self.reader.get_ref();
        writer
            .write_all(&line)
            .and_then(|()| writer.flush())
            .map_err(ClientError::from_io)?;
        Ok(id)
    }

    /// The next response to request `id`, parsed, with its JSON; other ids are skipped.
    fn read_answer(
        &mut self,
        id: u64,
        deadline: Option<Instant>,
    ) -> Result<(Response, Value), ClientError> {
        let value = self.read_answer_json(id, deadline)?;
        Ok((parse_response(&value)?, value))
    }

    /// The JSON of the answer to request `id`.
    fn read_answer_json(
        &mut self,
        id: u64,
        deadline: Option<Instant>,
    ) -> Result<Value, ClientError> {
        loop {
            let value = self.read_value(deadline)?;
            let response_id = value.get("id").and_then(Value::as_u64);
            // Id 0 carries errors about a line the daemon could not read at all.
            if response_id == Some(id) || response_id == Some(0) {
                return Ok(value);
            }
        }
    }

    /// Sends a request without waiting for its answer; returns its id for `receive_jobs_json`.
    pub fn send_only(&mut self, request: Request) -> Result<u64, ClientError> {
        self.send(request)
    }

    /// The answer to request `id`, a list of jobs, as the daemon sent their JSON, not read
    /// into views: what `--json` prints of a long list.
    pub fn receive_jobs_json(&mut self, id: u64) -> Result<Vec<Value>, ClientError> {
        let deadline = Instant::now() + CALL_TIMEOUT;
        let mut value = self
            .read_answer_json(id, Some(deadline))
            .map_err(|e| no_answer(e, CALL_TIMEOUT))?;
        if let Some(error) = value.get("error") {
            let body =
                ErrorBody::deserialize(error).map_err(|e| ClientError::Protocol(e.to_string()))?;
            return Err(ClientError::Daemon(body));
        }
        let result = value.get_mut("result");
        match result {
            Some(result) if result.get("type").and_then(Value::as_str) == Some("jobs") => {
                match result["data"].take() {
                    Value::Array(items) => Ok(items),
                    _ => Err(ClientError::Protocol(
                        "a 'jobs' reply without a list".into(),
                    )),
                }
            }
            _ => Err(ClientError::Protocol("expected a 'jobs' reply".into())),
        }
    }

    /// Reads one JSON line, waiting until `deadline` (forever when `None`).
    fn read_value(&mut self, deadline: Option<Instant>) -> Result<Value, ClientError> {
        let timeout = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ClientError::Timeout);
                }
                Some(left)
            }
            None => None,
        };
        self.reader
            .get_ref()
            .set_recv_timeout(timeout)
            .map_err(ClientError::Io)?;
        let line = self.read_line()?;
        serde_json::from_slice(&line)
            .map_err(|e| ClientError::Protocol(format!("a line that is not JSON ({e})")))
    }

    fn read_line(&mut self) -> Result<Vec<u8>, ClientError> {
        match self.framer.read_from(&mut self.reader) {
            Ok(Some(Ok(line))) => Ok(line),
            Ok(Some(Err(LineTooLong))) => Err(ClientError::LineTooLong),
            Ok(None) => Err(ClientError::Closed),
            Err(error) => Err(ClientError::from_io(error)),
        }
    }
}

/// A subscribed connection: yields events until the daemon closes it.
pub struct Subscription {
    client: Client,
    id: u64,
    early_events: VecDeque<(Event, Value)>,
}

impl Subscription {
    /// The next event and its JSON as sent, waiting until `deadline` (forever when `None`);
    /// `ClientError::Timeout` when the deadline passes first.
    pub fn next_event(&mut self, deadline: Option<Instant>) -> Result<(Event, Value), ClientError> {
        if let Some(event) = self.early_events.pop_front() {
            return Ok(event);
        }
        loop {
            let (response, value) = self.client.read_answer(self.id, deadline)?;
            return match response.body {
                // An event kind from a newer daemon: skip it rather than stop watching.
                ResponseBody::Result(Reply::Event(Event::Unknown)) => continue,
                ResponseBody::Result(Reply::Event(event)) => Ok((event, result_data(&value))),
                ResponseBody::Result(other) => Err(unexpected("event", &other)),
                ResponseBody::Error(body) => Err(ClientError::Daemon(body)),
            };
        }
    }
}

fn no_answer(error: ClientError, waited: Duration) -> ClientError {
    match error {
        ClientError::Timeout => ClientError::NoAnswer(waited),
        other => other,
    }
}

fn parse_response(value: &Value) -> Result<Response, ClientError> {
    Response::deserialize(value).map_err(|e| ClientError::Protocol(e.to_string()))
}

fn result_data(value: &Value) -> Value {
    value
        .pointer("/result/data")
        .cloned()
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use interprocess::local_socket::{ListenerOptions, Stream as ServerStream};
    use std::io::{BufRead, Read};
    use std::thread;

    /// A one-connection fake daemon that greets with `hello` and answers each
    /// request line with the next of `replies`, with `{id}` replaced by the request id.
    fn fake_daemon(
        dir: &tempfile::TempDir,
        hello: &'static str,
        replies: Vec<&'static str>,
    ) -> (PathBuf, thread::JoinHandle<Vec<String>>) {
        let path = dir.path().join("fake.sock");
        let name = path.clone().to_fs_name::<GenericFilePath>().unwrap();
        let listener = ListenerOptions::new().name(name).create_sync().unwrap();
        let handle = thread::spawn(move || {
            let conn: ServerStream = listener.accept().unwrap();
            let mut writer = &conn;
            writer.write_all(hello.as_bytes()).unwrap();
            writer.write_all(b"\n").unwrap();
            let mut reader = BufReader::new(&conn);
            let mut seen = Vec::new();
            for reply in replies {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                let request: Value = serde_json::from_str(&line).unwrap();
                let id = request["id"].as_u64().unwrap();
                seen.push(line.trim_end().to_owned());
                for out in reply.split('\n') {
                    writer
                        .write_all(out.replace("{id}", &id.to_string()).as_bytes())
                        .unwrap();
                    writer.write_all(b"\n").unwrap();
                }
            }
            seen
        });
        (path, handle)
    }

    const HELLO: &str =
        r#"{"id":0,"result":{"type":"hello","data":{"protocol":1,"version":"0.1.0"}}}"#;

    #[test]
    fn a_missing_socket_says_the_daemon_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let error = Client::connect(&dir.path().join("none.sock"))
            .err()
            .expect("connecting to nothing fails");
        assert!(matches!(error, ClientError::NotRunning { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("upqd is not running"), "{message}");
        assert!(message.contains("systemctl --user start upqd"), "{message}");
    }

    #[test]
    fn a_different_protocol_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let hello = r#"{"id":0,"result":{"type":"hello","data":{"protocol":2,"version":"9.0.0"}}}"#;
        let (path, server) = fake_daemon(&dir, hello, vec![]);
        let error = Client::connect(&path).err().expect("version mismatch");
        assert!(
            matches!(error, ClientError::Version { daemon: 2 }),
            "{error:?}"
        );
        server.join().unwrap();
    }

    #[test]
    fn replies_are_matched_by_id_and_errors_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        let (path, server) = fake_daemon(
            &dir,
            HELLO,
            vec![
                // A stray line with another id comes first and must be skipped.
                "{\"id\":77,\"result\":{\"type\":\"limit\",\"data\":1}}\n\
                 {\"id\":{id},\"result\":{\"type\":\"limit\",\"data\":4194304}}",
                r#"{"id":{id},"error":{"code":"not_found","message":"no job 9"}}"#,
            ],
        );
        let mut client = Client::connect(&path).unwrap();
        let answer = client
            .call(Request::Limit {
                rate: 4194304,
                until_ms: None,
            })
            .unwrap();
        assert_eq!(answer.reply, Reply::Limit(4194304));
        assert_eq!(answer.data, Value::from(4194304));
        let error = client.call(Request::Show { id: 9 }).unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::NotFound));
        assert_eq!(error.to_string(), "no job 9");
        drop(client);
        let seen = server.join().unwrap();
        assert_eq!(
            seen[0],
            r#"{"id":1,"method":"limit","params":{"rate":4194304}}"#
        );
        assert_eq!(seen[1], r#"{"id":2,"method":"show","params":{"id":9}}"#);
    }

    #[test]
    fn subscriptions_yield_events_and_skip_unknown_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let (path, server) = fake_daemon(
            &dir,
            HELLO,
            vec![
                "{\"id\":{id},\"result\":{\"type\":\"subscribed\",\"data\":null}}\n\
                 {\"id\":{id},\"result\":{\"type\":\"event\",\"data\":{\"kind\":\"teleported\",\"id\":3}}}\n\
                 {\"id\":{id},\"result\":{\"type\":\"event\",\"data\":{\"kind\":\"progress\",\"id\":3,\"bytes_sent\":10,\"bytes_in_flight\":5,\"size\":100,\"speed\":7}}}",
            ],
        );
        let client = Client::connect(&path).unwrap();
        let mut events = client.subscribe(vec![3]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let (event, raw) = events.next_event(Some(deadline)).unwrap();
        assert_eq!(
            event,
            Event::Progress {
                id: 3,
                bytes_sent: 10,
                bytes_in_flight: 5,
                size: 100,
                speed: 7
            }
        );
        assert_eq!(raw["kind"], "progress");
        let seen = server.join().unwrap();
        assert_eq!(
            seen[0],
            r#"{"id":1,"method":"subscribe","params":{"ids":[3]}}"#
        );
        // The daemon hung up after its last line.
        assert!(matches!(
            events.next_event(Some(deadline)),
            Err(ClientError::Closed)
        ));
    }

    #[test]
    fn a_deadline_gives_a_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slow.sock");
        let name = path.clone().to_fs_name::<GenericFilePath>().unwrap();
        let listener = ListenerOptions::new().name(name).create_sync().unwrap();
        let server = thread::spawn(move || {
            let conn: ServerStream = listener.accept().unwrap();
            let mut writer = &conn;
            writer.write_all(HELLO.as_bytes()).unwrap();
            writer
                .write_all(b"\n{\"id\":1,\"result\":{\"type\":\"subscribed\"}}\n")
                .unwrap();
            // Keep the connection open without sending events until the client leaves.
            let mut rest = Vec::new();
            let _ = BufReader::new(&conn).read_to_end(&mut rest);
        });
        let client = Client::connect(&path).unwrap();
        let mut events = client.subscribe(vec![]).unwrap();
        let started = Instant::now();
        let result = events.next_event(Some(started + Duration::from_millis(200)));
        assert!(matches!(result, Err(ClientError::Timeout)), "{result:?}");
        assert!(started.elapsed() >= Duration::from_millis(150));
        drop(events);
        server.join().unwrap();
    }
}
