//! The fault-injecting TCP proxy on its own: forwarding, cuts mid-body, blackholes,
//! refusals, delays and shutdown, against the real tus server and without upqd.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use upq_tests::http::{self, tus_create, tus_head, tus_patch};
use upq_tests::proxy::Mode;
use upq_tests::{wait_until, Proxy, TestEnv, TusServer, MIB};

fn create_through(proxy: &Proxy, size: u64) -> String {
    let created = tus_create(&proxy.url("/files/"), size, "").unwrap();
    assert_eq!(created.status, 201, "{created:?}");
    created.header("location").unwrap().to_string()
}

#[test]
fn forwards_both_ways_and_counts() {
    let env = TestEnv::new("infra-proxy-forward");
    let server = TusServer::start(&env);
    let proxy = Proxy::start(server.addr());
    assert_eq!(proxy.mode(), Mode::Forward);

    let url = create_through(&proxy, 2 * MIB);
    assert!(
        url.starts_with(&proxy.url("/files/")),
        "the Location names the proxy, as the Host header did: {url}"
    );
    let data = vec![0x5A; 2 * MIB as usize];
    let patched = tus_patch(&url, 0, &data).unwrap();
    assert_eq!(patched.upload_offset(), Some(2 * MIB), "{patched:?}");
    assert_eq!(server.only_upload().received(), 2 * MIB);
    assert!(proxy.connections() >= 2);
    assert!(proxy.bytes_up() > 2 * MIB, "{}", proxy.bytes_up());
    assert!(proxy.bytes_down() > 0);
    wait_until(
        Duration::from_secs(5),
        "closed connections to be forgotten",
        || proxy.open_connections() == 0,
    );
}

#[test]
fn cuts_the_connection_mid_body_n_times() {
    let env = TestEnv::new("infra-proxy-cut");
    let server = TusServer::start(&env);
    let proxy = Proxy::start(server.addr());
    let url = create_through(&proxy, 4 * MIB);
    let data = vec![0xC3; 4 * MIB as usize];

    proxy.cut_after(256 * 1024, 2);
    assert_eq!(proxy.cuts_pending(), 2);
    for round in 1..=2 {
        let offset = tus_head(&server.direct_url(&url))
            .unwrap()
            .upload_offset()
            .unwrap();
        let result = tus_patch(&url, offset, &data[offset as usize..]);
        assert!(
            result.is_err(),
            "round {round}: the cut PATCH got an answer: {result:?}"
        );
        assert_eq!(proxy.cuts_done(), round);
    }
    assert_eq!(proxy.cuts_pending(), 0);
    // The server kept what reached it before each cut; the client goes on from there.
    let offset = tus_head(&server.direct_url(&url))
        .unwrap()
        .upload_offset()
        .unwrap();
    assert!(
        offset > 0 && offset < 4 * MIB,
        "offset after two cuts: {offset}"
    );
    let rest = tus_patch(&url, offset, &data[offset as usize..]).unwrap();
    assert_eq!(rest.upload_offset(), Some(4 * MIB), "{rest:?}");
    assert_eq!(std::fs::read(server.only_upload().data_path).unwrap(), data);
}

#[test]
fn blackhole_moves_nothing_until_forwarding_resumes() {
    let env = TestEnv::new("infra-proxy-blackhole");
    let server = TusServer::start(&env);
    let proxy = Proxy::start(server.addr());
    let url = create_through(&proxy, 1000);

    // A connection opened before the blackhole is caught by it too.
    let mut early = TcpStream::connect(proxy.addr()).unwrap();
    proxy.blackhole();
    let up_before = proxy.bytes_up();
    let started = Instant::now();
    let result = http::request_with_timeout(
        "HEAD",
        &url,
        &[("Tus-Resumable", "1.0.0")],
        &[],
        Duration::from_millis(700),
    );
    assert!(
        result.is_err(),
        "a blackholed request got an answer: {result:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(600));
    write!(early, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    early
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        early.read(&mut byte).is_err(),
        "nothing comes back through a blackhole"
    );
    assert_eq!(proxy.bytes_up(), up_before, "nothing went up either");

    proxy.forward();
    let head = tus_head(&url).unwrap();
    assert_eq!(head.status, 200, "{head:?}");
    // The connection caught by the blackhole stays dead: it is reset, not revived.
    early
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(matches!(early.read(&mut byte), Ok(0) | Err(_)));
}

#[test]
fn refuse_resets_everything_until_forwarding_resumes() {
    let env = TestEnv::new("infra-proxy-refuse");
    let server = TusServer::start(&env);
    let proxy = Proxy::start(server.addr());
    let url = create_through(&proxy, 1000);

    proxy.refuse();
    let started = Instant::now();
    let result = tus_head(&url);
    assert!(
        result.is_err(),
        "a refused request got an answer: {result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refusal should be quick"
    );
    assert!(proxy.refused() >= 1);

    proxy.forward();
    assert_eq!(tus_head(&url).unwrap().status, 200);
}

#[test]
fn delay_slows_each_exchange() {
    let env = TestEnv::new("infra-proxy-delay");
    let server = TusServer::start(&env);
    let proxy = Proxy::start(server.addr());
    let url = create_through(&proxy, 1000);
    proxy.set_delay(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(tus_head(&url).unwrap().status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    proxy.set_delay(Duration::ZERO);
}

#[test]
fn drop_stops_listening_and_closes_connections() {
    let env = TestEnv::new("infra-proxy-drop");
    let server = TusServer::start(&env);
    let proxy = Proxy::start(server.addr());
    let addr = proxy.addr();
    let mut open = TcpStream::connect(addr).unwrap();
    wait_until(
        Duration::from_secs(5),
        "the connection to be accepted",
        || proxy.open_connections() == 1,
    );
    drop(proxy);
    open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut byte = [0u8; 1];
    assert!(
        matches!(open.read(&mut byte), Ok(0) | Err(_)),
        "the open connection is closed"
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens after drop"
    );
}
