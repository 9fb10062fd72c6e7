//! The TikTok Content Posting API stand-in on its own, driven by a plain HTTP client: the
//! documented chunk example, every plan rule, auth and scopes, headers, chunk order, URL
//! expiry on the virtual clock, rate limits, pending shares, status sequences and faults.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use upq_tests::http;
use upq_tests::tiktok::client::{
    call, call_raw, code, direct_body, fetch_status, init_direct, init_inbox, json, put_chunk,
    source_info,
};
use upq_tests::tiktok::{
    CreatorInfo, Fault, Mode, RateLimits, TikTokOptions, TikTokServer, CREATOR_INFO_PATH,
    DIRECT_INIT_PATH, INBOX_INIT_PATH, JSON_CONTENT_TYPE, STATUS_PATH,
};

/// Deterministic bytes for a video of `size` bytes.
fn video(size: u64) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
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

/// Options with rate limits out of the way, for tests about something else.
fn relaxed() -> TikTokOptions {
    TikTokOptions {
        limits: RateLimits {
            creator_info: 1000,
            init: 1000,
            status: 1000,
        },
        ..TikTokOptions::default()
    }
}

fn status_of(server: &TikTokServer, publish_id: &str) -> Value {
    let response = fetch_status(server, publish_id);
    let value = json(&response);
    assert_eq!(response.status, 200, "{value}");
    value["data"].clone()
}

#[test]
fn documented_example_goes_up_in_five_chunks_and_publishes() {
    let server = TikTokServer::start(TikTokOptions::default());
    let size = 50_000_123u64;
    let data = video(size);
    let (publish_id, upload_url) = init_direct(&server, size, 10_000_000);
    assert!(publish_id.len() <= 64 && upload_url.len() <= 256);
    assert!(upload_url.starts_with(&format!("{}/upload/video/?upload_id=", server.api_base())));

    // Before any byte: still waiting for the upload.
    let early = status_of(&server, &publish_id);
    assert_eq!(early["status"], "PROCESSING_UPLOAD");
    assert_eq!(early["uploaded_bytes"], 0);

    let mut answers = Vec::new();
    for index in 0..5u64 {
        let first = index * 10_000_000;
        let end = if index == 4 { size } else { first + 10_000_000 };
        let response = put_chunk(
            &upload_url,
            "video/mp4",
            first,
            size,
            &data[first as usize..end as usize],
        )
        .unwrap();
        assert_eq!(
            response.header("content-range"),
            Some(format!("bytes 0-{}/{size}", end - 1).as_str())
        );
        answers.push(response.status);
    }
    assert_eq!(answers, [206, 206, 206, 206, 201], "{}", server.describe());

    let upload = server.upload(&publish_id).unwrap();
    assert_eq!(upload.mode, Mode::Direct);
    assert!(upload.complete);
    assert_eq!(upload.received, size);
    assert_eq!(upload.total_chunk_count, 5);
    assert_eq!(
        upload.chunks,
        [
            (0, 9_999_999, 206),
            (10_000_000, 19_999_999, 206),
            (20_000_000, 29_999_999, 206),
            (30_000_000, 39_999_999, 206),
            (40_000_000, 50_000_122, 201),
        ]
    );
    assert_eq!(upload.content_types, vec!["video/mp4"; 5]);
    let expected = blake3::hash(&data).to_hex().to_string();
    assert_eq!(upload.blake3.as_deref(), Some(expected.as_str()));
    assert_eq!(upload_tests_hash(&upload.data_path), expected);
    assert_eq!(
        upload.post_info.as_ref().unwrap()["privacy_level"],
        "SELF_ONLY"
    );

    let statuses: Vec<Value> = (0..3).map(|_| status_of(&server, &publish_id)).collect();
    assert_eq!(statuses[0]["status"], "PROCESSING_UPLOAD");
    assert_eq!(statuses[0]["uploaded_bytes"], size);
    assert_eq!(statuses[1]["status"], "PROCESSING_UPLOAD");
    assert_eq!(statuses[2]["status"], "PUBLISH_COMPLETE");
    let post_id = server.upload(&publish_id).unwrap().post_id.unwrap();
    assert_eq!(statuses[2]["publicaly_available_post_id"], json!([post_id]));
    assert_eq!(
        server.upload(&publish_id).unwrap().statuses,
        [
            "PROCESSING_UPLOAD",
            "PROCESSING_UPLOAD",
            "PROCESSING_UPLOAD",
            "PUBLISH_COMPLETE"
        ]
    );
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    let log_ids: std::collections::HashSet<String> =
        server.requests().into_iter().map(|r| r.log_id).collect();
    assert_eq!(log_ids.len(), server.requests().len(), "log ids are unique");
}

fn upload_tests_hash(path: &std::path::Path) -> String {
    upq_tests::hash_file(path)
}

#[test]
fn every_plan_violation_is_rejected() {
    let server = TikTokServer::start(relaxed());
    let bad: &[(u64, u64, u64, &str)] = &[
        (1_000, 500, 2, "a file under 5 MB in two chunks"),
        (1_000, 2_000, 0, "a chunk bigger than the file"),
        (1_000, 999, 1, "one chunk smaller than the file"),
        (
            12_000_000,
            7_000_000,
            1,
            "count 1 with a chunk smaller than the file",
        ),
        (12_000_000, 5_000_000, 3, "count is not floor(size / chunk)"),
        (12_000_000, 4_000_000, 3, "chunk under 5 MB"),
        (200_000_000, 65_000_000, 3, "chunk over 64 MB"),
        (64_000_001, 64_000_001, 1, "over 64 MB in one chunk"),
        (4_000_000_001, 64_000_000, 62, "over 4 GB"),
        (0, 0, 0, "an empty file"),
    ];
    for &(size, chunk, count, what) in bad {
        let response = call(
            &server,
            DIRECT_INIT_PATH,
            &direct_body("SELF_ONLY", source_info(size, chunk, count)),
        );
        assert_eq!(response.status, 400, "{what}: {}", json(&response));
        assert_eq!(code(&response), "invalid_param", "{what}");
        let message = json(&response)["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            message.contains("is invalid"),
            "{what}: message {message:?}"
        );
    }
    assert_eq!(
        server.violations().len(),
        bad.len(),
        "{:?}",
        server.violations()
    );
    assert!(server.uploads().is_empty());

    let good: &[(u64, u64, u64)] = &[
        (1, 1, 1),
        (4_999_999, 4_999_999, 1),
        (64_000_000, 64_000_000, 1),
        (12_000_000, 6_000_000, 2),
        (50_000_123, 10_000_000, 5),
        (191_000_000, 64_000_000, 2),
        (4_000_000_000, 64_000_000, 62),
    ];
    for &(size, chunk, count) in good {
        let response = call(
            &server,
            INBOX_INIT_PATH,
            &json!({"source_info": source_info(size, chunk, count)}),
        );
        assert_eq!(
            response.status,
            200,
            "{size}/{chunk}/{count}: {}",
            json(&response)
        );
        if server.uploads().len() == 5 {
            // Stay under the pending-share cap.
            server.advance(Duration::from_secs(24 * 3600));
        }
    }
    assert_eq!(server.uploads().len(), good.len());
    assert_eq!(server.violations().len(), bad.len());
}

#[test]
fn tokens_and_scopes() {
    let server = TikTokServer::start(relaxed());
    let body = direct_body("SELF_ONLY", source_info(1000, 1000, 1));

    let no_token = call_raw(
        &server.url(DIRECT_INIT_PATH),
        None,
        Some(JSON_CONTENT_TYPE),
        body.to_string().as_bytes(),
    );
    assert_eq!(no_token.status, 401);
    assert_eq!(code(&no_token), "access_token_invalid");
    let wrong = call_raw(
        &server.url(CREATOR_INFO_PATH),
        Some("act.other"),
        Some(JSON_CONTENT_TYPE),
        b"",
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(code(&wrong), "access_token_invalid");
    let lowercase = http::request(
        "POST",
        &server.url(CREATOR_INFO_PATH),
        &[
            ("Authorization", "bearer act.test-token"),
            ("Content-Type", JSON_CONTENT_TYPE),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(lowercase.status, 401, "the scheme is matched exactly");

    // Only video.upload: inbox works, direct post and creator info do not.
    server.set_scopes(&["video.upload"]);
    let direct = call(&server, DIRECT_INIT_PATH, &body);
    assert_eq!(direct.status, 401);
    assert_eq!(code(&direct), "scope_not_authorized");
    let info = call(&server, CREATOR_INFO_PATH, &json!({}));
    assert_eq!(code(&info), "scope_not_authorized");
    let (publish_id, _) = init_inbox(&server, 1000, 1000);
    assert_eq!(
        status_of(&server, &publish_id)["status"],
        "PROCESSING_UPLOAD"
    );

    // Only video.publish: status still works, inbox does not.
    server.set_scopes(&["video.publish"]);
    assert_eq!(
        status_of(&server, &publish_id)["status"],
        "PROCESSING_UPLOAD"
    );
    let inbox = call(
        &server,
        INBOX_INIT_PATH,
        &json!({"source_info": source_info(1000, 1000, 1)}),
    );
    assert_eq!(code(&inbox), "scope_not_authorized");

    // Revocation: the old token stops working at once.
    server.set_token("act.rotated");
    let old = call_raw(
        &server.url(STATUS_PATH),
        Some("act.test-token"),
        Some(JSON_CONTENT_TYPE),
        json!({"publish_id": publish_id}).to_string().as_bytes(),
    );
    assert_eq!(code(&old), "access_token_invalid");
    assert_eq!(server.token(), "act.rotated");
    assert_eq!(
        status_of(&server, &publish_id)["status"],
        "PROCESSING_UPLOAD"
    );
    assert_eq!(server.violations().len(), 7, "{:?}", server.violations());
}

#[test]
fn content_type_and_body_shape() {
    let server = TikTokServer::start(relaxed());
    let token = server.token();
    let body = direct_body("SELF_ONLY", source_info(1000, 1000, 1)).to_string();
    let url = server.url(DIRECT_INIT_PATH);
    for content_type in [
        None,
        Some("application/json"),
        Some("text/plain; charset=UTF-8"),
    ] {
        let response = call_raw(&url, Some(&token), content_type, body.as_bytes());
        assert_eq!(response.status, 400, "{content_type:?}");
        assert_eq!(code(&response), "invalid_param");
    }
    let spaced = call_raw(
        &url,
        Some(&token),
        Some("Application/JSON ;  charset=utf-8"),
        body.as_bytes(),
    );
    assert_eq!(spaced.status, 200, "{}", json(&spaced));

    // creator_info takes an empty body or {}.
    for raw in [&b""[..], b"{}", b" { } "] {
        let response = call_raw(
            &server.url(CREATOR_INFO_PATH),
            Some(&token),
            Some(JSON_CONTENT_TYPE),
            raw,
        );
        assert_eq!(response.status, 200, "{:?}", String::from_utf8_lossy(raw));
        let data = &json(&response)["data"];
        assert_eq!(data["privacy_level_options"].as_array().unwrap().len(), 4);
        assert_eq!(data["max_video_post_duration_sec"], 600);
        for key in [
            "creator_avatar_url",
            "creator_username",
            "creator_nickname",
            "comment_disabled",
            "duet_disabled",
            "stitch_disabled",
        ] {
            assert!(data.get(key).is_some(), "{key} in {data}");
        }
    }
    let with_field = call(&server, CREATOR_INFO_PATH, &json!({"fields": ["x"]}));
    assert_eq!(with_field.status, 400);

    let rejected: Vec<(Value, &str)> = vec![
        (
            json!({"source_info": source_info(1000, 1000, 1)}),
            "no post_info",
        ),
        (
            json!({"post_info": {"privacy_level": "SELF_ONLY"}}),
            "no source_info",
        ),
        (
            json!({"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": source_info(1000, 1000, 1), "extra": 1}),
            "unknown top-level field",
        ),
        (
            json!({"post_info": {"privacy_level": "SELF_ONLY", "disable_comments": true}, "source_info": source_info(1000, 1000, 1)}),
            "unknown post_info field",
        ),
        (
            json!({"post_info": {"privacy_level": "SELF_ONLY", "disable_duet": "true"}, "source_info": source_info(1000, 1000, 1)}),
            "a string for a boolean",
        ),
        (
            json!({"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": {"source": "FILE_UPLOAD", "video_size": "1000", "chunk_size": 1000, "total_chunk_count": 1}}),
            "a string for a size",
        ),
        (
            json!({"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": {"source": "FILE_UPLOAD", "video_size": 1000.0, "chunk_size": 1000, "total_chunk_count": 1}}),
            "a float for a size",
        ),
        (
            json!({"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": {"source": "PULL_FROM_URL", "video_size": 1000, "chunk_size": 1000, "total_chunk_count": 1}}),
            "another source",
        ),
        (
            json!({"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": {"source": "FILE_UPLOAD", "video_size": 1000, "chunk_size": 1000}}),
            "no total_chunk_count",
        ),
        (
            json!({"post_info": {"privacy_level": "SELF_ONLY", "title": "a".repeat(2201)}, "source_info": source_info(1000, 1000, 1)}),
            "a title over 2200",
        ),
        (
            json!({"post_info": {"privacy_level": "SELF_ONLY", "title": "😀".repeat(1101)}, "source_info": source_info(1000, 1000, 1)}),
            "a title over 2200 UTF-16 units",
        ),
        (json!([1, 2]), "not an object"),
    ];
    for (body, what) in &rejected {
        let response = call(&server, DIRECT_INIT_PATH, body);
        assert_eq!(response.status, 400, "{what}: {}", json(&response));
        assert_eq!(code(&response), "invalid_param", "{what}");
    }
    let not_json = call_raw(
        &url,
        Some(&token),
        Some(JSON_CONTENT_TYPE),
        b"{\"post_info\":",
    );
    assert_eq!(code(&not_json), "invalid_param");
    let inbox_with_post_info = call(
        &server,
        INBOX_INIT_PATH,
        &json!({"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": source_info(1000, 1000, 1)}),
    );
    assert_eq!(inbox_with_post_info.status, 400);

    let full = json!({
        "post_info": {
            "title": "😀".repeat(1100),
            "privacy_level": "PUBLIC_TO_EVERYONE",
            "disable_duet": false,
            "disable_stitch": true,
            "disable_comment": false,
            "video_cover_timestamp_ms": 1000,
            "brand_content_toggle": false,
            "brand_organic_toggle": true,
            "is_aigc": false,
        },
        "source_info": source_info(1000, 1000, 1),
    });
    let accepted = call(&server, DIRECT_INIT_PATH, &full);
    assert_eq!(accepted.status, 200, "{}", json(&accepted));
    let unknown_status = fetch_status(&server, "v_pub_file~v2-1.1");
    assert_eq!(unknown_status.status, 400);
    assert_eq!(code(&unknown_status), "invalid_param");
}

#[test]
fn privacy_and_interaction_rules() {
    let server = TikTokServer::start(relaxed());
    server.set_creator(CreatorInfo {
        privacy_level_options: vec!["FOLLOWER_OF_CREATOR".into(), "SELF_ONLY".into()],
        comment_disabled: true,
        ..CreatorInfo::default()
    });
    let plan = source_info(1000, 1000, 1);
    let public = call(
        &server,
        DIRECT_INIT_PATH,
        &json!({"post_info": {"privacy_level": "PUBLIC_TO_EVERYONE", "disable_comment": true}, "source_info": plan}),
    );
    assert_eq!(public.status, 403);
    assert_eq!(code(&public), "privacy_level_option_mismatch");

    let comments_on = call(
        &server,
        DIRECT_INIT_PATH,
        &json!({"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": plan}),
    );
    assert_eq!(comments_on.status, 400, "the creator has comments disabled");
    let comments_off = call(
        &server,
        DIRECT_INIT_PATH,
        &json!({"post_info": {"privacy_level": "FOLLOWER_OF_CREATOR", "disable_comment": true}, "source_info": plan}),
    );
    assert_eq!(comments_off.status, 200, "{}", json(&comments_off));

    server.set_unaudited(true);
    let followers = call(
        &server,
        DIRECT_INIT_PATH,
        &json!({"post_info": {"privacy_level": "FOLLOWER_OF_CREATOR", "disable_comment": true}, "source_info": plan}),
    );
    assert_eq!(followers.status, 403);
    assert_eq!(
        code(&followers),
        "unaudited_client_can_only_post_to_private_accounts"
    );
    let private = call(
        &server,
        DIRECT_INIT_PATH,
        &json!({"post_info": {"privacy_level": "SELF_ONLY", "disable_comment": true}, "source_info": plan}),
    );
    assert_eq!(private.status, 200);
    assert_eq!(server.violations().len(), 3, "{:?}", server.violations());
}

#[test]
fn chunk_puts_are_checked() {
    let server = TikTokServer::start(relaxed());
    let size = 12_000_000u64;
    let data = video(size);
    let (publish_id, url) = init_direct(&server, size, 6_000_000);
    let first = &data[..6_000_000];
    let range = format!("bytes 0-5999999/{size}");

    let bad_type = put_chunk(&url, "application/octet-stream", 0, size, first).unwrap();
    assert_eq!(bad_type.status, 400);
    let no_range = http::request("PUT", &url, &[("Content-Type", "video/mp4")], first).unwrap();
    assert_eq!(no_range.status, 400);
    for bad in [
        "bytes=0-5999999/12000000",
        "bytes 0-5999999/*",
        "bytes 0-5999999/12000001",
        "0-5999999/12000000",
    ] {
        let response = http::request(
            "PUT",
            &url,
            &[("Content-Type", "video/mp4"), ("Content-Range", bad)],
            first,
        )
        .unwrap();
        assert_eq!(response.status, 400, "{bad}");
    }
    // The range does not match the body's length.
    let short = http::request(
        "PUT",
        &url,
        &[("Content-Type", "video/mp4"), ("Content-Range", &range)],
        &first[..1000],
    )
    .unwrap();
    assert_eq!(short.status, 400);
    // Not the planned chunk (a smaller first chunk).
    let small = put_chunk(&url, "video/mp4", 0, size, &data[..5_000_000]).unwrap();
    assert_eq!(small.status, 400);
    // No Content-Length: a chunked body.
    let chunked = raw_put_chunked(&url, &range, &first[..100]);
    assert!(chunked.starts_with("HTTP/1.1 400"), "{chunked}");
    // Out of order before anything arrived.
    let ahead = put_chunk(&url, "video/mp4", 6_000_000, size, &data[6_000_000..]).unwrap();
    assert_eq!(ahead.status, 416);
    assert_eq!(
        ahead.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );
    // A wrong token or id names no task.
    let wrong_token = url.replace("upload_token=", "upload_token=0");
    let missing = put_chunk(&wrong_token, "video/mp4", 0, size, first).unwrap();
    assert_eq!(missing.status, 404);
    assert_eq!(server.upload(&publish_id).unwrap().received, 0);

    let accepted = put_chunk(&url, "video/quicktime", 0, size, first).unwrap();
    assert_eq!(accepted.status, 206);
    assert_eq!(accepted.header("content-range"), Some(range.as_str()));
    let again = put_chunk(&url, "video/mp4", 0, size, first).unwrap();
    assert_eq!(again.status, 416);
    assert_eq!(again.header("content-range"), Some(range.as_str()));
    let done = put_chunk(&url, "video/webm", 6_000_000, size, &data[6_000_000..]).unwrap();
    assert_eq!(done.status, 201);
    assert_eq!(
        done.header("content-range"),
        Some(format!("bytes 0-{}/{size}", size - 1).as_str())
    );
    let after = put_chunk(&url, "video/mp4", 6_000_000, size, &data[6_000_000..]).unwrap();
    assert_eq!(after.status, 416);
    assert_eq!(
        after.header("content-range"),
        Some(format!("bytes 0-{}/{size}", size - 1).as_str())
    );

    let upload = server.upload(&publish_id).unwrap();
    assert!(upload.complete);
    assert_eq!(
        upload.blake3.unwrap(),
        blake3::hash(&data).to_hex().to_string()
    );
    let statuses: Vec<u16> = upload.chunks.iter().map(|c| c.2).collect();
    assert_eq!(statuses, [400, 400, 400, 400, 400, 416, 206, 416, 201, 416]);
    assert_eq!(server.violations().len(), 13, "{:#?}", server.violations());
}

/// A PUT with `Transfer-Encoding: chunked` (no Content-Length); returns the raw answer.
fn raw_put_chunked(url: &str, range: &str, body: &[u8]) -> String {
    let (authority, path) = http::split_url(url);
    let mut stream = TcpStream::connect(&authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Type: video/mp4\r\nContent-Range: {range}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    stream.write_all(b"\r\n0\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn upload_urls_expire_on_the_virtual_clock() {
    let server = TikTokServer::start(relaxed());
    let data = video(1000);
    let (first_id, first_url) = init_direct(&server, 1000, 1000);
    let (second_id, second_url) = init_inbox(&server, 1000, 1000);
    server.advance(Duration::from_secs(3599));
    assert!(server.uploads().iter().all(|u| !u.expired));
    server.advance(Duration::from_secs(2));
    assert!(server.uploads().iter().all(|u| u.expired));
    for url in [&first_url, &second_url] {
        let response = put_chunk(url, "video/mp4", 0, 1000, &data).unwrap();
        assert_eq!(response.status, 403, "{}", server.describe());
    }
    for id in [&first_id, &second_id] {
        assert_eq!(server.upload(id).unwrap().received, 0);
    }

    // A compressed clock: one real millisecond is many virtual minutes.
    let fast = TikTokServer::start(TikTokOptions {
        time_scale: 1_000_000.0,
        ..relaxed()
    });
    let (fast_id, _) = init_direct(&fast, 1000, 1000);
    upq_tests::wait_until(Duration::from_secs(10), "the URL to expire", || {
        fast.upload(&fast_id).unwrap().expired
    });
}

#[test]
fn the_seventh_init_in_a_minute_is_rate_limited() {
    let server = TikTokServer::start(TikTokOptions::default());
    for _ in 0..3 {
        init_direct(&server, 1000, 1000);
        init_inbox(&server, 1000, 1000);
    }
    let seventh = call(
        &server,
        DIRECT_INIT_PATH,
        &direct_body("SELF_ONLY", source_info(1000, 1000, 1)),
    );
    assert_eq!(seventh.status, 429);
    assert_eq!(code(&seventh), "rate_limit_exceeded");
    assert_eq!(server.rate_limited(), 1);
    // Other endpoints have their own windows.
    let info = call(&server, CREATOR_INFO_PATH, &json!({}));
    assert_eq!(info.status, 200);
    server.advance(Duration::from_secs(60));
    init_direct(&server, 1000, 1000);

    // Status: 30 a minute.
    let publish_id = server.uploads()[0].publish_id.clone();
    for _ in 0..30 {
        status_of(&server, &publish_id);
    }
    assert_eq!(fetch_status(&server, &publish_id).status, 429);
    assert_eq!(server.rate_limited(), 2);
    assert_eq!(server.violations().len(), 2);
}

#[test]
fn the_sixth_pending_share_is_refused() {
    let server = TikTokServer::start(relaxed());
    for _ in 0..5 {
        init_inbox(&server, 1000, 1000);
    }
    let sixth = call(
        &server,
        INBOX_INIT_PATH,
        &json!({"source_info": source_info(1000, 1000, 1)}),
    );
    assert_eq!(sixth.status, 403);
    assert_eq!(code(&sixth), "spam_risk_too_many_pending_share");
    // Direct posts are not shares.
    init_direct(&server, 1000, 1000);
    server.advance(Duration::from_secs(24 * 3600));
    init_inbox(&server, 1000, 1000);
    assert_eq!(server.uploads().len(), 7);
}

#[test]
fn status_sequences() {
    let server = TikTokServer::start(relaxed());
    let data = video(1000);
    let upload = |server: &TikTokServer, inbox: bool| {
        let (id, url) = if inbox {
            init_inbox(server, 1000, 1000)
        } else {
            init_direct(server, 1000, 1000)
        };
        assert_eq!(
            put_chunk(&url, "video/mp4", 0, 1000, &data).unwrap().status,
            201
        );
        id
    };
    let poll_until_final = |server: &TikTokServer, id: &str| -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let data = status_of(server, id);
            let status = data["status"].as_str().unwrap().to_string();
            seen.push(data);
            if status != "PROCESSING_UPLOAD" {
                return seen;
            }
            assert!(seen.len() < 20, "never finished");
        }
    };

    let inbox = upload(&server, true);
    let seen = poll_until_final(&server, &inbox);
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2]["status"], "SEND_TO_USER_INBOX");
    assert_eq!(seen[2]["publicaly_available_post_id"], json!([]));
    assert_eq!(status_of(&server, &inbox)["status"], "SEND_TO_USER_INBOX");
    assert!(server.upload(&inbox).unwrap().post_id.is_none());

    server.inject(Fault::FailProcessing("file_format_check_failed".into()));
    let failed = upload(&server, false);
    let seen = poll_until_final(&server, &failed);
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2]["status"], "FAILED");
    assert_eq!(seen[2]["fail_reason"], "file_format_check_failed");
    assert!(server.upload(&failed).unwrap().post_id.is_none());

    server.inject(Fault::SlowProcessing(3));
    let slow = upload(&server, false);
    let seen = poll_until_final(&server, &slow);
    assert_eq!(seen.len(), 6);
    assert_eq!(seen[5]["status"], "PUBLISH_COMPLETE");
    assert_eq!(
        server.upload(&slow).unwrap().statuses,
        [
            "PROCESSING_UPLOAD",
            "PROCESSING_UPLOAD",
            "PROCESSING_UPLOAD",
            "PROCESSING_UPLOAD",
            "PROCESSING_UPLOAD",
            "PUBLISH_COMPLETE"
        ]
    );
    assert!(server.pending_faults().is_empty());
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}

#[test]
fn a_lost_acknowledgement_then_a_resend_meets_416() {
    let server = TikTokServer::start(relaxed());
    let size = 12_000_000u64;
    let data = video(size);
    let (publish_id, url) = init_direct(&server, size, 6_000_000);

    server.inject(Fault::AcceptThenFail);
    let lost = put_chunk(&url, "video/mp4", 0, size, &data[..6_000_000]).unwrap();
    assert_eq!(lost.status, 500);
    assert_eq!(server.upload(&publish_id).unwrap().received, 6_000_000);
    let resend = put_chunk(&url, "video/mp4", 0, size, &data[..6_000_000]).unwrap();
    assert_eq!(resend.status, 416);
    assert_eq!(
        resend.header("content-range"),
        Some(format!("bytes 0-5999999/{size}").as_str())
    );

    server.inject(Fault::AcceptThenDrop);
    let dropped = put_chunk(&url, "video/mp4", 6_000_000, size, &data[6_000_000..]);
    assert!(dropped.is_err(), "no answer: {dropped:?}");
    let upload = server.upload(&publish_id).unwrap();
    assert!(upload.complete);
    let resend = put_chunk(&url, "video/mp4", 6_000_000, size, &data[6_000_000..]).unwrap();
    assert_eq!(resend.status, 416);
    assert_eq!(
        resend.header("content-range"),
        Some(format!("bytes 0-{}/{size}", size - 1).as_str())
    );
    assert_eq!(
        server.upload(&publish_id).unwrap().chunks,
        [
            (0, 5_999_999, 500),
            (0, 5_999_999, 416),
            (6_000_000, 11_999_999, 0),
            (6_000_000, 11_999_999, 416),
        ]
    );
    assert_eq!(
        upload.blake3.unwrap(),
        blake3::hash(&data).to_hex().to_string()
    );
    assert!(
        server.violations().is_empty(),
        "the first resend after a lost answer is expected: {:?}",
        server.violations()
    );
    // A second resend is the client ignoring the 416's Content-Range.
    let ignored = put_chunk(&url, "video/mp4", 6_000_000, size, &data[6_000_000..]).unwrap();
    assert_eq!(ignored.status, 416);
    assert_eq!(server.violations().len(), 1);
}

#[test]
fn injected_answers_are_one_shot_and_not_violations() {
    let server = TikTokServer::start(relaxed());
    server.inject(Fault::respond("init", 500, "internal_error", "try again"));
    server.inject(Fault::respond(
        "creator_info",
        429,
        "rate_limit_exceeded",
        "slow down",
    ));
    let failed = call(
        &server,
        DIRECT_INIT_PATH,
        &direct_body("SELF_ONLY", source_info(1000, 1000, 1)),
    );
    assert_eq!(failed.status, 500);
    assert_eq!(code(&failed), "internal_error");
    assert!(server.uploads().is_empty());
    let limited = call(&server, CREATOR_INFO_PATH, &json!({}));
    assert_eq!(limited.status, 429);
    assert_eq!(server.rate_limited(), 0, "injected 429s are not counted");

    let (publish_id, url) = init_direct(&server, 1000, 1000);
    server.inject(Fault::respond("put", 503, "internal_error", "busy"));
    server.inject(Fault::respond(
        "status",
        403,
        "spam_risk_too_many_posts",
        "no",
    ));
    let data = video(1000);
    assert_eq!(
        put_chunk(&url, "video/mp4", 0, 1000, &data).unwrap().status,
        503
    );
    assert_eq!(server.upload(&publish_id).unwrap().received, 0);
    assert_eq!(
        put_chunk(&url, "video/mp4", 0, 1000, &data).unwrap().status,
        201
    );
    let refused = fetch_status(&server, &publish_id);
    assert_eq!(refused.status, 403);
    assert_eq!(code(&refused), "spam_risk_too_many_posts");
    assert_eq!(
        status_of(&server, &publish_id)["status"],
        "PROCESSING_UPLOAD"
    );
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    let injected = server.requests().iter().filter(|r| r.injected).count();
    assert_eq!(injected, 4, "{}", server.describe());
}
