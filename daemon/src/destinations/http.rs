//! HTTP helpers the network destinations share: redacted URLs, error wording, idle timeouts.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Url;

use super::DestError;
use crate::pacer::Progress;

/// A URL fit for messages and logs: no query string, no user info.
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.to_string()
}

pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = header_str(headers, "retry-after")?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

pub fn network_error(what: &str, url: &Url, e: &reqwest::Error) -> DestError {
    let cause = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        format!("cannot connect: {}", root_cause(e))
    } else {
        root_cause(e)
    };
    DestError::transient("network", format!("{what} {}: {cause}", redact(url)))
}

pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Waits until no byte has moved for `timeout`.
pub async fn idle(progress: &Progress, timeout: Duration) {
    loop {
        let moved = progress.moved.notified();
        tokio::pin!(moved);
        moved.as_mut().enable();
        if tokio::time::timeout(timeout, moved).await.is_err() {
            return;
        }
    }
}

/// The HTTP client of destination `name`: its timeouts, upq's user agent.
pub fn client(
    name: &str,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> Result<reqwest::Client, super::BuildError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .read_timeout(io_timeout)
        .user_agent(concat!("upq/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|source| super::BuildError::Http {
            name: name.to_string(),
            source,
        })
}
