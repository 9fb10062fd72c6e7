//! Configuration errors: every class stops `upqd` with exit 78 and a message naming the
//! file, the line and the key; on SIGHUP the same message is logged and the old config kept.
//!
//! Each case runs the real `upqd` against its own temporary config file.

use std::time::Duration;

use upq_tests::env::toml_string;
use upq_tests::{Daemon, OutputExt, TestEnv};

/// One refused configuration: the file's text, the line and the key the message must name.
struct Case {
    what: &'static str,
    toml: String,
    line: usize,
    key: &'static str,
}

fn tus(lines: &str) -> String {
    format!("[destinations.v]\nkind = \"tus\"\n{lines}")
}

fn cases(env: &TestEnv) -> Vec<Case> {
    let empty_token = env.root().join("empty.token");
    std::fs::write(&empty_token, "\n").expect("write empty token");
    vec![
        Case {
            what: "a tus endpoint that is not a URL",
            toml: tus("endpoint = \"files.example.com/files\"\n"),
            line: 3,
            key: "destinations.v.endpoint",
        },
        Case {
            what: "a tus endpoint that is not http",
            toml: tus("endpoint = \"ftp://127.0.0.1/files/\"\n"),
            line: 3,
            key: "destinations.v.endpoint",
        },
        Case {
            what: "a header name with a space",
            toml: tus(
                "endpoint = \"http://127.0.0.1:1/files/\"\n\n[destinations.v.headers]\nAccept = \"*/*\"\n\"X Token\" = \"abc\"\n",
            ),
            line: 7,
            key: "destinations.v.headers.X Token",
        },
        Case {
            what: "a header value with a line break",
            toml: tus(
                "endpoint = \"http://127.0.0.1:1/files/\"\nheaders = { Authorization = \"Bearer s3cret\\nX: y\" }\n",
            ),
            line: 4,
            key: "destinations.v.headers.Authorization",
        },
        Case {
            what: "an api_base that does not parse",
            toml: "[destinations.t]\nkind = \"tiktok\"\naccess_token = \"tok\"\n\napi_base = \"https://open tiktok\"\n".into(),
            line: 5,
            key: "destinations.t.api_base",
        },
        Case {
            what: "an api_base that is not http",
            toml: "[destinations.t]\nkind = \"tiktok\"\naccess_token = \"tok\"\napi_base = \"file:///tmp\"\n".into(),
            line: 4,
            key: "destinations.t.api_base",
        },
        Case {
            what: "an empty token file",
            toml: format!(
                "[destinations.t]\nkind = \"tiktok\"\naccess_token_file = {}\n",
                toml_string(&empty_token)
            ),
            line: 3,
            key: "destinations.t.access_token_file",
        },
        Case {
            what: "a value out of range",
            toml: "[daemon]\nnotify = [\"failed\"]\nmax_active = 0\n".into(),
            line: 3,
            key: "daemon.max_active",
        },
        Case {
            what: "a chunk size out of range",
            toml: "[destinations.local]\nkind = \"dir\"\npath = \"/srv/out\"\nchunk_size = \"1KiB\"\n"
                .into(),
            line: 4,
            key: "destinations.local.chunk_size",
        },
        Case {
            what: "a relative folder",
            toml: "[destinations.local]\nkind = \"dir\"\npath = \"out\"\n".into(),
            line: 3,
            key: "destinations.local.path",
        },
        Case {
            what: "a missing environment variable",
            toml: tus(
                "endpoint = \"http://127.0.0.1:1/files/\"\nheaders = { Authorization = \"Bearer ${env:UPQ_TEST_SURELY_UNSET}\" }\n",
            ),
            line: 4,
            key: "destinations.v.headers.Authorization",
        },
        Case {
            what: "a default destination that does not exist",
            toml: "[daemon]\n\ndefault_destination = \"nowhere\"\n".into(),
            line: 3,
            key: "daemon.default_destination",
        },
    ]
}

#[test]
fn every_configuration_error_exits_78_naming_file_line_and_key() {
    let env = TestEnv::new("config-errors");
    let file = env.config_path();
    let file = file.to_str().expect("a UTF-8 path");
    for case in cases(&env) {
        env.write_config(&case.toml);
        let output = Daemon::run_to_exit(&env, &[]);
        let message = output.stderr_text();
        assert_eq!(
            output.status.code(),
            Some(78),
            "{}: exit status\n{message}",
            case.what
        );
        let expected = format!("{file}, line {}: key '{}': ", case.line, case.key);
        assert!(
            message.contains(&expected),
            "{}: the message should contain {expected:?}:\n{message}",
            case.what
        );
        assert!(
            !message.contains("s3cret"),
            "{}: a header value is a secret:\n{message}",
            case.what
        );
        assert!(
            !env.socket_path().exists(),
            "{}: a refused start leaves no socket",
            case.what
        );
    }
}

#[test]
fn sighup_with_a_destination_error_keeps_the_old_config_and_names_the_line() {
    let env = TestEnv::new("config-errors-hup");
    let good = tus("endpoint = \"http://127.0.0.1:1/files/\"\n");
    env.write_config(&good);
    let mut daemon = Daemon::without_bus(&env).start();
    let status = env.ctl_json(["status"]);
    assert_eq!(status["max_active"], 2, "{status}");

    // A limit that would show, and a header the tus destination cannot send.
    env.write_config(&format!(
        "[daemon]\nmax_active = 5\n\n{}\n[destinations.v.headers]\n\"Bad Name\" = \"1\"\n",
        good
    ));
    daemon.signal(libc::SIGHUP);
    let log = daemon.wait_log(Duration::from_secs(10), "configuration not reloaded");
    let at = log
        .find("configuration not reloaded")
        .expect("the text just seen");
    let line = log[at..].lines().next().unwrap_or_default();
    let expected = format!(
        "{}, line 9: key 'destinations.v.headers.Bad Name': ",
        env.config_path().display()
    );
    assert!(
        line.contains(&expected),
        "the reload error should contain {expected:?}: {line}"
    );
    assert!(daemon.is_running(), "a broken config does not stop upqd");
    let status = env.ctl_json(["status"]);
    assert_eq!(status["max_active"], 2, "the old config stays: {status}");
    assert!(
        status["destinations"]
            .as_array()
            .is_some_and(|d| d.iter().any(|name| name == "v")),
        "{status}"
    );
}
