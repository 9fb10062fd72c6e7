//! Hostile and careless socket clients: bad JSON, unknown methods, huge or deep lines,
//! half-sent lines and many connections at once. The daemon answers or hangs up, never dies.

use std::io::{ErrorKind, Write};
use std::net::Shutdown;
use std::sync::{Arc, Barrier};

use serde_json::Value;
use upq_tests::{Client, Daemon, OutputExt, TestEnv};

fn start(name: &str) -> TestEnv {
    // These tests also cover the daemon's and upqctl's --socket flag.
    TestEnv::with_socket_flag(name)
}

fn connect(env: &TestEnv) -> Client {
    let client = Client::connect(&env.socket_path()).expect("connect");
    assert_eq!(
        client.hello["result"]["data"]["protocol"], 1,
        "{}",
        client.hello
    );
    client
}

fn assert_error(response: &Value, code: &str) {
    assert_eq!(response["error"]["code"], code, "{response}");
    assert!(
        response["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "an error says what is wrong: {response}"
    );
}

fn assert_status_works(client: &mut Client) {
    let status = client
        .call("status", None)
        .expect("status over the same connection")
        .expect("status succeeds");
    assert!(status["version"].is_string(), "{status}");
}

fn assert_healthy(env: &TestEnv, daemon: &mut Daemon) {
    env.ctl(["status"]).assert_ok("upqctl status");
    assert!(daemon.is_running(), "upqd died");
}

#[test]
fn non_json_line_gets_bad_request_and_connection_survives() {
    let env = start("bad-json");
    let mut daemon = env.start_daemon();
    let mut client = connect(&env);

    client.send_raw(b"this is not json\n").unwrap();
    let response = client.read_json().unwrap();
    assert_error(&response, "bad_request");
    assert_status_works(&mut client);

    client.send_raw(b"{\"id\": 3, \"method\": \n").unwrap();
    assert_error(&client.read_json().unwrap(), "bad_request");
    assert_status_works(&mut client);
    assert_healthy(&env, &mut daemon);
}

#[test]
fn unknown_method_and_bad_params_keep_the_request_id() {
    let env = start("bad-method");
    let mut daemon = env.start_daemon();
    let mut client = connect(&env);

    client.send_raw(b"{\"id\":5,\"method\":\"fly\"}\n").unwrap();
    let response = client.read_json().unwrap();
    assert_eq!(response["id"], 5, "{response}");
    assert_error(&response, "unknown_method");

    client
        .send_raw(b"{\"id\":7,\"method\":\"show\",\"params\":{\"id\":\"x\"}}\n")
        .unwrap();
    let response = client.read_json().unwrap();
    assert_eq!(response["id"], 7, "{response}");
    assert_error(&response, "bad_request");

    assert_status_works(&mut client);
    assert_healthy(&env, &mut daemon);
}

#[test]
fn two_mebibyte_line_is_refused() {
    let env = start("long-line");
    let mut daemon = env.start_daemon();
    let mut client = connect(&env);

    let mut writer = client.stream().try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut line = vec![b'x'; 2 * 1024 * 1024];
        line.push(b'\n');
        // The daemon may hang up part way through; that is an allowed answer.
        writer.write_all(&line)
    });
    match client.read_line() {
        Ok(Some(line)) => {
            let response: Value = serde_json::from_str(&line).expect("an error line is JSON");
            assert_error(&response, "line_too_long");
        }
        Ok(None) => {}
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "expected an error line or a closed connection, got {e}"
        ),
    }
    let _ = sender.join().expect("writer thread");
    assert_healthy(&env, &mut daemon);
}

#[test]
fn deeply_nested_json_is_an_error() {
    let env = start("deep-json");
    let mut daemon = env.start_daemon();
    let mut client = connect(&env);

    let mut line = vec![b'['; 100_000];
    line.push(b'\n');
    client.send_raw(&line).unwrap();
    let response = client.read_json().expect("an error response");
    assert_error(&response, "bad_request");
    assert_healthy(&env, &mut daemon);
}

#[test]
fn connection_closed_mid_line_is_harmless() {
    let env = start("half-line");
    let mut daemon = env.start_daemon();

    let mut client = connect(&env);
    client.send_raw(b"{\"id\":1,\"method\":\"sta").unwrap();
    client.stream().shutdown(Shutdown::Both).unwrap();
    drop(client);

    // Also one that never sends anything and one that hangs up before reading the hello.
    drop(connect(&env));
    drop(std::os::unix::net::UnixStream::connect(env.socket_path()).unwrap());

    let mut fresh = connect(&env);
    assert_status_works(&mut fresh);
    assert_healthy(&env, &mut daemon);
}

#[test]
fn two_hundred_connections_at_once() {
    const CONNECTIONS: usize = 200;
    let env = start("many-conns");
    let mut daemon = env.start_daemon();
    let socket = env.socket_path();
    let all_connected = Arc::new(Barrier::new(CONNECTIONS));

    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let socket = socket.clone();
            let all_connected = Arc::clone(&all_connected);
            std::thread::spawn(move || -> Result<(), String> {
                // Everyone connects and reads the hello before anyone asks for status.
                let client = Client::connect(&socket);
                all_connected.wait();
                let mut client = client.map_err(|e| format!("connect and hello: {e}"))?;
                let status = client
                    .call("status", None)
                    .map_err(|e| format!("status: {e}"))?
                    .map_err(|e| format!("status refused: {e}"))?;
                if status["version"].is_string() {
                    Ok(())
                } else {
                    Err(format!("odd status: {status}"))
                }
            })
        })
        .collect();
    let failures: Vec<String> = workers
        .into_iter()
        .filter_map(|worker| worker.join().expect("worker thread").err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    assert_healthy(&env, &mut daemon);
}
