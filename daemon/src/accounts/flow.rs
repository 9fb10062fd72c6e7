//! The sign-in itself: a loopback listener (RFC 8252 §7.3) for the browser's return, a fresh
//! `state` and PKCE verifier (RFC 7636) per attempt, the authorization URL, and the one code
//! exchange an attempt may make.
//!
//! Only the first callback that carries the attempt's `state` is used; anything else gets a
//! page saying nothing was done and never reaches the token endpoint. The listener closes when
//! the attempt ends (done, failed, superseded or timed out), so a replay or a late callback
//! finds nobody listening.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{Account, LoginOutcome};

/// The longest request head a browser's callback may send.
const MAX_HEAD: usize = 16 * 1024;
/// How long one connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// RFC 7636 §4.1: the verifier's unreserved characters.
const UNRESERVED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

/// A started sign-in: the URL to open and its attempt number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginStarted {
    pub url: String,
    pub attempt: u64,
}

/// The account's sign-in bookkeeping.
#[derive(Default)]
pub(super) struct LoginSlot {
    attempt: u64,
    running: Option<CancellationToken>,
    last: Option<LoginOutcome>,
}

fn random_text(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| UNRESERVED[rng.random_range(0..UNRESERVED.len())] as char)
        .collect()
}

/// The loopback address, port and path of a `redirect_uri`.
fn loopback(redirect_uri: &str) -> Result<(String, u16, String), String> {
    let url = Url::parse(redirect_uri).map_err(|e| format!("redirect_uri: {e}"))?;
    if url.scheme() != "http" {
        return Err("redirect_uri must be an http:// loopback address".to_string());
    }
    let host = match url.host_str() {
        Some(host @ ("127.0.0.1" | "localhost" | "[::1]")) => host.to_string(),
        _ => {
            return Err(
                "redirect_uri must point at 127.0.0.1, [::1] or localhost (RFC 8252 §7.3)"
                    .to_string(),
            )
        }
    };
    Ok((host, url.port().unwrap_or(80), url.path().to_string()))
}

impl Account {
    /// Starts a sign-in: binds the listener, makes `state` and the verifier, and returns the
    /// authorization URL. A sign-in still running for this account is ended first.
    pub async fn start_login(self: &Arc<Self>, timeout: Duration) -> Result<LoginStarted, String> {
        let settings = self.settings();
        let (host, port, path) = loopback(&settings.redirect_uri)?;
        let bind_host = if host == "localhost" {
            "127.0.0.1"
        } else {
            host.trim_matches(['[', ']'])
        };
        let listener = TcpListener::bind((bind_host, port))
            .await
            .map_err(|e| format!("cannot listen on {host}:{port} for the sign-in's return: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let redirect_uri = format!("http://{host}:{port}{path}");
        let state = random_text(32);
        let verifier = random_text(64);
        let mut url = settings.auth_url.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair(settings.provider.client_param, &settings.client_id)
                .append_pair("response_type", "code")
                .append_pair(
                    "scope",
                    &settings.scopes.join(settings.provider.scope_separator),
                )
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("state", &state)
                .append_pair("code_challenge", &settings.provider.challenge.of(&verifier))
                .append_pair("code_challenge_method", "S256");
            for (key, value) in settings.provider.extra_auth_params {
                query.append_pair(key, value);
            }
        }
        let cancel = CancellationToken::new();
        let attempt = {
            let mut login = self.login.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(previous) = login.running.replace(cancel.clone()) {
                previous.cancel();
            }
            login.attempt += 1;
            login.attempt
        };
        let account = self.clone();
        let pending = Pending {
            state,
            verifier,
            redirect_uri,
            path,
        };
        tokio::spawn(async move {
            let outcome = tokio::select! {
                outcome = account.serve(listener, &pending) => outcome,
                _ = cancel.cancelled() => (false, false, "a newer sign-in replaced this one".to_string()),
                _ = tokio::time::sleep(timeout) => (
                    false,
                    true,
                    format!("the sign-in was not finished within {}", humantime::format_duration(timeout)),
                ),
            };
            account.finish(attempt, outcome);
        });
        Ok(LoginStarted {
            url: url.to_string(),
            attempt,
        })
    }

    fn finish(&self, attempt: u64, (ok, timed_out, message): (bool, bool, String)) {
        let outcome = LoginOutcome {
            destination: self.destination.clone(),
            attempt,
            ok,
            timed_out,
            message,
        };
        {
            let mut login = self.login.lock().unwrap_or_else(|p| p.into_inner());
            if login.attempt == attempt {
                login.running = None;
            }
            login.last = Some(outcome.clone());
        }
        if ok {
            tracing::info!(destination = %self.destination, "signed in");
        } else {
            tracing::warn!(destination = %self.destination, message = %outcome.message, "sign-in ended without success");
        }
        let _ = self.shared.finished.send(outcome);
    }

    /// Waits for the end of sign-in `attempt` (at once if it already ended).
    pub async fn wait_login(&self, attempt: u64) -> LoginOutcome {
        let mut finished = self.shared.finished.subscribe();
        let ended = |login: &LoginSlot| {
            login
                .last
                .clone()
                .filter(|last| last.attempt >= attempt)
                .or_else(|| {
                    (login.attempt < attempt).then(|| LoginOutcome {
                        destination: self.destination.clone(),
                        attempt,
                        ok: false,
                        timed_out: false,
                        message: format!("no sign-in {attempt} was started"),
                    })
                })
        };
        if let Some(done) = ended(&self.login.lock().unwrap_or_else(|p| p.into_inner())) {
            return done;
        }
        loop {
            match finished.recv().await {
                Ok(outcome)
                    if outcome.destination == self.destination && outcome.attempt >= attempt =>
                {
                    return outcome
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if let Some(done) = ended(&self.login.lock().unwrap_or_else(|p| p.into_inner()))
                    {
                        return done;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// Serves the listener until a callback with the right `state` ends the attempt.
    async fn serve(&self, listener: TcpListener, pending: &Pending) -> (bool, bool, String) {
        let (callbacks, mut received) = mpsc::channel::<Callback>(8);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        tokio::spawn(read_callback(stream, callbacks.clone()));
                    }
                }
                Some(callback) = received.recv() => {
                    if let Some(end) = self.answer(callback, pending).await {
                        return end;
                    }
                }
            }
        }
    }

    /// Answers one request; `Some` when it ended the attempt.
    async fn answer(&self, callback: Callback, pending: &Pending) -> Option<(bool, bool, String)> {
        let provider = self.settings().provider.display;
        let Callback { target, reply } = callback;
        let url = Url::parse(&format!("http://loopback{target}")).ok();
        let same_path = url
            .as_ref()
            .is_some_and(|u| u.path().trim_end_matches('/') == pending.path.trim_end_matches('/'));
        if !same_path {
            let _ = reply.send(Page::not_found());
            return None;
        }
        let url = url?;
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let state_ok = param("state").is_some_and(|s| constant_time_eq(&s, &pending.state));
        if !state_ok {
            tracing::warn!(destination = %self.destination, "a sign-in callback without this sign-in's state was refused");
            let _ = reply.send(Page::new(
                400,
                "Sign-in refused",
                "This address does not belong to the sign-in upq started, so nothing was done. Start the sign-in again from upq if you meant to sign in.",
            ));
            return None;
        }
        if let Some(error) = param("error") {
            let description = param("error_description").unwrap_or_default();
            let message = if description.is_empty() {
                format!("{provider} did not sign you in: {error}")
            } else {
                format!("{provider} did not sign you in: {error}: {description}")
            };
            let _ = reply.send(Page::new(
                200,
                "Sign-in did not work",
                &format!("{message}. You can close this tab."),
            ));
            return Some((false, false, message));
        }
        let Some(code) = param("code").filter(|c| !c.is_empty()) else {
            let message = format!("{provider} sent the browser back without a code");
            let _ = reply.send(Page::new(400, "Sign-in did not work", &message));
            return Some((false, false, message));
        };
        let settings = self.settings();
        let client = self.token_client(&settings);
        let result = match client
            .redeem(&code, &pending.redirect_uri, &pending.verifier, self.now())
            .await
        {
            Ok(tokens) => self.signed_in(tokens).await,
            Err(e) => Err(format!("{provider} refused the sign-in's code: {e}")),
        };
        let end = match result {
            Ok(()) => {
                let who = self
                    .view()
                    .await
                    .display_name
                    .map(|name| format!(" as {name}"))
                    .unwrap_or_default();
                let message = format!(
                    "signed in to {provider}{who} for destination '{}'",
                    self.destination
                );
                let _ = reply.send(Page::new(
                    200,
                    "Signed in",
                    &format!("upq is signed in to {provider}{who}. You can close this tab."),
                ));
                (true, false, message)
            }
            Err(message) => {
                let _ = reply.send(Page::new(
                    200,
                    "Sign-in did not work",
                    &format!("{message}. You can close this tab and try again."),
                ));
                (false, false, message)
            }
        };
        Some(end)
    }
}

/// What one attempt is waiting for.
struct Pending {
    state: String,
    verifier: String,
    redirect_uri: String,
    path: String,
}

impl Drop for Pending {
    fn drop(&mut self) {
        // SAFETY: zero bytes are valid UTF-8.
        unsafe { self.verifier.as_mut_vec() }.fill(0);
    }
}

struct Callback {
    /// The request target (`/callback/?code=…`).
    target: String,
    reply: oneshot::Sender<Page>,
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Reads one request head, hands its target over, and writes the page it is given.
async fn read_callback(mut stream: TcpStream, callbacks: mpsc::Sender<Callback>) {
    let mut head = Vec::with_capacity(1024);
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        let mut buf = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return;
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.lines().next().unwrap_or_default().split(' ');
    let page = match (words.next(), words.next()) {
        (Some("GET"), Some(target)) if target.starts_with('/') => {
            let (reply, page) = oneshot::channel();
            let sent = callbacks
                .send(Callback {
                    target: target.to_string(),
                    reply,
                })
                .await;
            match sent {
                Ok(()) => page.await.unwrap_or_else(|_| Page::finished()),
                Err(_) => Page::finished(),
            }
        }
        _ => Page::new(
            405,
            "Not here",
            "This address only takes the sign-in's return.",
        ),
    };
    let _ = stream.write_all(page.bytes().as_slice()).await;
    let _ = stream.shutdown().await;
}

/// The small page the browser lands on.
struct Page {
    status: u16,
    title: String,
    body: String,
}

impl Page {
    fn new(status: u16, title: &str, body: &str) -> Page {
        Page {
            status,
            title: title.to_string(),
            body: body.to_string(),
        }
    }

    fn not_found() -> Page {
        Page::new(
            404,
            "Not found",
            "This address only takes the sign-in's return.",
        )
    }

    fn finished() -> Page {
        Page::new(
            410,
            "Sign-in already finished",
            "This sign-in has already ended, so nothing was done. You can close this tab.",
        )
    }

    fn bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            410 => "Gone",
            _ => "",
        };
        let html = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>upq: {title}</title></head>\
             <body style=\"font-family:sans-serif;max-width:36em;margin:4em auto\"><h1>{title}</h1><p>{body}</p></body></html>",
            title = escape(&self.title),
            body = escape(&self.body)
        );
        format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n{html}",
            self.status,
            html.len()
        )
        .into_bytes()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_redirects_are_taken() {
        assert_eq!(
            loopback("http://127.0.0.1:0/callback/").unwrap(),
            ("127.0.0.1".to_string(), 0, "/callback/".to_string())
        );
        assert!(loopback("https://127.0.0.1/callback/").is_err());
        assert!(loopback("http://example.com/callback/").is_err());
    }

    #[test]
    fn verifiers_are_long_and_unreserved() {
        let verifier = random_text(64);
        assert_eq!(verifier.len(), 64);
        assert!(verifier.bytes().all(|b| UNRESERVED.contains(&b)));
        assert_ne!(verifier, random_text(64));
    }

    #[test]
    fn pages_escape_what_they_show() {
        let page = Page::new(200, "x", "<script>");
        let text = String::from_utf8(page.bytes()).unwrap();
        assert!(text.contains("&lt;script&gt;"));
        assert!(!text.contains("<script>"));
    }
}
