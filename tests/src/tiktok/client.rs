//! Blocking helpers for tests that talk to the server directly.

use super::*;

/// POSTs `body` to an API `path` with this token and the documented `Content-Type`.
pub fn call(server: &TikTokServer, path: &str, body: &Value) -> http::Response {
    call_raw(
        &server.url(path),
        Some(&server.token()),
        Some(JSON_CONTENT_TYPE),
        body.to_string().as_bytes(),
    )
}

/// POSTs raw bytes with the given token and `Content-Type` (either may be left out).
pub fn call_raw(
    url: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> http::Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    if let Some(content_type) = content_type {
        headers.push(("Content-Type", content_type));
    }
    http::request("POST", url, &headers, body).expect("API call")
}

/// The JSON body of an answer.
pub fn json(response: &http::Response) -> Value {
    serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {:?}",
            String::from_utf8_lossy(&response.body)
        )
    })
}

/// `error.code` of an answer.
pub fn code(response: &http::Response) -> String {
    json(response)["error"]["code"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// The `source_info` of a FILE_UPLOAD plan.
pub fn source_info(video_size: u64, chunk_size: u64, total_chunk_count: u64) -> Value {
    json!({
        "source": "FILE_UPLOAD",
        "video_size": video_size,
        "chunk_size": chunk_size,
        "total_chunk_count": total_chunk_count,
    })
}

/// A direct post init body.
pub fn direct_body(privacy_level: &str, source_info: Value) -> Value {
    json!({
        "post_info": {"title": "upq test", "privacy_level": privacy_level},
        "source_info": source_info,
    })
}

/// Inits a direct post and returns (publish_id, upload_url); panics unless it succeeds.
pub fn init_direct(server: &TikTokServer, video_size: u64, chunk_size: u64) -> (String, String) {
    let count = video_size / chunk_size;
    let body = direct_body("SELF_ONLY", source_info(video_size, chunk_size, count));
    init_ok(call(server, DIRECT_INIT_PATH, &body))
}

/// Inits an inbox upload and returns (publish_id, upload_url); panics unless it succeeds.
pub fn init_inbox(server: &TikTokServer, video_size: u64, chunk_size: u64) -> (String, String) {
    let count = video_size / chunk_size;
    let body = json!({"source_info": source_info(video_size, chunk_size, count)});
    init_ok(call(server, INBOX_INIT_PATH, &body))
}

fn init_ok(response: http::Response) -> (String, String) {
    let value = json(&response);
    assert_eq!(response.status, 200, "init failed: {value}");
    (
        value["data"]["publish_id"]
            .as_str()
            .expect("publish_id")
            .to_string(),
        value["data"]["upload_url"]
            .as_str()
            .expect("upload_url")
            .to_string(),
    )
}

/// PUTs `bytes` as the range starting at `first` of a `total`-byte video.
pub fn put_chunk(
    upload_url: &str,
    content_type: &str,
    first: u64,
    total: u64,
    bytes: &[u8],
) -> io::Result<http::Response> {
    let range = format!("bytes {first}-{}/{total}", first + bytes.len() as u64 - 1);
    http::request(
        "PUT",
        upload_url,
        &[("Content-Type", content_type), ("Content-Range", &range)],
        bytes,
    )
}

/// Fetches the status of a publish_id; returns the whole answer.
pub fn fetch_status(server: &TikTokServer, publish_id: &str) -> http::Response {
    call(server, STATUS_PATH, &json!({"publish_id": publish_id}))
}

/// POSTs `body` to an API `path` with the given access token.
pub fn call_with(server: &TikTokServer, token: &str, path: &str, body: &Value) -> http::Response {
    call_raw(
        &server.url(path),
        Some(token),
        Some(JSON_CONTENT_TYPE),
        body.to_string().as_bytes(),
    )
}

/// GETs the authorization page with these query parameters (encoded here).
pub fn authorize(server: &TikTokServer, params: &[(&str, &str)]) -> http::Response {
    let url = format!(
        "{}?{}",
        server.authorize_url(),
        oauth::form::encode_pairs(params)
    );
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
    oauth::form::decode_pairs(query).expect("a well-formed redirect query")
}

/// The value of `name` among decoded pairs.
pub fn param(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.clone())
}

/// POSTs a form (`application/x-www-form-urlencoded`) to `path`.
pub fn post_form(server: &TikTokServer, path: &str, pairs: &[(&str, &str)]) -> http::Response {
    http::request(
        "POST",
        &server.url(path),
        &[("Content-Type", oauth::FORM_CONTENT_TYPE)],
        oauth::form::encode_pairs(pairs).as_bytes(),
    )
    .expect("form POST")
}

/// `error` of an OAuth error answer (empty when there is none).
pub fn oauth_error(response: &http::Response) -> String {
    json(response)["error"].as_str().unwrap_or("").to_string()
}

/// GETs `/v2/user/info/?fields=…` with this access token.
pub fn user_info(server: &TikTokServer, token: &str, fields: &str) -> http::Response {
    let url = format!(
        "{}?{}",
        server.url(USER_INFO_PATH),
        oauth::form::encode_pairs(&[("fields", fields)])
    );
    let auth = format!("Bearer {token}");
    http::request("GET", &url, &[("Authorization", &auth)], &[]).expect("user info request")
}
