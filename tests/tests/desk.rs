//! The desk over plain HTTP: where it listens, and each of its guards. Every refusal here
//! is checked against the same request that succeeds when it comes the desk's own way, so
//! a guard that refused everything would fail these tests too.

use std::time::Duration;

use upq_tests::bus::PrivateBus;
use upq_tests::desk::{authority_of, base_of, body_text, sign_in_url, DeskSession};
use upq_tests::http::{self, Response};
use upq_tests::tus::{tus_config, TusServer};
use upq_tests::{hash_file, wait_for, Daemon, JobState, OutputExt, TestEnv, MIB};

/// The three headers every answer carries.
fn assert_protected(response: &Response, what: &str) {
    assert_eq!(
        response.header("content-security-policy"),
        Some("default-src 'self'"),
        "{what}"
    );
    assert_eq!(response.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        response.header("referrer-policy"),
        Some("no-referrer"),
        "{what}"
    );
    assert!(
        response
            .headers
            .iter()
            .all(|(name, _)| !name.starts_with("access-control-")),
        "{what}: no CORS headers at all: {:?}",
        response.headers
    );
}

#[test]
fn the_desk_listens_on_loopback_at_a_port_it_keeps() {
    let env = TestEnv::new("desk-port");
    let mut daemon = env.start_daemon();
    let url = daemon
        .desk_url()
        .expect("the ready line gives the desk's address");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let status = env.ctl_json(["status"]);
    assert_eq!(status["web_url"], url.as_str(), "{status}");
    let text = env.ctl(["status"]).stdout_text();
    assert!(text.contains(&format!("desk          {url}")), "{text}");

    daemon.stop();
    daemon.restart();
    assert_eq!(
        daemon.desk_url().as_deref(),
        Some(url.as_str()),
        "the port is kept"
    );
    assert_eq!(sign_in_url(&env).split("login?").next(), Some(url.as_str()));
}

/// `upqctl --bus open` gets its one-time address over D-Bus (`Manager.OpenDesk`), and
/// `status` there says where the desk is.
#[test]
fn the_bus_hands_out_sign_in_addresses_too() {
    let env = TestEnv::new("desk-bus");
    let bus = PrivateBus::start(env.root());
    let daemon = Daemon::on_bus(&env, &bus).start();
    env.set_var("DBUS_SESSION_BUS_ADDRESS", bus.address());
    let url = daemon.desk_url().unwrap();
    let open = env.ctl(["--bus", "open", "--no-browser"]);
    open.assert_ok("upqctl --bus open --no-browser");
    let address = open.stdout_text().trim().to_owned();
    assert!(
        address.starts_with(&format!("{url}login?token=")),
        "{address}"
    );
    let answer = http::request("GET", &address, &[], &[]).unwrap();
    assert_eq!(answer.status, 303, "the address signs in");
    let status = env.ctl_json(["--bus", "status"]);
    assert_eq!(status["web_url"], url.as_str(), "{status}");
}

#[test]
fn a_desk_turned_off_or_asked_to_serve_other_machines_is_said_so() {
    let env = TestEnv::new("desk-off");
    env.write_config("[web]\nenabled = false\n");
    let daemon = env.start_daemon();
    assert_eq!(daemon.desk_url(), None, "{}", daemon.ready_line);
    assert_eq!(env.ctl_json(["status"])["web_url"], serde_json::Value::Null);
    let open = env.ctl(["open", "--no-browser"]);
    assert_eq!(open.code(), 1, "{}", open.stderr_text());
    assert!(
        open.stderr_text().contains("the desk is off"),
        "{}",
        open.stderr_text()
    );
    assert!(
        open.stdout_text().is_empty(),
        "no address: {}",
        open.stdout_text()
    );
    drop(daemon);

    for (config, key) in [
        ("[web]\nbind = \"0.0.0.0\"\n", "web.bind"),
        ("[web]\nbind = \"192.168.1.10\"\n", "web.bind"),
        ("[web]\nallow_remote = true\n", "web.allow_remote"),
        ("[web]\nport = 0\n", "web.port"),
    ] {
        env.write_config(config);
        let out = Daemon::run_to_exit(&env, &[]);
        assert_eq!(
            out.status.code(),
            Some(78),
            "{config}: {}",
            out.stderr_text()
        );
        assert!(
            out.stderr_text().contains(key),
            "{config}: {}",
            out.stderr_text()
        );
    }
}

#[test]
fn a_request_must_name_the_desk_as_its_host() {
    let env = TestEnv::new("desk-host");
    let _daemon = env.start_daemon();
    let desk = DeskSession::sign_in(&env);
    let authority = authority_of(&desk.base);
    let port = authority.rsplit(':').next().unwrap().to_owned();
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_owned(),
        format!("127.0.0.1:{}", port.parse::<u16>().unwrap().wrapping_add(1)),
        format!("127.0.0.2:{port}"),
        String::new(),
    ] {
        let answer = desk.get_with("/", &[("Host", &host)]);
        assert_eq!(answer.status, 421, "Host {host:?}: {}", body_text(&answer));
        assert!(
            !body_text(&answer).contains("data-csrf"),
            "nothing of a page"
        );
        assert_protected(&answer, &format!("421 for {host:?}"));
        let post = desk.post_raw(
            "/jobs/1/cancel",
            &[("csrf", &desk.csrf)],
            &[("Host", &host)],
        );
        assert_eq!(post.status, 421, "POST with Host {host:?}");
    }
    // The names of loopback itself pass, with the same session.
    for host in [
        authority.clone(),
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("[::1]:{port}"),
    ] {
        let answer = desk.get_with("/", &[("Host", &host)]);
        assert_eq!(answer.status, 200, "Host {host:?}");
    }
}

#[test]
fn a_browser_signs_in_only_with_a_fresh_one_time_address() {
    let env = TestEnv::new("desk-signin");
    let _daemon = env.start_daemon();
    let url = sign_in_url(&env);
    let base = base_of(&url);

    let anonymous = http::request("GET", &base, &[], &[]).unwrap();
    assert_eq!(anonymous.status, 401);
    assert!(
        body_text(&anonymous).contains("upqctl open"),
        "{}",
        body_text(&anonymous)
    );
    assert_protected(&anonymous, "the sign-in page");
    let post = http::request("POST", &format!("{base}jobs/1/pause"), &[], b"csrf=x").unwrap();
    assert_eq!(post.status, 403);

    for wrong in [
        "",
        "token=",
        "token=00",
        &format!("token={}", "a".repeat(64)),
    ] {
        let answer = http::request("GET", &format!("{base}login?{wrong}"), &[], &[]).unwrap();
        assert_eq!(answer.status, 403, "{wrong}");
        assert!(answer.header("set-cookie").is_none());
    }

    let first = http::request("GET", &url, &[], &[]).unwrap();
    assert_eq!(first.status, 303, "{}", body_text(&first));
    assert_eq!(first.header("location"), Some("/"));
    let cookie = first.header("set-cookie").expect("a session cookie");
    let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
    assert!(attributes[0].starts_with("upq_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attributes.contains(&attribute), "{attribute} in {cookie}");
    }
    assert_protected(&first, "the sign-in answer");
    let again = http::request("GET", &url, &[], &[]).unwrap();
    assert_eq!(again.status, 403, "the address works once");
    assert!(again.header("set-cookie").is_none());

    let session = attributes[0];
    let page = http::request("GET", &base, &[("Cookie", session)], &[]).unwrap();
    assert_eq!(page.status, 200);
    let forged = http::request("GET", &base, &[("Cookie", "upq_session=0123")], &[]).unwrap();
    assert_eq!(forged.status, 401);
}

#[test]
fn a_change_needs_the_sessions_token_and_the_desks_own_origin() {
    let env = TestEnv::new("desk-csrf");
    let _daemon = env.start_daemon();
    env.ctl(["pause", "--all"]).assert_ok("pause --all");
    let video = env.source("kept.mp4", MIB);
    let id = env.add(&video, &[]);
    let desk = DeskSession::sign_in(&env);
    let path = format!("/jobs/{id}/cancel");
    let origin = desk.base.trim_end_matches('/').to_owned();

    let refused = [
        (
            "no token",
            desk.post_raw(&path, &[], &[("Origin", &origin)]),
        ),
        (
            "a wrong token",
            desk.post_raw(&path, &[("csrf", "0000")], &[("Origin", &origin)]),
        ),
        (
            "another origin",
            desk.post_raw(
                &path,
                &[("csrf", &desk.csrf)],
                &[("Origin", "http://evil.example")],
            ),
        ),
        (
            "another port",
            desk.post_raw(
                &path,
                &[("csrf", &desk.csrf)],
                &[("Origin", "http://127.0.0.1:1")],
            ),
        ),
        (
            "an opaque origin from another site",
            desk.post_raw(
                &path,
                &[("csrf", &desk.csrf)],
                &[("Origin", "null"), ("Sec-Fetch-Site", "cross-site")],
            ),
        ),
        (
            "an opaque origin without the token",
            desk.post_raw(&path, &[("csrf", "0000")], &[("Origin", "null")]),
        ),
        (
            "a cross-site fetch",
            desk.post_raw(
                &path,
                &[("csrf", &desk.csrf)],
                &[("Sec-Fetch-Site", "cross-site")],
            ),
        ),
    ];
    for (what, answer) in &refused {
        assert_eq!(answer.status, 403, "{what}: {}", body_text(answer));
        assert_protected(answer, what);
    }
    // Asking for the confirmation page changes nothing either.
    let confirm = desk.get(&path);
    assert_eq!(confirm.status, 200);
    assert!(
        body_text(&confirm).contains("Drafts"),
        "{}",
        body_text(&confirm)
    );
    assert_eq!(env.job(id).state, JobState::Queued, "nothing was canceled");
    // A preflight gets no CORS grant.
    let preflight = http::request(
        "OPTIONS",
        &desk.url(&path),
        &[
            ("Origin", "http://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        &[],
    )
    .unwrap();
    assert_protected(&preflight, "a preflight");

    // The same request from the desk's own page goes through.
    let done = desk.post(&path, &[("back", "/drafts")]);
    assert_eq!(done.status, 303, "{}", body_text(&done));
    assert_eq!(done.header("location"), Some("/drafts"));
    assert_eq!(env.job(id).state, JobState::Canceled);
    // A `back` that is not one of the desk's pages goes to the queue.
    let recovered = desk.post(
        &format!("/jobs/{id}/recover"),
        &[("back", "http://evil.example/")],
    );
    assert_eq!(recovered.header("location"), Some("/"));
    // A refusal of the service is a page that says why.
    let again = desk.post(&format!("/jobs/{id}/recover"), &[]);
    assert_eq!(again.status, 409);
    assert!(
        body_text(&again).contains("cannot be recovered"),
        "{}",
        body_text(&again)
    );
}

#[test]
fn every_answer_carries_the_protective_headers() {
    let env = TestEnv::new("desk-headers");
    let _daemon = env.start_daemon();
    let desk = DeskSession::sign_in(&env);
    for path in [
        "/",
        "/review",
        "/drafts",
        "/history",
        "/add",
        "/accounts",
        "/assets/desk.css",
        "/assets/desk.js",
        "/no-such-page",
        "/login?token=wrong",
        "/preview/999",
    ] {
        let answer = desk.get(path);
        assert!(answer.status < 500, "{path}: {}", answer.status);
        assert_protected(&answer, path);
    }
    // Nothing is loaded from elsewhere: every script, style and image is the desk's own.
    let page = body_text(&desk.get("/"));
    for needle in ["http://", "https://", "<script>", "style="] {
        assert!(!page.contains(needle), "{needle} in the queue page");
    }
}

#[test]
fn the_preview_serves_a_jobs_own_file_by_id_with_ranges() {
    let env = TestEnv::new("desk-preview");
    let _daemon = env.start_daemon();
    let video = env.source("preview.mp4", 3 * MIB);
    let before = hash_file(&video.path);
    let id = env.add(&video, &["--hold"]);
    let desk = DeskSession::sign_in(&env);
    let content = std::fs::read(&video.path).unwrap();
    let path = format!("/preview/{id}");

    let whole = desk.get(&path);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-type"), Some("video/mp4"));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert!(whole.body == content, "the whole file");

    let part = desk.get_with(&path, &[("Range", "bytes=1000-1999")]);
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range").map(str::to_owned),
        Some(format!("bytes 1000-1999/{}", content.len()))
    );
    assert!(part.body == content[1000..2000]);
    let tail = desk.get_with(&path, &[("Range", "bytes=-10")]);
    assert!(tail.body == content[content.len() - 10..]);
    let beyond = desk.get_with(&path, &[("Range", &format!("bytes={}-", content.len()))]);
    assert_eq!(beyond.status, 416);

    assert_eq!(desk.get("/preview/999").status, 404);
    for sneaky in [
        "/preview/..%2F..%2Fetc%2Fpasswd",
        "/preview/%2Fetc%2Fpasswd",
        "/preview/1/../../etc/passwd",
        "/preview/",
    ] {
        let answer = desk.get(sneaky);
        assert!(
            answer.status == 404 || answer.status == 400,
            "{sneaky}: {}",
            answer.status
        );
        assert!(!body_text(&answer).contains("root:"), "{sneaky}");
    }
    let signed_out = http::request("GET", &desk.url(&path), &[], &[]).unwrap();
    assert_eq!(signed_out.status, 401, "no preview without a session");
    assert_eq!(hash_file(&video.path), before, "the file is untouched");
}

#[test]
fn no_upload_address_or_token_reaches_a_page() {
    const SECRET: &str = "desk-s3cret-bearer";
    let env = TestEnv::new("desk-secrets");
    let server = TusServer::start(&env);
    env.write_config(&tus_config(
        &server.endpoint,
        "rate_limit = \"1MiB\"",
        "",
        &format!("headers = {{ Authorization = \"Bearer {SECRET}\" }}"),
    ));
    let _daemon = env.start_daemon();
    let video = env.source("secret.mp4", 8 * MIB);
    let id = env.add(&video, &["--to", "tus"]);
    wait_for(Duration::from_secs(30), "the upload at the server", || {
        env.job(id).upload_url.map(|_| ())
    });
    env.ctl(["pause", &id.to_string()]).assert_ok("pause");
    let upload_url = env
        .show(id)
        .upload_url
        .expect("a paused tus job keeps its upload");
    let upload_id = upload_url.rsplit('/').next().unwrap().to_owned();
    assert!(upload_id.len() >= 8, "{upload_url}");

    let desk = DeskSession::sign_in(&env);
    for path in [
        "/".to_owned(),
        format!("/jobs/{id}"),
        format!("/cards/queue/{id}"),
        format!("/jobs/{id}/cancel"),
    ] {
        let page = body_text(&desk.get(&path));
        assert!(
            page.contains(&format!("job-{id}")) || page.contains("Cancel"),
            "{path}: {page}"
        );
        assert!(
            !page.contains(&upload_id),
            "{path} shows the upload's address"
        );
        assert!(!page.contains(SECRET), "{path} shows the token");
    }
}

#[test]
fn the_add_page_takes_files_from_the_videos_folder_only() {
    let env = TestEnv::new("desk-add");
    env.set_var("XDG_VIDEOS_DIR", env.root().join("videos"));
    let _daemon = env.start_daemon();
    let video = env.source("from-the-desk.mp4", MIB);
    std::fs::create_dir_all(env.root().join("videos/trips")).unwrap();
    let desk = DeskSession::sign_in(&env);

    let listing = body_text(&desk.get("/add"));
    assert!(listing.contains("from-the-desk.mp4"), "{listing}");
    assert!(listing.contains("trips/"), "{listing}");
    let outside = body_text(&desk.get("/add?dir=..%2F..%2F"));
    assert!(
        outside.contains("not a path inside the videos folder"),
        "{outside}"
    );
    let escape = desk.post(
        "/add",
        &[("file", "../config/upq/config.toml"), ("to", "local")],
    );
    assert_eq!(escape.status, 400, "{}", body_text(&escape));
    std::os::unix::fs::symlink("/etc", env.root().join("videos/etc")).unwrap();
    let linked = desk.post("/add", &[("file", "etc/hostname"), ("to", "local")]);
    assert_eq!(linked.status, 400, "{}", body_text(&linked));
    assert!(body_text(&linked).contains("outside the videos folder"));
    assert!(env.list(true).is_empty(), "nothing was queued");

    let added = desk.post(
        "/add",
        &[
            ("file", "from-the-desk.mp4"),
            ("to", "local"),
            ("title", "Added on the desk"),
            ("hold", "on"),
        ],
    );
    assert_eq!(added.status, 200, "{}", body_text(&added));
    let jobs = env.list(true);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].file, video.path.display().to_string());
    assert_eq!(jobs[0].metadata.title.as_deref(), Some("Added on the desk"));
    assert!(jobs[0].hold);
}

/// Reads an event stream's head and first event, and leaves the connection open.
fn open_event_stream(desk: &DeskSession) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let authority = authority_of(&desk.base);
    let mut stream = std::net::TcpStream::connect(&authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /events HTTP/1.1\r\nHost: {authority}\r\nCookie: {}\r\nAccept: text/event-stream\r\n\r\n",
        desk.cookie
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    stream
}

/// Reads from an event stream until `needle` has come.
fn read_until(stream: &mut std::net::TcpStream, needle: &str) -> String {
    use std::io::Read;
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    while !seen.contains(needle) {
        let n = stream.read(&mut buffer).expect("the event stream");
        assert!(n > 0, "the stream ended before {needle:?}: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    seen
}

/// Idle, the desk wakes nothing: no runtime thread runs while no page is open, though one
/// does as soon as a page follows the events. And it costs at most 5 MiB of memory
/// against a daemon without it, after every page was served.
#[test]
fn an_idle_desk_wakes_nothing_and_costs_little_memory() {
    const WINDOW: Duration = Duration::from_secs(2);
    let env = TestEnv::new("desk-idle");
    env.write_config("[web]\nenabled = false\n");
    let mut without = env.start_daemon();
    let rss_without = without.proc_status_kib("VmRSS").unwrap();
    without.stop();
    drop(without);

    env.write_config("");
    let daemon = env.start_daemon();
    let desk = DeskSession::sign_in(&env);
    let video = env.source("idle.mp4", 2 * MIB);
    let id = env.add(&video, &["--hold"]);
    wait_for(Duration::from_secs(30), "a held job", || {
        (env.job(id).state == JobState::Held).then_some(())
    });
    for path in [
        "/".to_owned(),
        "/review".to_owned(),
        "/drafts".to_owned(),
        "/history".to_owned(),
        "/add".to_owned(),
        "/accounts".to_owned(),
        format!("/jobs/{id}"),
        format!("/cards/review/{id}"),
        format!("/preview/{id}"),
        "/assets/desk.js".to_owned(),
        "/assets/desk.css".to_owned(),
    ] {
        for _ in 0..5 {
            assert_eq!(desk.get(&path).status, 200, "{path}");
        }
    }

    // A page that follows the events wakes the daemon when something happens...
    let mut events = open_event_stream(&desk);
    let before = daemon.runtime_wakeups();
    env.ctl(["publish", &id.to_string()]).assert_ok("publish");
    read_until(&mut events, "event: state");
    assert!(
        daemon.runtime_wakeups() > before,
        "following the events costs wake-ups"
    );
    drop(events);

    // ...and with no page open, nothing wakes (the stream's end is noticed at its next
    // keep-alive, so this waits for a quiet window rather than asserting the first).
    env.wait_published(id, 30);
    let quiet = upq_tests::wait::wait_for(
        Duration::from_secs(40),
        "a window without a runtime wake-up",
        || {
            let start = daemon.runtime_wakeups();
            std::thread::sleep(WINDOW);
            let woke = daemon.runtime_wakeups() - start;
            (woke == 0).then_some(woke)
        },
    );
    assert_eq!(quiet, 0);
    let rss_with = daemon.proc_status_kib("VmRSS").unwrap();
    println!("VmRSS without the desk {rss_without} KiB, with it after serving {rss_with} KiB");
    assert!(
        rss_with <= rss_without + 5 * 1024,
        "the desk costs {} KiB (without {rss_without} KiB, with {rss_with} KiB)",
        rss_with.saturating_sub(rss_without)
    );
}

/// The `data-action`s of job `id`'s card on `page` (the cancel link counts as cancel; the
/// link to the history is not an action), and its `data-state`.
fn card_actions(desk: &DeskSession, page: &str, id: u64) -> (String, Vec<String>) {
    let answer = desk.get(&format!("/cards/{page}/{id}"));
    assert_eq!(answer.status, 200, "job {id} on {page}");
    let html = body_text(&answer);
    let state = html
        .split_once("data-state=\"")
        .and_then(|(_, rest)| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let mut actions: Vec<String> = html
        .split("data-action=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|action| *action != "edit")
        .map(str::to_owned)
        .collect();
    actions.sort();
    actions.dedup();
    (state, actions)
}

/// The page, the socket and D-Bus show each job in the same state with the same actions.
#[test]
fn the_page_the_socket_and_the_bus_offer_the_same_actions() {
    let env = TestEnv::new("desk-parity");
    let bus = PrivateBus::start(env.root());
    let _daemon = Daemon::on_bus(&env, &bus).start();
    env.set_var("DBUS_SESSION_BUS_ADDRESS", bus.address());
    let held = env.add(&env.source("held.mp4", MIB), &["--hold"]);
    wait_for(Duration::from_secs(30), "a held job", || {
        (env.job(held).state == JobState::Held).then_some(())
    });
    env.ctl(["pause", "--all"]).assert_ok("pause --all");
    let queued = env.add(&env.source("queued.mp4", MIB), &[]);
    let paused = env.add(&env.source("paused.mp4", MIB), &[]);
    env.ctl(["pause", &paused.to_string()]).assert_ok("pause");
    let canceled = env.add(&env.source("canceled.mp4", MIB), &[]);
    env.ctl(["cancel", &canceled.to_string()])
        .assert_ok("cancel");
    let desk = DeskSession::sign_in(&env);

    for (id, page, state) in [
        (held, "queue", "held"),
        (held, "review", "held"),
        (queued, "queue", "queued"),
        (paused, "queue", "paused"),
        (canceled, "drafts", "canceled"),
    ] {
        let socket = env.ctl_json(["show", &id.to_string()]);
        let over_bus = env.ctl_json(["--bus", "show", &id.to_string()]);
        let listed = |job: &serde_json::Value| -> Vec<String> {
            let mut actions: Vec<String> = job["actions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            actions.sort();
            actions
        };
        let (shown_state, shown) = card_actions(&desk, page, id);
        assert_eq!(socket["state"], state, "{socket}");
        assert_eq!(over_bus["state"], state, "{over_bus}");
        assert_eq!(shown_state, state, "job {id} on {page}");
        assert!(!shown.is_empty(), "job {id} on {page} offers something");
        assert_eq!(listed(&socket), shown, "job {id} on {page}: socket vs page");
        assert_eq!(listed(&over_bus), shown, "job {id} on {page}: bus vs page");
    }
    // A job leaves a page it no longer belongs on.
    assert_eq!(desk.get(&format!("/cards/drafts/{queued}")).status, 204);
}

/// A post shows on the queue with its jobs, and Publish all releases them together.
#[test]
fn a_held_post_is_released_whole_from_the_queue() {
    let env = TestEnv::new("desk-post");
    let second = env.root().join("second");
    std::fs::create_dir_all(&second).unwrap();
    env.write_config(&format!(
        "[destinations.second]\nkind = \"dir\"\npath = {}\n",
        upq_tests::env::toml_string(&second)
    ));
    let _daemon = env.start_daemon();
    let video = env.source("together.mp4", MIB);
    let post = env.ctl_json([
        "add",
        &video.path.display().to_string(),
        "--to",
        "local",
        "--to",
        "second",
        "--hold",
        "--title",
        "Both at once",
    ]);
    let ids = upq_tests::post_job_ids(&post);
    assert_eq!(ids.len(), 2, "{post}");
    for id in &ids {
        wait_for(Duration::from_secs(30), "held jobs", || {
            (env.job(*id).state == JobState::Held).then_some(())
        });
    }
    let desk = DeskSession::sign_in(&env);
    let queue = body_text(&desk.get("/"));
    assert!(queue.contains("Post p1: Both at once"), "{queue}");
    assert!(queue.contains("data-action=\"publish-post\""), "{queue}");
    let released = desk.post("/posts/p1/publish", &[]);
    assert_eq!(released.status, 303, "{}", body_text(&released));
    for id in ids {
        env.wait_published(id, 30);
    }
    let after = body_text(&desk.get("/"));
    assert!(
        !after.contains("Post p1"),
        "a finished post leaves the queue: {after}"
    );
}

/// The Accounts page signs a destination in through the platform's own page (the browser
/// is sent there, and comes back to upqd) and out again.
#[test]
fn the_accounts_page_signs_in_and_out() {
    let (env, server) = upq_tests::youtube::world::signin_world("desk-accounts");
    let _daemon = env.start_daemon();
    let desk = DeskSession::sign_in(&env);
    let page = body_text(&desk.get("/accounts"));
    assert!(page.contains("youtube · Google"), "{page}");
    assert!(page.contains("signed out"), "{page}");
    assert!(page.contains("data-action=\"login\""), "{page}");
    assert!(!page.contains("data-action=\"logout\""), "{page}");

    let start = desk.post("/accounts/youtube/login", &[]);
    assert_eq!(start.status, 303, "{}", body_text(&start));
    let to = start
        .header("location")
        .expect("to the platform")
        .to_owned();
    assert!(to.starts_with(&server.auth_url()), "{to}");
    let (_, landed) = upq_tests::signin::consent(&to);
    assert_eq!(landed.status, 200, "{}", body_text(&landed));
    wait_for(Duration::from_secs(30), "the account signed in", || {
        (env.ctl_json(["accounts"])[0]["state"] == "signed_in").then_some(())
    });
    let page = body_text(&desk.get("/accounts"));
    assert!(page.contains("signed in"), "{page}");
    assert!(page.contains("data-action=\"logout\""), "{page}");
    assert!(!page.contains(&server.token()), "no token on the page");

    let out = desk.post("/accounts/youtube/logout", &[]);
    assert_eq!(out.status, 303, "{}", body_text(&out));
    assert_eq!(out.header("location"), Some("/accounts"));
    assert_eq!(env.ctl_json(["accounts"])[0]["state"], "signed_out");
}

/// `upqctl open` hands the browser (here a stand-in `xdg-open`) an address that signs in
/// once; where no browser starts, it prints the address instead.
#[test]
fn upqctl_open_gives_the_browser_a_sign_in_address() {
    let env = TestEnv::new("desk-open");
    let _daemon = env.start_daemon();
    let (bin, opened) = upq_tests::signin::fake_browser(&env);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    env.set_var("PATH", &path);
    let out = env.ctl(["open"]);
    out.assert_ok("upqctl open");
    assert!(
        out.stdout_text().is_empty(),
        "the browser got it: {}",
        out.stdout_text()
    );
    let url = std::fs::read_to_string(&opened).expect("xdg-open was run");
    let url = url.trim();
    assert!(url.contains("/login?token="), "{url}");
    assert_eq!(http::request("GET", url, &[], &[]).unwrap().status, 303);

    // A browser that does not start: the address is printed, with why.
    std::fs::write(bin.join("xdg-open"), "#!/bin/sh\nexit 3\n").unwrap();
    let out = env.ctl(["open"]);
    out.assert_ok("upqctl open without a browser");
    assert!(
        out.stderr_text().contains("cannot start a browser"),
        "{}",
        out.stderr_text()
    );
    let printed = out.stdout_text();
    assert!(printed.trim().contains("/login?token="), "{printed}");
    assert_eq!(
        http::request("GET", printed.trim(), &[], &[])
            .unwrap()
            .status,
        303
    );
}

/// `[web] port` is the port; when something else holds it, the daemon runs on without the
/// desk and says why, and `status` shows the desk as off.
#[test]
fn a_configured_port_is_used_and_a_taken_one_is_said() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let env = TestEnv::new("desk-configured-port");
    env.write_config(&format!("[web]\nport = {port}\n"));
    let daemon = env.start_daemon();
    assert_eq!(
        daemon.desk_url(),
        Some(format!("http://127.0.0.1:{port}/")),
        "{}",
        daemon.ready_line
    );

    let other = TestEnv::new("desk-taken-port");
    other.write_config(&format!("[web]\nport = {port}\n"));
    let second = other.start_daemon();
    assert_eq!(second.desk_url(), None, "{}", second.ready_line);
    assert_eq!(
        other.ctl_json(["status"])["web_url"],
        serde_json::Value::Null
    );
    let log = second.log();
    assert!(
        log.contains("the desk is off") && log.contains(&port.to_string()),
        "{log}"
    );
    // The queue itself works.
    let id = other.add(&other.source("still.mp4", MIB), &[]);
    other.wait_published(id, 30);
}
