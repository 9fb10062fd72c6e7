//! A raw client of the control socket: newline-delimited JSON over a Unix stream.
//!
//! Used for cheap polling and for feeding the daemon malformed input; it owns no daemon state.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use upq_proto::JobView;

/// How long a read may block before the test fails instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    /// The hello line the daemon sent on connect.
    pub hello: Value,
}

impl Client {
    /// Connects and reads the daemon's hello line.
    pub fn connect(path: &Path) -> io::Result<Client> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        let mut client = Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            next_id: 1,
            hello: Value::Null,
        };
        let hello = client.read_json()?;
        if hello["id"] != 0 || hello["result"]["type"] != "hello" {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected a hello line first, got {hello}"),
            ));
        }
        client.hello = hello;
        Ok(client)
    }

    /// The underlying stream, to shut it down or change its timeouts.
    pub fn stream(&self) -> &UnixStream {
        &self.writer
    }

    /// Writes bytes as they are (no newline added).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    /// Reads one line; `None` at end of stream.
    pub fn read_line(&mut self) -> io::Result<Option<String>> {
        let mut line = String::new();
        match self.reader.read_line(&mut line)? {
            0 => Ok(None),
            _ => Ok(Some(line)),
        }
    }

    /// Reads one line and parses it as JSON; end of stream is an error.
    pub fn read_json(&mut self) -> io::Result<Value> {
        let line = self.read_line()?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "daemon closed the connection")
        })?;
        serde_json::from_str(&line).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("response is not JSON ({e}): {line:?}"),
            )
        })
    }

    /// Sends one request and returns the whole response line, checking that its id matches.
    pub fn request(&mut self, method: &str, params: Option<Value>) -> io::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({"id": id, "method": method});
        if let Some(params) = params {
            request["params"] = params;
        }
        let mut line = serde_json::to_vec(&request).expect("requests serialize");
        line.push(b'\n');
        self.send_raw(&line)?;
        let response = self.read_json()?;
        if response["id"] != id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("response to request {id} carries another id: {response}"),
            ));
        }
        Ok(response)
    }

    /// Sends a request and returns `Ok(result.data)` or `Err(error)` as the daemon answered.
    pub fn call(
        &mut self,
        method: &str,
        params: Option<Value>,
    ) -> io::Result<Result<Value, Value>> {
        let response = self.request(method, params)?;
        if let Some(error) = response.get("error") {
            return Ok(Err(error.clone()));
        }
        match response.get("result") {
            Some(result) => Ok(Ok(result.get("data").cloned().unwrap_or(Value::Null))),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("response has neither result nor error: {response}"),
            )),
        }
    }

    /// `show`: one job with its history.
    pub fn show(&mut self, id: u64) -> io::Result<JobView> {
        match self.call("show", Some(json!({"id": id})))? {
            Ok(data) => serde_json::from_value(data.clone()).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("show {id} returned no job ({e}): {data}"),
                )
            }),
            Err(error) => Err(io::Error::other(format!("show {id} failed: {error}"))),
        }
    }
}
