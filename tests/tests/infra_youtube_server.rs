//! The YouTube Data API stand-in on its own, driven by a plain HTTP client: a resumable upload
//! end to end, every refusal of the start, the chunk and `Range` rules with partial
//! persistence, status queries, dropped connections, session expiry, quota and its reset at
//! midnight Pacific Time, the channel's upload limit, processing, update and delete scopes,
//! `publishAt`, injected faults, and Google's desktop sign-in with its refusals. PKCE is
//! computed here with `sha2`, independently of the server's own code.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use chrono::SecondsFormat;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use upq_tests::http;
use upq_tests::wait_until;
use upq_tests::youtube::client::{
    authorize, delete, held, json, list, metadata, oauth_error, param, post_form, put_chunk,
    query_status, reason, redirect_params, start, start_raw, start_with, update, upload_all,
    upload_video,
};
use upq_tests::youtube::{
    Fault, GoogleApp, InsertQuota, YouTubeOptions, YouTubeServer, SCOPE_FORCE_SSL, SCOPE_READONLY,
    SCOPE_UPLOAD, SCOPE_YOUTUBE, VIDEOS_PATH,
};

const GRANULE: u64 = 262_144;
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
const START_QUERY: &str = "uploadType=resumable&part=snippet,status";
/// Nothing listens there; the redirect is only read.
const REDIRECT: &str = "http://127.0.0.1:48123/callback";

/// Deterministic bytes for a video of `size` bytes.
fn video(size: u64) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..size)
        .map(|i| {
            if i % 8 == 0 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
            }
            (state >> ((i % 8) * 8)) as u8
        })
        .collect()
}

/// A server whose clock moves only when advanced.
fn server_with(options: YouTubeOptions) -> YouTubeServer {
    YouTubeServer::start(YouTubeOptions {
        time_scale: 0.0,
        ..options
    })
}

fn server() -> YouTubeServer {
    server_with(YouTubeOptions::default())
}

fn hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Sends a request the server must refuse with this status and `errors[0].reason`; checks
/// whether the refusal was counted as the client's violation.
fn refused(
    server: &YouTubeServer,
    status: u16,
    expected: &str,
    counted: bool,
    send: impl FnOnce() -> http::Response,
) -> http::Response {
    let before = server.violations().len();
    let response = send();
    let body = json(&response);
    assert_eq!(response.status, status, "{body}\n{}", server.describe());
    assert_eq!(reason(&response), expected, "{body}");
    assert_eq!(body["error"]["code"], status, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(
        server.violations().len(),
        before + usize::from(counted),
        "{expected}: {:#?}",
        server.violations()
    );
    response
}

/// The start request's headers for a video of `size` bytes, leaving some out.
fn start_headers<'a>(size: &'a str, leave_out: &[&str]) -> Vec<(&'static str, &'a str)> {
    [
        ("X-Upload-Content-Length", size),
        ("X-Upload-Content-Type", "video/mp4"),
        ("Content-Type", "application/json; charset=UTF-8"),
    ]
    .into_iter()
    .filter(|(name, _)| !leave_out.contains(name))
    .collect()
}

/// The status line of a raw status query (to read the reason phrase).
fn raw_status_line(session: &str, total: u64) -> String {
    let (authority, path) = http::split_url(session);
    let mut stream = TcpStream::connect(&authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Length: 0\r\nContent-Range: bytes */{total}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line.trim_end().to_string()
}

/// Sends the head of a chunk PUT announcing `announced` bytes, then only `sent` of them, then
/// closes the connection.
fn put_and_vanish(session: &str, total: u64, data: &[u8], announced: u64, sent: usize) {
    let (authority, path) = http::split_url(session);
    let mut stream = TcpStream::connect(&authority).unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: video/mp4\r\n\
         Content-Length: {announced}\r\nContent-Range: bytes 0-{}/{total}\r\n\r\n",
        announced - 1
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&data[..sent]).unwrap();
    stream.flush().unwrap();
    stream.shutdown(std::net::Shutdown::Both).unwrap();
}

fn deadline() -> Duration {
    Duration::from_secs(20)
}

#[test]
fn a_video_goes_up_in_chunks_and_its_bytes_arrive_whole() {
    let server = server();
    let size = 5 * GRANULE + 12_345;
    let data = video(size);
    let session = start(&server, size, &metadata("upq test video", "private"));
    assert!(
        session.starts_with(&format!(
            "{}/upload/youtube/v3/videos?uploadType=resumable&upload_id=",
            server.api_base()
        )),
        "{session}"
    );

    // Nothing held yet: 308 without a Range.
    let nothing = query_status(&session, size);
    assert_eq!(nothing.status, 308);
    assert_eq!(nothing.header("range"), None);
    assert_eq!(
        raw_status_line(&session, size),
        "HTTP/1.1 308 Resume Incomplete"
    );

    let mut first = 0u64;
    let mut answers = Vec::new();
    while first < size {
        let end = (first + 2 * GRANULE).min(size);
        let response =
            put_chunk(&session, first, size, &data[first as usize..end as usize]).unwrap();
        answers.push(response.status);
        if response.status == 308 {
            assert_eq!(
                response.header("range"),
                Some(format!("bytes=0-{}", end - 1).as_str())
            );
            assert_eq!(held(&response), end);
        } else {
            let body = json(&response);
            assert_eq!(response.status, 201, "{body}");
            assert_eq!(body["kind"], "youtube#video");
            assert_eq!(body["snippet"]["title"], "upq test video");
            assert_eq!(body["snippet"]["tags"], json!(["upq"]));
            assert_eq!(body["status"]["uploadStatus"], "uploaded");
            assert_eq!(body["status"]["privacyStatus"], "private");
            assert_eq!(body["status"]["selfDeclaredMadeForKids"], false);
            assert_eq!(body["id"].as_str().unwrap().len(), 11);
        }
        first = end;
    }
    assert_eq!(answers, [308, 308, 201], "{}", server.describe());

    let id = server.videos()[0].id.clone();
    let record = server.video(&id).unwrap();
    assert_eq!(record.received, size);
    assert_eq!(record.size, size);
    assert_eq!(record.content_type, "video/mp4");
    assert_eq!(record.blake3, hash(&data));
    assert_eq!(upq_tests::hash_file(&record.path), hash(&data));
    assert_eq!(record.upload_status, "uploaded");
    assert_eq!(
        record.chunks,
        [
            (0, 2 * GRANULE - 1),
            (2 * GRANULE, 4 * GRANULE - 1),
            (4 * GRANULE, size - 1)
        ]
    );
    assert_eq!(
        record.privacy_changes,
        [(Duration::ZERO, "private".to_string())]
    );
    assert!(!record.expired && !record.deleted);

    // Once complete, a status query answers with the video.
    let done = query_status(&session, size);
    assert_eq!(done.status, 200);
    assert_eq!(json(&done)["id"], id.as_str());

    assert!(server.violations().is_empty(), "{:#?}", server.violations());
    assert_eq!(server.inserts_used(), 1);
    assert_eq!(
        server.quota_used(),
        0,
        "videos.insert has a bucket of its own"
    );
}

#[test]
fn a_whole_video_in_one_put_needs_no_content_range() {
    let server = server();
    let data = video(1000);
    let session = start(&server, 1000, &metadata("one go", "unlisted"));
    let response = http::request("PUT", &session, &[("Content-Type", "video/*")], &data).unwrap();
    assert_eq!(response.status, 201, "{}", server.describe());
    assert_eq!(json(&response)["status"]["privacyStatus"], "unlisted");
    assert_eq!(server.videos()[0].blake3, hash(&data));
    assert!(server.violations().is_empty());
}

#[test]
fn every_start_refusal() {
    let server = server();
    let body = metadata("fine", "private");
    let bytes = body.to_string();
    let headers = start_headers("1000", &[]);
    let token = server.token();

    refused(&server, 401, "required", true, || {
        start_raw(&server, START_QUERY, &headers, None, bytes.as_bytes())
    });
    let wrong = refused(&server, 401, "authError", true, || {
        start_raw(
            &server,
            START_QUERY,
            &headers,
            Some("ya29.not-issued"),
            bytes.as_bytes(),
        )
    });
    assert!(wrong
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
    let error = &json(&wrong)["error"];
    assert_eq!(error["errors"][0]["message"], "Invalid Credentials");
    assert_eq!(error["errors"][0]["location"], "Authorization");
    assert_eq!(error["status"], "UNAUTHENTICATED");
    server.set_scopes(&[SCOPE_READONLY]);
    refused(&server, 403, "insufficientPermissions", true, || {
        start_with(&server, START_QUERY, 1000, &body)
    });
    server.set_scopes(&[SCOPE_FORCE_SSL]);
    assert_eq!(start_with(&server, START_QUERY, 1000, &body).status, 200);
    server.set_scopes(&[SCOPE_UPLOAD]);
    assert_eq!(
        server.quota_used(),
        0,
        "refusals before authentication cost nothing"
    );

    let query_cases = [
        ("uploadType=multipart&part=snippet,status", "badRequest"),
        ("part=snippet,status", "badRequest"),
        ("uploadType=resumable", "missingRequiredParameter"),
        ("uploadType=resumable&part=snippet,colour", "unknownPart"),
        (
            "uploadType=resumable&part=snippet&colour=red",
            "unexpectedParameter",
        ),
    ];
    for (query, expected) in query_cases {
        refused(&server, 400, expected, true, || {
            start_with(&server, query, 1000, &body)
        });
    }

    let header_cases: [(&[&str], &str, &str); 3] = [
        (&["X-Upload-Content-Length"], "1000", "badRequest"),
        (&[], "0", "mediaBodyRequired"),
        (&["X-Upload-Content-Type"], "1000", "badRequest"),
    ];
    for (leave_out, size, expected) in header_cases {
        refused(&server, 400, expected, true, || {
            start_raw(
                &server,
                START_QUERY,
                &start_headers(size, leave_out),
                Some(&token),
                bytes.as_bytes(),
            )
        });
    }
    for (name, value) in [
        ("X-Upload-Content-Type", "image/png"),
        ("Content-Type", "text/plain"),
    ] {
        let mut changed = start_headers("1000", &[name]);
        changed.push((name, value));
        refused(&server, 400, "badRequest", true, || {
            start_raw(
                &server,
                START_QUERY,
                &changed,
                Some(&token),
                bytes.as_bytes(),
            )
        });
    }
    refused(&server, 413, "uploadTooLarge", true, || {
        start_with(&server, START_QUERY, 300 * 1024 * 1024 * 1024, &body)
    });
    refused(&server, 400, "badRequest", true, || {
        start_raw(&server, START_QUERY, &headers, Some(&token), b"{not json")
    });

    // 84 tags "a b" count 84 * 5 + 83 commas = 503 characters, quotes included.
    let tags_over: Vec<&str> = vec!["a b"; 84];
    let body_cases = [
        (json!(["not", "an", "object"]), "badRequest"),
        (
            json!({"snippet": {"title": "t"}, "colour": 1}),
            "badRequest",
        ),
        (
            json!({"snippet": {"title": "t", "colour": 1}}),
            "badRequest",
        ),
        (
            json!({"status": {"privacyStatus": "private"}}),
            "invalidTitle",
        ),
        (json!({"snippet": {"title": "  "}}), "invalidTitle"),
        (
            json!({"snippet": {"title": "x".repeat(101)}}),
            "invalidTitle",
        ),
        (json!({"snippet": {"title": "a <b>"}}), "invalidTitle"),
        (
            json!({"snippet": {"title": "t", "description": "é".repeat(2501)}}),
            "invalidDescription",
        ),
        (
            json!({"snippet": {"title": "t", "tags": tags_over}}),
            "invalidTags",
        ),
        (
            json!({"snippet": {"title": "t", "categoryId": "music"}}),
            "invalidCategoryId",
        ),
        (
            json!({"snippet": {"title": "t"}, "status": {"privacyStatus": "secret"}}),
            "invalidVideoMetadata",
        ),
        (
            json!({"snippet": {"title": "t"},
                   "status": {"privacyStatus": "public", "publishAt": "2030-01-01T00:00:00Z"}}),
            "invalidPublishAt",
        ),
        (
            json!({"snippet": {"title": "t"},
                   "status": {"privacyStatus": "private", "publishAt": "next week"}}),
            "invalidPublishAt",
        ),
        (
            json!({"snippet": {"title": "t"}, "status": {"selfDeclaredMadeForKids": "no"}}),
            "badRequest",
        ),
    ];
    for (body, expected) in &body_cases {
        refused(&server, 400, expected, true, || {
            start_with(&server, START_QUERY, 1000, body)
        });
    }

    // At the limits: 100 characters of two bytes each; 83 tags counting 497 with quotes.
    let tags_at_limit: Vec<&str> = vec!["a b"; 83];
    let at_limits = json!({"snippet": {"title": "é".repeat(100), "tags": tags_at_limit}});
    assert_eq!(
        start_with(&server, START_QUERY, 1000, &at_limits).status,
        200
    );
    // The properties of a part not named in `part` are ignored: the privacy is the default.
    let snippet_only = start_with(
        &server,
        "uploadType=resumable&part=snippet",
        1000,
        &metadata("t", "private"),
    );
    assert_eq!(snippet_only.status, 200);
    let last = server.videos().last().cloned().unwrap();
    assert_eq!(last.status["privacyStatus"], "public");

    // videos.insert without the upload endpoint has no media.
    refused(&server, 400, "mediaBodyRequired", true, || {
        http::request(
            "POST",
            &format!("{}?part=snippet", server.url(VIDEOS_PATH)),
            &[("Authorization", &format!("Bearer {token}"))],
            bytes.as_bytes(),
        )
        .unwrap()
    });

    let after_authentication =
        query_cases.len() + header_cases.len() + 2 + 1 + 1 + body_cases.len();
    assert_eq!(
        server.quota_used(),
        after_authentication as u64,
        "every refusal after authentication costs a unit"
    );
    assert_eq!(server.inserts_used(), 3);
}

#[test]
fn chunk_rules_and_ranges() {
    let server = server();
    let size = 3 * GRANULE + 1000;
    let data = video(size);
    let session = start(&server, size, &metadata("chunks", "private"));
    let put = |first: u64, bytes: &[u8]| put_chunk(&session, first, size, bytes).unwrap();
    let with_range = |range: &str, bytes: &[u8]| {
        http::request(
            "PUT",
            &session,
            &[("Content-Type", "video/mp4"), ("Content-Range", range)],
            bytes,
        )
        .unwrap()
    };
    let g = GRANULE as usize;

    // Not a multiple of 256 KiB, and not the final chunk: nothing of it is kept.
    let odd = refused(&server, 400, "badRequest", true, || put(0, &data[..g + 1]));
    assert_eq!(odd.header("range"), None);
    // Ahead of what the server holds.
    refused(&server, 400, "badRequest", true, || {
        put(GRANULE, &data[g..2 * g])
    });
    for bad in [
        format!("bytes 0-{}/{}", GRANULE - 1, size + 1),
        format!("bytes 0-{}/{size}", 2 * GRANULE - 1),
        format!("bytes=0-{}/{size}", GRANULE - 1),
        format!("bytes 0-{}", GRANULE - 1),
        format!("bytes {}-{}/{size}", size - 10, size + 9),
    ] {
        refused(&server, 400, "badRequest", true, || {
            with_range(&bad, &data[..g])
        });
    }
    // The final chunk must state the total.
    let tail = &data[3 * g..];
    refused(&server, 400, "badRequest", true, || {
        with_range(&format!("bytes {}-{}/*", 3 * GRANULE, size - 1), tail)
    });
    // A chunk not of a video type.
    refused(&server, 400, "badRequest", true, || {
        http::request(
            "PUT",
            &session,
            &[
                ("Content-Type", "text/plain"),
                ("Content-Range", &format!("bytes 0-{}/{size}", GRANULE - 1)),
            ],
            &data[..g],
        )
        .unwrap()
    });
    assert_eq!(server.videos()[0].received, 0);

    // An unknown total is fine before the final chunk.
    let first = with_range(&format!("bytes 0-{}/*", GRANULE - 1), &data[..g]);
    assert_eq!(first.status, 308, "{}", server.describe());
    assert_eq!(first.header("range"), Some("bytes=0-262143"));
    // Resending it blindly is refused with what is held.
    let again = refused(&server, 400, "badRequest", true, || put(0, &data[..g]));
    assert_eq!(held(&again), GRANULE);
    // A whole-file PUT without Content-Range starts at 0: refused too.
    refused(&server, 400, "badRequest", true, || {
        http::request("PUT", &session, &[("Content-Type", "video/mp4")], &data).unwrap()
    });
    // A status query with another total, or with a body.
    refused(&server, 400, "badRequest", true, || {
        query_status(&session, size + 1)
    });
    refused(&server, 400, "badRequest", true, || {
        with_range(&format!("bytes */{size}"), b"body")
    });
    assert_eq!(held(&query_status(&session, size)), GRANULE);

    let second = put(GRANULE, &data[g..3 * g]);
    assert_eq!(held(&second), 3 * GRANULE);
    let last = put(3 * GRANULE, tail);
    assert_eq!(last.status, 201, "{}", server.describe());
    // After completion, a chunk is refused; the status query answers with the video.
    refused(&server, 400, "badRequest", true, || put(3 * GRANULE, tail));
    assert_eq!(query_status(&session, size).status, 200);

    let record = &server.videos()[0];
    assert_eq!(record.blake3, hash(&data));
    assert_eq!(record.chunks.len(), 11, "{:?}", record.chunks);
    assert_eq!(server.violations().len(), 14, "{:#?}", server.violations());
}

#[test]
fn a_range_may_confirm_less_than_was_sent() {
    let server = server_with(YouTubeOptions {
        persist_granularity: Some(500_000),
        ..YouTubeOptions::default()
    });
    let size = 10 * GRANULE + 777;
    let data = video(size);
    let chunk = 4 * GRANULE;
    let session = start(&server, size, &metadata("granular", "private"));

    let first = put_chunk(&session, 0, size, &data[..chunk as usize]).unwrap();
    assert_eq!(first.status, 308);
    assert_eq!(first.header("range"), Some("bytes=0-999999"));
    assert_eq!(server.videos()[0].received, 1_000_000);
    // Going on from what was sent rather than from what was confirmed is refused.
    refused(&server, 400, "badRequest", true, || {
        put_chunk(
            &session,
            chunk,
            size,
            &data[chunk as usize..2 * chunk as usize],
        )
        .unwrap()
    });
    assert_eq!(held(&query_status(&session, size)), 1_000_000);
    // The file holds exactly what was persisted, and the hash follows it.
    let record = server.videos()[0].clone();
    assert_eq!(std::fs::metadata(&record.path).unwrap().len(), 1_000_000);
    assert_eq!(record.blake3, hash(&data[..1_000_000]));

    // Resuming from the Range, the final chunk is kept whole.
    let done = upload_all_from(&session, &data, 1_000_000, chunk);
    assert_eq!(done.status, 201, "{}", server.describe());
    let record = server.videos()[0].clone();
    assert_eq!(record.blake3, hash(&data));
    assert_eq!(upq_tests::hash_file(&record.path), hash(&data));
    assert_eq!(server.violations().len(), 1);

    // PersistPartially keeps only the start of the next chunk.
    let plain = server_with(YouTubeOptions::default());
    let session = start(&plain, size, &metadata("partial", "private"));
    plain.inject(Fault::PersistPartially(100_000));
    let cut = put_chunk(&session, 0, size, &data[..chunk as usize]).unwrap();
    assert_eq!(cut.header("range"), Some("bytes=0-99999"));
    assert_eq!(plain.videos()[0].blake3, hash(&data[..100_000]));
    let done = upload_all_from(&session, &data, 100_000, chunk);
    assert_eq!(done.status, 201, "{}", plain.describe());
    assert_eq!(plain.videos()[0].blake3, hash(&data));
    assert!(plain.violations().is_empty(), "{:#?}", plain.violations());
}

/// Uploads `data` from `from` in chunks of `chunk` bytes, following each `Range`.
fn upload_all_from(session: &str, data: &[u8], from: u64, chunk: u64) -> http::Response {
    let size = data.len() as u64;
    let mut first = from;
    loop {
        let end = (first + chunk).min(size);
        let response =
            put_chunk(session, first, size, &data[first as usize..end as usize]).unwrap();
        if response.status != 308 {
            return response;
        }
        assert!(held(&response) > first, "no progress at {first}");
        first = held(&response);
    }
}

#[test]
fn dropped_connections_keep_what_was_persisted() {
    let server = server();
    let size = 6 * GRANULE + 5;
    let data = video(size);
    let chunk = 2 * GRANULE as usize;

    // The chunk is stored, then the connection closes without an answer.
    let session = start(&server, size, &metadata("dropped", "private"));
    server.inject(Fault::DropAfterStoring);
    assert!(put_chunk(&session, 0, size, &data[..chunk]).is_err());
    assert_eq!(held(&query_status(&session, size)), chunk as u64);
    // The chunk is stored, then answered 503: the client must ask what was kept.
    server.inject(Fault::FailAfterStoring(503));
    let lost = put_chunk(&session, chunk as u64, size, &data[chunk..2 * chunk]).unwrap();
    assert_eq!(lost.status, 503);
    assert_eq!(held(&query_status(&session, size)), 2 * chunk as u64);
    let done = upload_all_from(&session, &data, 2 * chunk as u64, chunk as u64);
    assert_eq!(done.status, 201);
    assert_eq!(server.videos()[0].blake3, hash(&data));

    // The client goes away mid-body: what arrived is kept.
    let session = start(&server, size, &metadata("vanished", "private"));
    put_and_vanish(&session, size, &data, 4 * GRANULE, 600_000);
    wait_until(deadline(), "the first 600000 bytes persisted", || {
        server.videos()[1].received == 600_000
    });
    assert_eq!(held(&query_status(&session, size)), 600_000);
    assert_eq!(server.videos()[1].blake3, hash(&data[..600_000]));
    let rest = put_chunk(&session, 600_000, size, &data[600_000..]).unwrap();
    assert_eq!(rest.status, 201, "{}", server.describe());
    assert_eq!(server.videos()[1].blake3, hash(&data));
    assert!(server.violations().is_empty(), "{:#?}", server.violations());

    // With a persistence granularity, a broken body keeps whole granules only.
    let coarse = server_with(YouTubeOptions {
        persist_granularity: Some(GRANULE),
        ..YouTubeOptions::default()
    });
    let session = start(&coarse, size, &metadata("coarse", "private"));
    put_and_vanish(&session, size, &data, 4 * GRANULE, 600_000);
    wait_until(deadline(), "two granules persisted", || {
        coarse.videos()[0].received == 2 * GRANULE
    });
    assert_eq!(
        coarse.videos()[0].blake3,
        hash(&data[..2 * GRANULE as usize])
    );
    assert_eq!(
        std::fs::metadata(&coarse.videos()[0].path).unwrap().len(),
        2 * GRANULE
    );
    assert!(coarse.violations().is_empty(), "{:#?}", coarse.violations());
}

#[test]
fn sessions_expire() {
    let server = server_with(YouTubeOptions {
        session_lifetime: HOUR,
        ..YouTubeOptions::default()
    });
    let size = 2 * GRANULE;
    let data = video(size);
    let session = start(&server, size, &metadata("expiring", "private"));
    assert_eq!(
        put_chunk(&session, 0, size, &data[..GRANULE as usize])
            .unwrap()
            .status,
        308
    );
    server.advance(HOUR);
    assert!(!server.videos()[0].expired);
    server.advance(Duration::from_secs(1));
    assert!(server.videos()[0].expired);
    // The first 404 tells the client; asking again is its mistake.
    refused(&server, 404, "notFound", false, || {
        put_chunk(&session, GRANULE, size, &data[GRANULE as usize..]).unwrap()
    });
    refused(&server, 404, "notFound", true, || {
        query_status(&session, size)
    });
    assert_eq!(server.videos()[0].received, GRANULE);

    // A fault expires the session the next PUT names.
    let other = start(&server, size, &metadata("expired early", "private"));
    server.inject(Fault::ExpireSession);
    refused(&server, 404, "notFound", false, || {
        query_status(&other, size)
    });
    assert!(server.videos()[1].expired);

    // A made-up session is not found.
    let made_up = session.replace("upload_id=", "upload_id=x");
    refused(&server, 404, "notFound", true, || {
        query_status(&made_up, size)
    });
}

#[test]
fn quota_runs_out_and_resets_at_midnight_pacific() {
    // The older table: videos.insert costs 1600 of the 10,000 units.
    let server = server_with(YouTubeOptions {
        insert_quota: InsertQuota::Units(1600),
        ..YouTubeOptions::default()
    });
    // 01:00 PST: the quota day ends in 23 hours.
    assert_eq!(server.next_quota_reset(), 23 * HOUR);
    let body = metadata("quota", "private");
    for _ in 0..6 {
        assert_eq!(start_with(&server, START_QUERY, 1000, &body).status, 200);
    }
    assert_eq!(server.quota_used(), 9600);
    let over = refused(&server, 403, "quotaExceeded", false, || {
        start_with(&server, START_QUERY, 1000, &body)
    });
    assert_eq!(json(&over)["error"]["errors"][0]["domain"], "youtube.quota");
    // Asking again the same quota day is the client's mistake.
    refused(&server, 403, "quotaExceeded", true, || {
        start_with(&server, START_QUERY, 1000, &body)
    });
    assert_eq!(server.quota_used(), 9600, "a quota refusal costs nothing");
    assert_eq!(server.quota_refusals(), 2);
    // Smaller calls still fit.
    assert_eq!(list(&server, &server.token(), "status", "x").status, 200);
    assert_eq!(server.quota_used(), 9601);

    server.advance(server.next_quota_reset() - server.now() - Duration::from_secs(1));
    refused(&server, 403, "quotaExceeded", true, || {
        start_with(&server, START_QUERY, 1000, &body)
    });
    server.advance_to_quota_reset();
    assert_eq!(server.quota_used(), 0);
    assert_eq!(start_with(&server, START_QUERY, 1000, &body).status, 200);
    assert_eq!(server.next_quota_reset(), server.now() + DAY);

    // The current table: 100 inserts a day in their own bucket, 10,000 units for the rest.
    let current = server_with(YouTubeOptions::default());
    current.set_inserts_used(100);
    refused(&current, 403, "quotaExceeded", false, || {
        start_with(&current, START_QUERY, 1000, &body)
    });
    current.set_quota_used(9_999);
    assert_eq!(list(&current, &current.token(), "status", "x").status, 200);
    refused(&current, 403, "quotaExceeded", false, || {
        list(&current, &current.token(), "status", "x")
    });
}

#[test]
fn the_channel_upload_limit() {
    let server = server_with(YouTubeOptions {
        upload_limit: 2,
        ..YouTubeOptions::default()
    });
    let body = metadata("limit", "private");
    for _ in 0..2 {
        assert_eq!(start_with(&server, START_QUERY, 1000, &body).status, 200);
    }
    refused(&server, 400, "uploadLimitExceeded", false, || {
        start_with(&server, START_QUERY, 1000, &body)
    });
    refused(&server, 400, "uploadLimitExceeded", true, || {
        start_with(&server, START_QUERY, 1000, &body)
    });
    server.advance(DAY);
    assert_eq!(start_with(&server, START_QUERY, 1000, &body).status, 200);
}

#[test]
fn processing_progress_then_processed() {
    let server = server_with(YouTubeOptions {
        processing_polls: 3,
        ..YouTubeOptions::default()
    });
    let token = server.token();
    let data = video(3000);
    let id = upload_video(&server, &data, &metadata("processing", "private"));
    let mut processed = Vec::new();
    for _ in 0..3 {
        let response = list(&server, &token, "processingDetails,status", &id);
        let body = json(&response);
        assert_eq!(response.status, 200, "{body}");
        let item = &body["items"][0];
        assert_eq!(item["processingDetails"]["processingStatus"], "processing");
        let progress = &item["processingDetails"]["processingProgress"];
        assert_eq!(progress["partsTotal"], "1000");
        assert!(progress["timeLeftMs"].is_string());
        processed.push(
            progress["partsProcessed"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
        assert_eq!(item["status"]["uploadStatus"], "uploaded");
        assert_eq!(server.video(&id).unwrap().upload_status, "uploaded");
    }
    assert!(processed.windows(2).all(|w| w[0] < w[1]), "{processed:?}");
    let done = json(&list(&server, &token, "processingDetails,status", &id));
    assert_eq!(
        done["items"][0]["processingDetails"]["processingStatus"],
        "succeeded"
    );
    assert_eq!(done["items"][0]["status"]["uploadStatus"], "processed");
    assert_eq!(done["kind"], "youtube#videoListResponse");
    assert_eq!(server.video(&id).unwrap().upload_status, "processed");
    assert_eq!(server.quota_used(), 4);

    // Failed and rejected outcomes.
    server.inject(Fault::FailProcessing("codec".to_string()));
    let failed = upload_video(&server, &data, &metadata("fails", "private"));
    server.inject(Fault::RejectProcessing("duplicate".to_string()));
    let rejected = upload_video(&server, &data, &metadata("rejected", "private"));
    for _ in 0..4 {
        list(&server, &token, "status", &format!("{failed},{rejected}"));
    }
    let both = json(&list(
        &server,
        &token,
        "processingDetails,status",
        &format!("{failed},{rejected}"),
    ));
    let items = both["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["status"]["uploadStatus"], "failed");
    assert_eq!(items[0]["status"]["failureReason"], "codec");
    assert_eq!(items[0]["processingDetails"]["processingStatus"], "failed");
    assert_eq!(items[1]["status"]["uploadStatus"], "rejected");
    assert_eq!(items[1]["status"]["rejectionReason"], "duplicate");
    assert_eq!(server.video(&rejected).unwrap().upload_status, "rejected");

    // Unknown ids are left out; the filters and the scope are checked.
    let unknown = json(&list(&server, &token, "status", "nonexistent"));
    assert_eq!(unknown["items"], json!([]));
    refused(&server, 400, "missingRequiredParameter", true, || {
        let url = format!("{}?part=status", server.url(VIDEOS_PATH));
        http::request(
            "GET",
            &url,
            &[("Authorization", &format!("Bearer {token}"))],
            &[],
        )
        .unwrap()
    });
    refused(&server, 400, "incompatibleParameters", true, || {
        let url = format!(
            "{}?part=status&id={id}&chart=mostPopular",
            server.url(VIDEOS_PATH)
        );
        http::request(
            "GET",
            &url,
            &[("Authorization", &format!("Bearer {token}"))],
            &[],
        )
        .unwrap()
    });
    refused(&server, 400, "unknownPart", true, || {
        list(&server, &token, "status,colour", &id)
    });
    server.set_scopes(&[SCOPE_UPLOAD]);
    refused(&server, 403, "insufficientPermissions", true, || {
        list(&server, &token, "status", &id)
    });
}

#[test]
fn update_and_delete_need_more_than_the_upload_scope() {
    let server = server();
    server.set_scopes(&[SCOPE_UPLOAD]);
    let token = server.token();
    let id = upload_video(&server, &video(2000), &metadata("scoped", "private"));
    let to_unlisted = json!({"id": id, "status": {"privacyStatus": "unlisted"}});
    refused(&server, 403, "insufficientPermissions", true, || {
        update(&server, &token, "status", &to_unlisted)
    });
    refused(&server, 403, "insufficientPermissions", true, || {
        delete(&server, &token, &id)
    });

    server.set_scopes(&[SCOPE_UPLOAD, SCOPE_FORCE_SSL]);
    server.advance(Duration::from_secs(60));
    let updated = update(&server, &token, "status", &to_unlisted);
    let body = json(&updated);
    assert_eq!(updated.status, 200, "{body}");
    assert_eq!(body["status"]["privacyStatus"], "unlisted");
    assert_eq!(body["status"]["uploadStatus"], "uploaded");
    let record = server.video(&id).unwrap();
    assert_eq!(
        record.privacy_changes,
        [
            (Duration::ZERO, "private".to_string()),
            (Duration::from_secs(60), "unlisted".to_string())
        ]
    );
    assert_eq!(server.quota_used(), 50);

    // A snippet update must carry the category; an unknown video is not found.
    refused(&server, 400, "invalidCategoryId", true, || {
        update(
            &server,
            &token,
            "snippet",
            &json!({"id": id, "snippet": {"title": "new"}}),
        )
    });
    let retitled = update(
        &server,
        &token,
        "snippet",
        &json!({"id": id, "snippet": {"title": "new", "categoryId": "22"}}),
    );
    assert_eq!(json(&retitled)["snippet"]["title"], "new");
    refused(&server, 404, "videoNotFound", true, || {
        update(
            &server,
            &token,
            "status",
            &json!({"id": "nonexistent", "status": {"privacyStatus": "public"}}),
        )
    });
    refused(&server, 400, "required", true, || {
        update(&server, &token, "status", &json!({"status": {}}))
    });

    let gone = delete(&server, &token, &id);
    assert_eq!(gone.status, 204, "{}", server.describe());
    let record = server.video(&id).unwrap();
    assert!(record.deleted);
    assert_eq!(record.upload_status, "deleted");
    assert_eq!(
        json(&list(&server, &token, "status", &id))["items"],
        json!([])
    );
    refused(&server, 404, "videoNotFound", true, || {
        delete(&server, &token, &id)
    });
    refused(&server, 400, "missingRequiredParameter", true, || {
        let url = server.url(VIDEOS_PATH);
        http::request(
            "DELETE",
            &url,
            &[("Authorization", &format!("Bearer {token}"))],
            &[],
        )
        .unwrap()
    });
    // 50 + 50 (retitle) + 50 (delete) + 1 (list) + 5 refusals after the scope check.
    assert_eq!(server.quota_used(), 156);
}

#[test]
fn publish_at_makes_a_private_video_public() {
    let server = server();
    let token = server.token();
    let at = server.now_utc() + chrono::Duration::hours(2);
    let text = at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let scheduled = json!({
        "snippet": {"title": "scheduled"},
        "status": {"privacyStatus": "private", "publishAt": text},
    });
    let id = upload_video(&server, &video(1000), &scheduled);
    assert_eq!(
        server.video(&id).unwrap().status["publishAt"],
        text.as_str()
    );
    server.advance(HOUR);
    let record = server.video(&id).unwrap();
    assert_eq!(record.status["privacyStatus"], "private");
    assert!(!record.published_by_publish_at);
    server.advance(HOUR + Duration::from_secs(1));
    let record = server.video(&id).unwrap();
    assert_eq!(record.status["privacyStatus"], "public");
    assert!(record.published_by_publish_at);
    assert_eq!(
        record.privacy_changes.last().unwrap(),
        &(2 * HOUR, "public".to_string())
    );
    let shown = json(&list(&server, &token, "status", &id));
    assert_eq!(shown["items"][0]["status"]["privacyStatus"], "public");
    assert!(shown["items"][0]["status"].get("publishAt").is_none());

    // Once published, a video cannot be scheduled again; publishAt needs "private" with it.
    let later =
        (server.now_utc() + chrono::Duration::hours(5)).to_rfc3339_opts(SecondsFormat::Secs, true);
    refused(&server, 400, "invalidPublishAt", true, || {
        update(
            &server,
            &token,
            "status",
            &json!({"id": id, "status": {"privacyStatus": "private", "publishAt": later}}),
        )
    });
    let other = upload_video(&server, &video(1000), &metadata("later", "private"));
    refused(&server, 400, "invalidPublishAt", true, || {
        update(
            &server,
            &token,
            "status",
            &json!({"id": other, "status": {"publishAt": later}}),
        )
    });
    // Scheduled by an update; a past publishAt publishes at once.
    let scheduled = update(
        &server,
        &token,
        "status",
        &json!({"id": other, "status": {"privacyStatus": "private", "publishAt": later}}),
    );
    assert_eq!(scheduled.status, 200, "{}", json(&scheduled));
    let past =
        (server.now_utc() - chrono::Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let at_once = upload_video(
        &server,
        &video(1000),
        &json!({"snippet": {"title": "past"},
                "status": {"privacyStatus": "private", "publishAt": past}}),
    );
    let record = server.video(&at_once).unwrap();
    assert_eq!(record.status["privacyStatus"], "public");
    assert!(record.published_by_publish_at);
    server.advance(5 * HOUR);
    assert!(server.video(&other).unwrap().published_by_publish_at);
}

#[test]
fn injected_answers_are_one_shot_and_not_violations() {
    let server = server();
    let token = server.token();
    let body = metadata("faults", "private");
    server.inject(Fault::respond("start", 503, "backendError", "injected"));
    let injected = start_with(&server, START_QUERY, 1000, &body);
    assert_eq!(injected.status, 503);
    assert_eq!(reason(&injected), "backendError");
    let session = start(&server, 1000, &body);
    server.inject(Fault::respond(
        "status_query",
        500,
        "backendError",
        "injected",
    ));
    assert_eq!(query_status(&session, 1000).status, 500);
    server.inject(Fault::respond("put", 502, "backendError", "injected"));
    let data = video(1000);
    assert_eq!(put_chunk(&session, 0, 1000, &data).unwrap().status, 502);
    assert_eq!(server.videos()[0].received, 0);
    let done = upload_all(&session, &data, 1000);
    let id = json(&done)["id"].as_str().unwrap().to_string();
    server.inject(Fault::respond("list", 500, "backendError", "injected"));
    assert_eq!(list(&server, &token, "status", &id).status, 500);
    assert_eq!(list(&server, &token, "status", &id).status, 200);
    assert!(server.pending_faults().is_empty());
    assert!(server.violations().is_empty(), "{:#?}", server.violations());
    assert_eq!(server.requests().iter().filter(|r| r.injected).count(), 4);
    assert!(server.describe().contains("(injected)"));
}

// Google's desktop sign-in.

fn signed_in_server(app: GoogleApp) -> YouTubeServer {
    server_with(YouTubeOptions {
        oauth: Some(app),
        ..YouTubeOptions::default()
    })
}

/// A code verifier (64 characters of the unreserved set), distinct per `tag`.
fn verifier(tag: &str) -> String {
    format!("{tag}-{}", "Verifier0123456789._~".repeat(4))[..64].to_string()
}

/// RFC 7636 S256.
fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn hex_challenge(verifier: &str) -> String {
    Sha256::digest(verifier.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The query of a valid authorization request, asking for offline access.
fn auth_params<'a>(scope: &'a str, state: &'a str, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("client_id", "upq-test-client.apps.googleusercontent.com"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", scope),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("access_type", "offline"),
        ("prompt", "consent"),
    ]
}

fn without<'a>(params: &[(&'a str, &'a str)], name: &str) -> Vec<(&'a str, &'a str)> {
    params.iter().filter(|(n, _)| *n != name).cloned().collect()
}

fn with<'a>(
    params: &[(&'a str, &'a str)],
    name: &'a str,
    value: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut params = without(params, name);
    params.push((name, value));
    params
}

fn scopes() -> String {
    format!("{SCOPE_UPLOAD} {SCOPE_YOUTUBE}")
}

/// Signs in up to the code with these parameters; returns the code.
fn code_with(server: &YouTubeServer, params: &[(&str, &str)]) -> String {
    let response = authorize(server, params);
    let pairs = redirect_params(&response, REDIRECT);
    param(&pairs, "code").expect("a code")
}

fn exchange(server: &YouTubeServer, code: &str, verifier: &str) -> http::Response {
    post_form(
        &server.token_url(),
        &[
            ("client_id", "upq-test-client.apps.googleusercontent.com"),
            ("client_secret", "GOCSPX-upq-test-client-secret"),
            ("code", code),
            ("code_verifier", verifier),
            ("grant_type", "authorization_code"),
            ("redirect_uri", REDIRECT),
        ],
    )
}

fn refresh(server: &YouTubeServer, refresh_token: &str) -> http::Response {
    post_form(
        &server.token_url(),
        &[
            ("client_id", "upq-test-client.apps.googleusercontent.com"),
            ("client_secret", "GOCSPX-upq-test-client-secret"),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
}

/// Asserts an OAuth refusal: status, `error`, and one more violation (or not).
fn oauth_refused(
    server: &YouTubeServer,
    status: u16,
    error: &str,
    counted: bool,
    send: impl FnOnce() -> http::Response,
) -> Value {
    let before = server.violations().len();
    let response = send();
    let body = json(&response);
    assert_eq!(response.status, status, "{body}\n{}", server.describe());
    assert_eq!(oauth_error(&response), error, "{body}");
    assert!(body["error_description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    assert_eq!(
        server.violations().len(),
        before + usize::from(counted),
        "{error}: {:#?}",
        server.violations()
    );
    body
}

fn token_of(body: &Value, key: &str) -> String {
    body[key].as_str().expect(key).to_string()
}

#[test]
fn google_sign_in_works_end_to_end() {
    let server = signed_in_server(GoogleApp::default());
    let verifier = verifier("good");
    let challenge = challenge(&verifier);
    let scope = scopes();
    // A state with characters the redirect must escape comes back intact.
    let state = "st@te&x=1 2/3";
    let response = authorize(&server, &auth_params(&scope, state, &challenge));
    let location = response.header("location").unwrap_or("").to_string();
    let pairs = redirect_params(&response, REDIRECT);
    assert_eq!(param(&pairs, "state").as_deref(), Some(state));
    assert_eq!(param(&pairs, "scope").as_deref(), Some(scope.as_str()));
    let code = param(&pairs, "code").unwrap();
    assert!(code.starts_with("4/"), "{code}");
    assert!(
        !location.contains(&code),
        "the code's / is escaped: {location}"
    );

    let response = exchange(&server, &code, &verifier);
    let body = json(&response);
    assert_eq!(response.status, 200, "{body}");
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let access = token_of(&body, "access_token");
    let refresh_token = token_of(&body, "refresh_token");
    assert!(access.starts_with("ya29."), "{access}");
    assert!(refresh_token.starts_with("1//"), "{refresh_token}");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], scope.as_str());

    // The issued token works on the Data API with the granted scopes.
    let size = "1000";
    let started = start_raw(
        &server,
        START_QUERY,
        &start_headers(size, &[]),
        Some(&access),
        metadata("signed in", "private").to_string().as_bytes(),
    );
    assert_eq!(started.status, 200, "{}", server.describe());

    // Refreshing gives a new access token and no new refresh token; the same refresh token
    // keeps working.
    for _ in 0..2 {
        let response = refresh(&server, &refresh_token);
        let body = json(&response);
        assert_eq!(response.status, 200, "{body}");
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert_ne!(token_of(&body, "access_token"), access);
        assert_eq!(body["scope"], scope.as_str());
    }
    assert_eq!(server.refresh_count(), 2);
    assert_eq!(server.valid_access_tokens(), 3);
    assert_eq!(
        server.current_refresh_token().as_deref(),
        Some(refresh_token.as_str())
    );

    // Expiry on the virtual clock is the client's to mind; an early expiry by the test is not.
    server.expire_access_tokens();
    refused(&server, 401, "authError", false, || {
        list(&server, &access, "status", "x")
    });
    let fresh = token_of(&json(&refresh(&server, &refresh_token)), "access_token");
    assert_eq!(list(&server, &fresh, "status", "x").status, 200);
    server.advance(Duration::from_secs(3599));
    refused(&server, 401, "authError", true, || {
        list(&server, &fresh, "status", "x")
    });

    // Revoking the refresh token ends the grant.
    let revoked = post_form(&server.revoke_url(), &[("token", &refresh_token)]);
    assert_eq!(revoked.status, 200);
    assert_eq!(server.revocations(), 1);
    oauth_refused(&server, 400, "invalid_grant", true, || {
        refresh(&server, &refresh_token)
    });
    oauth_refused(&server, 400, "invalid_token", true, || {
        post_form(&server.revoke_url(), &[("token", &refresh_token)])
    });
    assert_eq!(server.current_refresh_token(), None);
    let requests = server.token_requests();
    assert_eq!(requests[0].grant_type, "authorization_code");
    assert!(requests[0].refresh_token_issued);
    assert!(requests[1..4]
        .iter()
        .all(|r| r.outcome == "ok" && !r.refresh_token_issued));
    assert_eq!(requests.last().unwrap().outcome, "invalid_grant");
}

#[test]
fn authorization_refusals() {
    let server = signed_in_server(GoogleApp::default());
    let verifier = verifier("refusals");
    let good = challenge(&verifier);
    let hex = hex_challenge(&verifier);
    let scope = scopes();
    let params = auth_params(&scope, "s", &good);
    let page = |params: &[(&str, &str)], status: u16, error: &str| {
        let before = server.violations().len();
        let response = authorize(&server, params);
        let text = String::from_utf8_lossy(&response.body).to_string();
        assert_eq!(response.status, status, "{text}");
        assert!(text.contains(error), "{error}: {text}");
        assert_eq!(response.header("location"), None);
        assert_eq!(server.violations().len(), before + 1, "{error}");
        text
    };

    let text = page(
        &with(&params, "code_challenge", &hex),
        400,
        "invalid_request",
    );
    assert!(text.contains("hex"), "{text}");
    page(
        &with(&params, "code_challenge_method", "plain"),
        400,
        "invalid_request",
    );
    page(
        &without(&params, "code_challenge_method"),
        400,
        "invalid_request",
    );
    page(&without(&params, "code_challenge"), 400, "invalid_request");
    page(&without(&params, "state"), 400, "invalid_request");
    page(
        &with(&params, "client_id", "someone-else"),
        401,
        "invalid_client",
    );
    page(
        &with(&params, "redirect_uri", "http://example.com:80/cb"),
        400,
        "redirect_uri_mismatch",
    );
    page(
        &with(&params, "redirect_uri", "https://127.0.0.1:8080/cb"),
        400,
        "redirect_uri_mismatch",
    );
    page(
        &with(&params, "redirect_uri", "http://127.0.0.1/cb"),
        400,
        "redirect_uri_mismatch",
    );
    page(
        &with(&params, "redirect_uri", "urn:ietf:wg:oauth:2.0:oob"),
        400,
        "invalid_request",
    );
    let commas = format!("{SCOPE_UPLOAD},{SCOPE_YOUTUBE}");
    page(&with(&params, "scope", &commas), 400, "invalid_scope");
    page(
        &with(&params, "response_type", "token"),
        400,
        "unsupported_response_type",
    );
    page(
        &with(&params, "access_type", "forever"),
        400,
        "invalid_request",
    );
    page(
        &with(&params, "prompt", "none consent"),
        400,
        "invalid_request",
    );
    page(&with(&params, "colour", "red"), 400, "invalid_request");
    assert!(server.authorizations().is_empty());

    // Any loopback port and path is fine.
    let elsewhere = "http://localhost:61000/other/path";
    let response = authorize(&server, &with(&params, "redirect_uri", elsewhere));
    assert_eq!(
        param(&redirect_params(&response, elsewhere), "state").as_deref(),
        Some("s")
    );

    // A refused consent redirects with access_denied: not the client's doing.
    server.set_consent(false);
    let before = server.violations().len();
    let denied = authorize(&server, &params);
    let pairs = redirect_params(&denied, REDIRECT);
    assert_eq!(param(&pairs, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&pairs, "state").as_deref(), Some("s"));
    assert_eq!(server.violations().len(), before);
    assert_eq!(
        server.authorizations().last().unwrap().outcome,
        "access_denied"
    );
}

#[test]
fn token_endpoint_refusals() {
    let server = signed_in_server(GoogleApp::default());
    let other_verifier = verifier("another");
    let verifier = verifier("token");
    let challenge = challenge(&verifier);
    let scope = scopes();
    let params = auth_params(&scope, "s", &challenge);

    // A code is good once.
    let code = code_with(&server, &params);
    assert_eq!(exchange(&server, &code, &verifier).status, 200);
    oauth_refused(&server, 400, "invalid_grant", true, || {
        exchange(&server, &code, &verifier)
    });
    // The wrong verifier spends the code.
    let code = code_with(&server, &params);
    let body = oauth_refused(&server, 400, "invalid_grant", true, || {
        exchange(&server, &code, &other_verifier)
    });
    assert_eq!(body["error_description"], "Invalid code verifier.");
    oauth_refused(&server, 400, "invalid_grant", true, || {
        exchange(&server, &code, &verifier)
    });
    // The redirect_uri must be the one the code was asked with.
    let code = code_with(&server, &params);
    oauth_refused(&server, 400, "redirect_uri_mismatch", true, || {
        post_form(
            &server.token_url(),
            &[
                ("client_id", "upq-test-client.apps.googleusercontent.com"),
                ("client_secret", "GOCSPX-upq-test-client-secret"),
                ("code", &code),
                ("code_verifier", &verifier),
                ("grant_type", "authorization_code"),
                ("redirect_uri", "http://127.0.0.1:48124/callback"),
            ],
        )
    });
    // Codes expire.
    let code = code_with(&server, &params);
    server.advance(Duration::from_secs(601));
    oauth_refused(&server, 400, "invalid_grant", true, || {
        exchange(&server, &code, &verifier)
    });
    // Client authentication.
    let code = code_with(&server, &params);
    let base = [
        ("client_id", "upq-test-client.apps.googleusercontent.com"),
        ("client_secret", "GOCSPX-upq-test-client-secret"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("grant_type", "authorization_code"),
        ("redirect_uri", REDIRECT),
    ];
    oauth_refused(&server, 401, "invalid_client", true, || {
        post_form(&server.token_url(), &with(&base, "client_secret", "wrong"))
    });
    oauth_refused(&server, 400, "invalid_request", true, || {
        post_form(&server.token_url(), &without(&base, "client_secret"))
    });
    oauth_refused(&server, 401, "invalid_client", true, || {
        post_form(
            &server.token_url(),
            &with(&base, "client_id", "someone-else"),
        )
    });
    oauth_refused(&server, 400, "unsupported_grant_type", true, || {
        post_form(&server.token_url(), &with(&base, "grant_type", "password"))
    });
    oauth_refused(&server, 400, "invalid_request", true, || {
        post_form(&server.token_url(), &without(&base, "grant_type"))
    });
    oauth_refused(&server, 400, "invalid_request", true, || {
        http::request(
            "POST",
            &server.token_url(),
            &[("Content-Type", "application/json")],
            b"{}",
        )
        .unwrap()
    });
    // The code survived the refusals that failed client authentication.
    assert_eq!(exchange(&server, &code, &verifier).status, 200);
    oauth_refused(&server, 400, "invalid_grant", true, || {
        refresh(&server, "1//0not-issued")
    });
    // An injected answer is not a violation.
    server.inject(Fault::respond(
        "token",
        503,
        "temporarily_unavailable",
        "injected",
    ));
    oauth_refused(&server, 503, "temporarily_unavailable", false, || {
        refresh(&server, "1//0whatever")
    });
}

#[test]
fn a_refresh_token_needs_offline_access() {
    let server = signed_in_server(GoogleApp::default());
    let verifier = verifier("offline");
    let challenge = challenge(&verifier);
    let scope = scopes();
    let offline = auth_params(&scope, "s", &challenge);
    let online = without(&without(&offline, "access_type"), "prompt");
    let issued = |params: &[(&str, &str)]| {
        let code = code_with(&server, params);
        let body = json(&exchange(&server, &code, &verifier));
        assert!(body["access_token"].is_string(), "{body}");
        body.get("refresh_token").is_some()
    };
    assert!(!issued(&online), "no access_type=offline: no refresh token");
    assert!(!issued(&with(&online, "access_type", "online")));
    assert!(
        issued(&without(&offline, "prompt")),
        "the first offline consent gives one"
    );
    assert!(
        !issued(&without(&offline, "prompt")),
        "a second consent without prompt=consent gives none"
    );
    assert!(issued(&offline), "prompt=consent asks again and gives one");
    assert!(server.violations().is_empty(), "{:#?}", server.violations());
    let records = server.authorizations();
    assert_eq!(
        records.iter().map(|r| r.offline).collect::<Vec<_>>(),
        [false, false, true, false, true]
    );

    // Set so, every exchange gives one.
    let lenient = signed_in_server(GoogleApp {
        offline_needs_access_type: false,
        ..GoogleApp::default()
    });
    let code = code_with(&lenient, &online);
    let body = json(&exchange(&lenient, &code, &verifier));
    assert!(body["refresh_token"].is_string(), "{body}");

    // A "Testing" app's refresh tokens expire.
    let testing = signed_in_server(GoogleApp {
        refresh_ttl: Some(7 * DAY),
        ..GoogleApp::default()
    });
    let code = code_with(&testing, &offline);
    let body = json(&exchange(&testing, &code, &verifier));
    assert_eq!(body["refresh_token_expires_in"], 7 * 24 * 3600);
    let refresh_token = token_of(&body, "refresh_token");
    testing.advance(7 * DAY);
    oauth_refused(&testing, 400, "invalid_grant", true, || {
        refresh(&testing, &refresh_token)
    });
}

#[test]
fn granted_scopes_and_grants_the_user_ends() {
    let server = signed_in_server(GoogleApp::default());
    let verifier = verifier("scopes");
    let challenge = challenge(&verifier);
    let scope = scopes();
    server.set_granted_scopes(Some(vec![SCOPE_UPLOAD.to_string()]));
    let code = code_with(&server, &auth_params(&scope, "s", &challenge));
    let body = json(&exchange(&server, &code, &verifier));
    assert_eq!(body["scope"], SCOPE_UPLOAD);
    let access = token_of(&body, "access_token");
    let refresh_token = token_of(&body, "refresh_token");
    let id = upload_video_with(&server, &access);
    refused(&server, 403, "insufficientPermissions", true, || {
        update(
            &server,
            &access,
            "status",
            &json!({"id": id, "status": {"privacyStatus": "public"}}),
        )
    });

    // The user removes the app's access: refusals are not the client's doing.
    server.revoke_grants();
    refused(&server, 401, "authError", false, || {
        list(&server, &access, "status", &id)
    });
    oauth_refused(&server, 400, "invalid_grant", false, || {
        refresh(&server, &refresh_token)
    });
    assert_eq!(server.valid_access_tokens(), 0);
}

/// Uploads a small video with this access token; returns its id.
fn upload_video_with(server: &YouTubeServer, access: &str) -> String {
    let data = video(1000);
    let response = start_raw(
        server,
        START_QUERY,
        &start_headers("1000", &[]),
        Some(access),
        metadata("granted", "private").to_string().as_bytes(),
    );
    assert_eq!(response.status, 200, "{}", server.describe());
    let session = response.header("location").unwrap().to_string();
    let done = upload_all(&session, &data, 1000);
    json(&done)["id"].as_str().unwrap().to_string()
}
