//! The browser's side of a sign-in, for end-to-end tests: `upqctl login DEST --no-browser`
//! running, the consent followed from the authorization page to upqd's loopback address, and
//! a stand-in `xdg-open` that records what it is asked to open.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::env::TestEnv;
use crate::form;
use crate::{bins, http, wait_for};

/// How long one step of a sign-in may take.
pub const STEP: Duration = Duration::from_secs(30);

/// `upqctl login DEST --no-browser`, running: its first stdout line is the URL.
pub struct Login {
    child: Child,
    /// Kept open: upqctl writes its result here after the URL.
    stdout: BufReader<std::process::ChildStdout>,
    pub url: String,
}

impl Login {
    pub fn start(env: &TestEnv, destination: &str, extra: &[&str]) -> Login {
        let mut cmd = Command::new(bins::upqctl());
        cmd.arg("--socket")
            .arg(env.socket_path())
            .args(["login", destination, "--no-browser"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        env.apply_env(&mut cmd);
        let mut child = cmd.spawn().expect("spawn upqctl login");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        stdout.read_line(&mut line).expect("read the URL line");
        let url = line.trim().to_string();
        assert!(
            url.starts_with("http://"),
            "the first line of `login --no-browser` is the URL, got {url:?}"
        );
        Login { child, stdout, url }
    }

    /// Waits for upqctl to end; its status and stderr (after the rest of its stdout).
    pub fn finish(mut self) -> (ExitStatus, String) {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.stdout, &mut rest);
        let status = wait_for(STEP, "upqctl login to end", || {
            self.child.try_wait().expect("poll upqctl")
        });
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
        }
        (status, stderr)
    }
}

impl Drop for Login {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The browser's part: open the authorization URL, follow the consent's redirect to the
/// loopback address. Returns the redirect target and the page upqd answered there.
pub fn consent(url: &str) -> (String, http::Response) {
    let page = http::request("GET", url, &[], b"").expect("the authorization page answers");
    assert_eq!(
        page.status,
        302,
        "the authorization endpoint redirects after consent: {}",
        String::from_utf8_lossy(&page.body)
    );
    let location = page
        .header("location")
        .expect("a redirect carries Location")
        .to_string();
    let landed = http::request("GET", &location, &[], b"").expect("upqd's loopback answers");
    (location, landed)
}

/// A full sign-in of `destination` through the flow; asserts it worked.
pub fn sign_in(env: &TestEnv, destination: &str) {
    let login = Login::start(env, destination, &[]);
    let (_, landed) = consent(&login.url);
    let page = String::from_utf8_lossy(&landed.body).to_string();
    assert_eq!(landed.status, 200, "{page}");
    assert!(
        page.contains("signed in") && page.contains("close this tab"),
        "{page}"
    );
    let (status, stderr) = login.finish();
    assert_eq!(status.code(), Some(0), "login: {stderr}");
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| form::decode(value).expect("a percent-encoded value"))
    })
}

/// A fake `xdg-open` that records what it was asked to open.
pub fn fake_browser(env: &TestEnv) -> (PathBuf, PathBuf) {
    let bin = env.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let opened = env.root().join("opened.txt");
    let script = bin.join("xdg-open");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n",
            opened.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, opened)
}
