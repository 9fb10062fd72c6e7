//! Blocking calls for tests that talk to the YouTube server directly, over [`crate::http`].
//! They send what they are told, right or wrong; the server judges.

use std::io;

use serde_json::{json, Value};

use super::{YouTubeServer, UPLOAD_PATH, VIDEOS_PATH};
use crate::form::{self, FORM_CONTENT_TYPE};
use crate::http;

/// The JSON body of an answer.
pub fn json(response: &http::Response) -> Value {
    serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {} {:?}",
            response.status,
            String::from_utf8_lossy(&response.body)
        )
    })
}

/// `error.errors[0].reason` of a Google API error (empty when there is none).
pub fn reason(response: &http::Response) -> String {
    serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|body| {
            body["error"]["errors"][0]["reason"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// The bytes a 308's `Range: bytes=0-N` confirms (0 without the header).
pub fn held(response: &http::Response) -> u64 {
    match response.header("range") {
        None => 0,
        Some(range) => {
            let last: u64 = range
                .strip_prefix("bytes=0-")
                .and_then(|last| last.parse().ok())
                .unwrap_or_else(|| panic!("a malformed Range {range:?}"));
            last + 1
        }
    }
}

/// A video resource with this title and privacy.
pub fn metadata(title: &str, privacy: &str) -> Value {
    json!({
        "snippet": {"title": title, "description": "uploaded by upq's tests", "tags": ["upq"]},
        "status": {"privacyStatus": privacy, "selfDeclaredMadeForKids": false},
    })
}

/// `POST /upload/youtube/v3/videos?{query}` with the fixed token, the JSON body and the
/// `X-Upload-*` headers for a `size`-byte `video/mp4`.
pub fn start_with(server: &YouTubeServer, query: &str, size: u64, body: &Value) -> http::Response {
    let size = size.to_string();
    start_raw(
        server,
        query,
        &[
            ("X-Upload-Content-Length", size.as_str()),
            ("X-Upload-Content-Type", "video/mp4"),
            ("Content-Type", "application/json; charset=UTF-8"),
        ],
        Some(&server.token()),
        body.to_string().as_bytes(),
    )
}

/// The start request with every header and the token given here.
pub fn start_raw(
    server: &YouTubeServer,
    query: &str,
    headers: &[(&str, &str)],
    token: Option<&str>,
    body: &[u8],
) -> http::Response {
    let auth = token.map(|token| format!("Bearer {token}"));
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if let Some(auth) = &auth {
        all.push(("Authorization", auth));
    }
    let url = format!("{}?{query}", server.url(UPLOAD_PATH));
    http::request("POST", &url, &all, body).expect("start request")
}

/// Starts a resumable session for `size` bytes with `body` as metadata; returns the session
/// URI, panicking unless the server answered 200 with one.
pub fn start(server: &YouTubeServer, size: u64, body: &Value) -> String {
    let response = start_with(
        server,
        "uploadType=resumable&part=snippet,status",
        size,
        body,
    );
    assert_eq!(
        response.status,
        200,
        "start: {}\n{}",
        String::from_utf8_lossy(&response.body),
        server.describe()
    );
    response
        .header("location")
        .expect("a session URI in Location")
        .to_string()
}

/// PUTs `bytes` as the range from `first` of a `total`-byte video.
pub fn put_chunk(
    session: &str,
    first: u64,
    total: u64,
    bytes: &[u8],
) -> io::Result<http::Response> {
    let range = format!("bytes {first}-{}/{total}", first + bytes.len() as u64 - 1);
    http::request(
        "PUT",
        session,
        &[("Content-Type", "video/mp4"), ("Content-Range", &range)],
        bytes,
    )
}

/// The status query: an empty PUT with `Content-Range: bytes */{total}`.
pub fn query_status(session: &str, total: u64) -> http::Response {
    let range = format!("bytes */{total}");
    http::request("PUT", session, &[("Content-Range", &range)], &[]).expect("status query")
}

/// Uploads `data` in chunks of `chunk` bytes from the start; returns the last answer.
pub fn upload_all(session: &str, data: &[u8], chunk: usize) -> http::Response {
    let total = data.len() as u64;
    let mut first = 0usize;
    let mut stuck = 0;
    loop {
        let end = (first + chunk).min(data.len());
        let response = put_chunk(session, first as u64, total, &data[first..end]).expect("chunk");
        if response.status != 308 {
            return response;
        }
        let next = held(&response) as usize;
        stuck = if next > first { 0 } else { stuck + 1 };
        assert!(stuck < 3, "the upload makes no progress at byte {first}");
        first = next;
    }
}

/// Starts and completes an upload of `data`; returns the video id.
pub fn upload_video(server: &YouTubeServer, data: &[u8], body: &Value) -> String {
    let session = start(server, data.len() as u64, body);
    let response = upload_all(&session, data, 4 * 262_144);
    let value = json(&response);
    assert_eq!(response.status, 201, "{value}\n{}", server.describe());
    value["id"].as_str().expect("a video id").to_string()
}

/// `GET /youtube/v3/videos?part={part}&id={ids}` with this token.
pub fn list(server: &YouTubeServer, token: &str, part: &str, ids: &str) -> http::Response {
    let url = format!(
        "{}?{}",
        server.url(VIDEOS_PATH),
        form::encode_pairs(&[("part", part), ("id", ids)])
    );
    let auth = format!("Bearer {token}");
    http::request("GET", &url, &[("Authorization", &auth)], &[]).expect("videos.list")
}

/// `PUT /youtube/v3/videos?part={part}` with this token and body.
pub fn update(server: &YouTubeServer, token: &str, part: &str, body: &Value) -> http::Response {
    let url = format!("{}?part={part}", server.url(VIDEOS_PATH));
    let auth = format!("Bearer {token}");
    http::request(
        "PUT",
        &url,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json; charset=UTF-8"),
        ],
        body.to_string().as_bytes(),
    )
    .expect("videos.update")
}

/// `DELETE /youtube/v3/videos?id={id}` with this token.
pub fn delete(server: &YouTubeServer, token: &str, id: &str) -> http::Response {
    let url = format!("{}?id={id}", server.url(VIDEOS_PATH));
    let auth = format!("Bearer {token}");
    http::request("DELETE", &url, &[("Authorization", &auth)], &[]).expect("videos.delete")
}

/// GETs the authorization endpoint with these query parameters (encoded here).
pub fn authorize(server: &YouTubeServer, params: &[(&str, &str)]) -> http::Response {
    let url = format!("{}?{}", server.auth_url(), form::encode_pairs(params));
    http::request("GET", &url, &[], &[]).expect("authorization request")
}

/// The decoded query parameters of a redirect's `Location`; panics unless the answer is a
/// 302 to `redirect_uri`.
pub fn redirect_params(response: &http::Response, redirect_uri: &str) -> Vec<(String, String)> {
    assert_eq!(
        response.status,
        302,
        "not a redirect: {}",
        String::from_utf8_lossy(&response.body)
    );
    let location = response.header("location").expect("a Location header");
    let query = location
        .strip_prefix(redirect_uri)
        .and_then(|rest| rest.strip_prefix('?'))
        .unwrap_or_else(|| panic!("{location:?} is not {redirect_uri}?…"));
    form::decode_pairs(query).expect("a well-formed redirect query")
}

/// The value of `name` among decoded pairs.
pub fn param(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.clone())
}

/// POSTs a form to `url`.
pub fn post_form(url: &str, pairs: &[(&str, &str)]) -> http::Response {
    http::request(
        "POST",
        url,
        &[("Content-Type", FORM_CONTENT_TYPE)],
        form::encode_pairs(pairs).as_bytes(),
    )
    .expect("form POST")
}

/// `error` of an OAuth error answer (empty when there is none).
pub fn oauth_error(response: &http::Response) -> String {
    json(response)["error"].as_str().unwrap_or("").to_string()
}
