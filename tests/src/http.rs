//! A tiny blocking HTTP/1.1 client over `std::net::TcpStream`, for tests to poke tus peers.
//!
//! One request per connection (`Connection: close`); it talks only to loopback test servers.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long one request may take before it is an error instead of a hung test.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed response: status, headers (names in lower case, in order) and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `Upload-Offset` as a number, if present and numeric.
    pub fn upload_offset(&self) -> Option<u64> {
        self.header("upload-offset")?.trim().parse().ok()
    }
}

/// `http://host:port/path?query` → (`host:port`, `/path?query`).
pub fn split_url(url: &str) -> (String, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("only http:// URLs are supported here: {url}"));
    match rest.find('/') {
        Some(slash) => (rest[..slash].to_string(), rest[slash..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    }
}

/// Sends one request and reads the whole response.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    request_with_timeout(method, url, headers, body, REQUEST_TIMEOUT)
}

/// Like [`request`], failing with a timeout error when a read or write blocks for `timeout`.
pub fn request_with_timeout(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let (authority, path) = split_url(url);
    let mut stream = TcpStream::connect(&authority)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // A `Host` given by the caller replaces the one the URL names.
    let host = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("host"))
        .map_or(authority.as_str(), |(_, value)| *value);
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("host"))
    {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PATCH" | "PUT") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    read_response(BufReader::new(stream), method == "HEAD")
}

/// `HEAD url` with `Tus-Resumable: 1.0.0`.
pub fn tus_head(url: &str) -> io::Result<Response> {
    request("HEAD", url, &[("Tus-Resumable", "1.0.0")], &[])
}

/// `DELETE url` with `Tus-Resumable: 1.0.0` (tus termination).
pub fn tus_delete(url: &str) -> io::Result<Response> {
    request("DELETE", url, &[("Tus-Resumable", "1.0.0")], &[])
}

/// `POST endpoint` creating an upload of `length` bytes; returns the response (Location in it).
pub fn tus_create(endpoint: &str, length: u64, metadata: &str) -> io::Result<Response> {
    let length = length.to_string();
    let mut headers = vec![
        ("Tus-Resumable", "1.0.0"),
        ("Upload-Length", length.as_str()),
    ];
    if !metadata.is_empty() {
        headers.push(("Upload-Metadata", metadata));
    }
    request("POST", endpoint, &headers, &[])
}

/// `PATCH url` with `bytes` at `offset`.
pub fn tus_patch(url: &str, offset: u64, bytes: &[u8]) -> io::Result<Response> {
    let offset = offset.to_string();
    request(
        "PATCH",
        url,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Offset", offset.as_str()),
        ],
        bytes,
    )
}

/// `OPTIONS url`.
pub fn tus_options(url: &str) -> io::Result<Response> {
    request("OPTIONS", url, &[], &[])
}

fn read_response(mut reader: impl BufRead, is_head: bool) -> io::Result<Response> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(invalid("connection closed inside the headers".into()));
        }
        let text = line.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            break;
        }
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {text:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if is_head || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(response);
    }
    if let Some(length) = response.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| invalid(format!("bad Content-Length {length:?}")))?;
        response.body = vec![0; length];
        reader.read_exact(&mut response.body)?;
    } else if response
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        response.body = read_chunked(&mut reader)?;
    } else {
        reader.read_to_end(&mut response.body)?;
    }
    Ok(response)
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size_text = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        line.clear();
        reader.read_line(&mut line)?;
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/files/abc"),
            ("127.0.0.1:8080".to_string(), "/files/abc".to_string())
        );
        assert_eq!(
            split_url("http://127.0.0.1:1"),
            ("127.0.0.1:1".to_string(), "/".to_string())
        );
    }

    #[test]
    fn reads_chunked_and_sized_bodies() {
        let chunked = b"HTTP/1.1 201 \r\nTransfer-Encoding: chunked\r\nLocation: /x\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let response = read_response(&chunked[..], false).unwrap();
        assert_eq!(response.status, 201);
        assert_eq!(response.body, b"abcde");
        assert_eq!(response.header("Location"), Some("/x"));

        let sized = b"HTTP/1.1 204 No Content\r\nUpload-Offset: 42\r\n\r\n";
        let response = read_response(&sized[..], false).unwrap();
        assert_eq!(response.upload_offset(), Some(42));
    }
}
