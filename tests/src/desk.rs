//! The desk from outside: a signed-in HTTP session over the tiny client, for the security
//! tests, and a headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`), for the tests of what a person does on the pages.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::env::{OutputExt, TestEnv};
use crate::form::encode;
use crate::http::{self, Response};

/// A browser's sign-in at the desk, as `upqctl open --no-browser` gives it, over HTTP.
pub struct DeskSession {
    /// `http://127.0.0.1:PORT/`.
    pub base: String,
    /// `upq_session=…`, as the browser would send it back.
    pub cookie: String,
    /// The session's CSRF token, read from a page.
    pub csrf: String,
}

/// The one-time sign-in address `upqctl open --no-browser` prints.
pub fn sign_in_url(env: &TestEnv) -> String {
    let out = env.ctl(["open", "--no-browser"]);
    out.assert_ok("upqctl open --no-browser");
    let url = out.stdout_text().lines().next().unwrap_or("").to_owned();
    assert!(
        url.contains("/login?token="),
        "not a sign-in address: {url:?}"
    );
    url
}

/// `http://127.0.0.1:PORT/login?token=…` → `http://127.0.0.1:PORT/`.
pub fn base_of(url: &str) -> String {
    let (base, _) = url.split_once("login?").expect("a sign-in address");
    base.to_owned()
}

/// `127.0.0.1:PORT` of a desk address.
pub fn authority_of(base: &str) -> String {
    http::split_url(base).0
}

impl DeskSession {
    /// Signs in with a fresh one-time address and reads the CSRF token off the queue page.
    pub fn sign_in(env: &TestEnv) -> DeskSession {
        let url = sign_in_url(env);
        let answer = http::request("GET", &url, &[], &[]).expect("GET the sign-in address");
        assert_eq!(answer.status, 303, "{}", body_text(&answer));
        let set_cookie = answer.header("set-cookie").expect("a session cookie");
        let cookie = set_cookie.split(';').next().unwrap().trim().to_owned();
        let mut session = DeskSession {
            base: base_of(&url),
            cookie,
            csrf: String::new(),
        };
        let page = session.get("/");
        assert_eq!(page.status, 200, "{}", body_text(&page));
        let text = body_text(&page);
        let (_, rest) = text
            .split_once("data-csrf=\"")
            .expect("the page carries its CSRF token");
        session.csrf = rest.split('"').next().unwrap().to_owned();
        session
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path.trim_start_matches('/'))
    }

    /// GET with the session's cookie.
    pub fn get(&self, path: &str) -> Response {
        self.get_with(path, &[])
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut all = vec![("Cookie", self.cookie.as_str())];
        all.extend_from_slice(headers);
        http::request("GET", &self.url(path), &all, &[]).expect("GET the desk")
    }

    /// POSTs `fields` as a form with the session's cookie and the given extra headers; the
    /// CSRF token only if the caller puts it in.
    pub fn post_raw(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Response {
        let body = fields
            .iter()
            .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        let mut all = vec![
            ("Cookie", self.cookie.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        all.extend_from_slice(headers);
        http::request("POST", &self.url(path), &all, body.as_bytes()).expect("POST to the desk")
    }

    /// POSTs as the desk's own page does: the CSRF token, and the page's origin.
    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        let origin = self.base.trim_end_matches('/').to_owned();
        self.post_raw(path, &all, &[("Origin", &origin)])
    }
}

pub fn body_text(response: &Response) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

/// Where the desk tests put their screenshots: `target/desk-screenshots`.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/desk-screenshots");
    std::fs::create_dir_all(&dir).expect("create the screenshot folder");
    dir
}

/// A headless Chromium under its own chromedriver, both ended on drop.
pub struct Browser {
    driver: Child,
    pub client: Client,
    _profile: tempfile::TempDir,
}

/// Fails the test with what to install unless chromedriver and chromium can run.
fn require_chromium() {
    for (tool, package) in [
        ("chromedriver", "chromium-driver"),
        ("chromium", "chromium"),
    ] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            found,
            "the desk's browser tests need {tool}; install it (scripts/check does: apt-get install {package})"
        );
    }
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session of `width` x
    /// `height`; `extra_args` go to Chromium (`--force-dark-mode`, say).
    pub async fn start(width: u32, height: u32, extra_args: &[&str]) -> Browser {
        require_chromium();
        // Its own process group, so Chromium ends with it even when a test fails midway.
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let stdout = driver.stdout.take().unwrap();
        let (found, port) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split_once("started successfully on port ") {
                    let port: u16 = rest.1.trim_end_matches('.').parse().unwrap_or(0);
                    if !sent {
                        let _ = found.send(port);
                        sent = true;
                    }
                }
            }
        });
        let port = port
            .recv_timeout(Duration::from_secs(30))
            .expect("chromedriver says its port");
        let profile = tempfile::Builder::new()
            .prefix("upq-chromium-")
            .tempdir()
            .expect("a profile folder");
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            "--mute-audio".to_owned(),
            "--autoplay-policy=no-user-gesture-required".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
        });
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = loop {
            match ClientBuilder::new(connector.clone())
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("chromium not ready yet: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot start a Chromium session: {e}"),
            }
        };
        Browser {
            driver,
            client,
            _profile: profile,
        }
    }

    /// Runs `script` (a function body) and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until `script` returns something truthy, and returns it.
    pub async fn wait_js(&self, what: &str, timeout: Duration, script: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(script).await;
            let truthy = !matches!(value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the element `css` names.
    pub async fn click(&self, css: &str) {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Saves a screenshot as `target/desk-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// Ends the session, then chromedriver.
    pub async fn close(self) {
        let client = self.client.clone();
        let _ = client.close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the process group of the chromedriver this harness started: it and the
        // Chromium it ran, nothing else.
        // SAFETY: kill has no memory-safety preconditions; the group is our child's own.
        unsafe {
            libc::kill(-(self.driver.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

/// Serves `page` as HTML at every path of its own loopback port: a page of another origin.
/// Start it off the test's runtime (`spawn_blocking`): it runs one of its own.
pub fn serve_html(page: String) -> crate::serve::HttpServer {
    use crate::serve::{CloseWith, HttpServer};
    let page = bytes::Bytes::from(page);
    HttpServer::start("other-origin", CloseWith::Fin, move |_| {
        move |_request, _closer| {
            let page = page.clone();
            async move {
                hyper::Response::builder()
                    .header("content-type", "text/html; charset=utf-8")
                    .body(http_body_util::Full::new(page))
                    .expect("a response")
            }
        }
    })
}
