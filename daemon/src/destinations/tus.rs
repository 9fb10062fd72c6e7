//! The `tus` destination: resumable uploads over tus 1.0.0 (creation, termination,
//! checksum and expiration extensions), for Vimeo, Cloudflare Stream, Bunny and the like.
//!
//! Speaks HTTP only; the worker decides about retries from the error classes returned here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde_json::json;
use sha1::Digest;
use tokio::sync::OnceCell;

use super::http::{header_str, idle, network_error, redact, retry_after};
use super::{BuildError, Chunk, DestError, Destination, ErrorClass, Processing, UploadInfo};
use crate::config::checks::{parse_endpoint, parse_headers};
use crate::job::RemoteSession;
use crate::pacer::Pacer;

const TUS_VERSION: &str = "1.0.0";

/// What the server offers, from one OPTIONS request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Capabilities {
    extensions: Vec<String>,
    max_size: Option<u64>,
    checksum: Option<ChecksumAlgorithm>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChecksumAlgorithm {
    Sha256,
    Sha1,
}

impl ChecksumAlgorithm {
    fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha256 => "sha256",
            ChecksumAlgorithm::Sha1 => "sha1",
        }
    }

    #[cfg(test)]
    fn digest(self, data: &[u8]) -> String {
        let engine = base64::engine::general_purpose::STANDARD;
        match self {
            ChecksumAlgorithm::Sha256 => engine.encode(sha2::Sha256::digest(data)),
            ChecksumAlgorithm::Sha1 => engine.encode(sha1::Sha1::digest(data)),
        }
    }
}

/// Without a configured `chunk_size`, the bytes sent apart at the end of an upload: the
/// commit point, which a review window holds back.
pub const FINAL_PIECE: u64 = 1024 * 1024;

/// Without a configured `chunk_size`, the chunk for a server that checks a digest of each.
pub const CHECKSUMMED_CHUNK: u64 = 64 * 1024 * 1024;

/// Settings of one tus destination, with its headers already expanded.
#[derive(Clone)]
pub struct TusSettings {
    pub name: String,
    pub endpoint: String,
    /// Fixed chunks; `None` streams each attempt (see `chunk_len`).
    pub chunk_size: Option<u64>,
    pub headers: Vec<(String, String)>,
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
}

pub struct TusDestination {
    name: String,
    endpoint: Url,
    chunk_size: Option<u64>,
    headers: HeaderMap,
    io_timeout: Duration,
    client: reqwest::Client,
    capabilities: OnceCell<Capabilities>,
    /// The longest PATCH body the server takes: unbounded until it answers 413 to one.
    max_patch: AtomicU64,
}

/// The PATCH bodies tried after a 413, in turn: a proxy in front of the server (nginx's
/// `client_max_body_size` is 1 MiB unless raised) or the server itself may cap them.
const SMALLER_PATCHES: [u64; 4] = [64 << 20, 8 << 20, 1 << 20, 256 << 10];

// Header values are credentials: Debug names the destination and endpoint only.
impl std::fmt::Debug for TusDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TusDestination")
            .field("name", &self.name)
            .field("endpoint", &redact(&self.endpoint))
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

pub(crate) fn filetype(name: &str) -> &'static str {
    let extension = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match extension.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "avi" => "video/x-msvideo",
        _ => "application/octet-stream",
    }
}

/// `Upload-Metadata`: comma-separated `key base64(value)`; keys ASCII without spaces or commas.
fn upload_metadata(upload: &UploadInfo) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut pairs: Vec<(String, String)> = vec![
        ("filename".into(), upload.name.clone()),
        ("filetype".into(), filetype(&upload.name).into()),
    ];
    let metadata = &upload.metadata;
    for (key, value) in [
        ("title", &metadata.title),
        ("caption", &metadata.caption),
        ("privacy", &metadata.privacy),
    ] {
        if let Some(value) = value {
            pairs.push((key.into(), value.clone()));
        }
    }
    for (key, value) in &metadata.extra {
        let valid = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_graphic() && c != ',' && c != ' ');
        if valid && !pairs.iter().any(|(k, _)| k == key) {
            pairs.push((key.clone(), value.clone()));
        }
    }
    pairs
        .iter()
        .map(|(key, value)| format!("{key} {}", engine.encode(value)))
        .collect::<Vec<_>>()
        .join(",")
}

fn protocol_error(message: String) -> DestError {
    DestError::transient("protocol", message)
}

/// Parses `Upload-Offset`, which must be present and numeric.
fn upload_offset(headers: &HeaderMap, what: &str) -> Result<u64, DestError> {
    match headers.get("upload-offset") {
        None => Err(protocol_error(format!(
            "the server's answer to {what} has no Upload-Offset header"
        ))),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                protocol_error(format!(
                    "the server's answer to {what} has a non-numeric Upload-Offset {:?}",
                    String::from_utf8_lossy(value.as_bytes())
                ))
            }),
    }
}

impl TusDestination {
    pub fn new(settings: TusSettings) -> Result<TusDestination, BuildError> {
        let endpoint = parse_endpoint(&settings.name, &settings.endpoint)?;
        let headers = parse_headers(
            &settings.name,
            settings
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )?;
        let client = super::http::client(
            &settings.name,
            settings.connect_timeout,
            settings.io_timeout,
        )?;
        Ok(TusDestination {
            name: settings.name,
            endpoint,
            chunk_size: settings.chunk_size,
            headers,
            io_timeout: settings.io_timeout,
            client,
            capabilities: OnceCell::new(),
            max_patch: AtomicU64::new(u64::MAX),
        })
    }

    fn request(&self, method: Method, url: &Url) -> reqwest::RequestBuilder {
        let builder = self
            .client
            .request(method.clone(), url.clone())
            .headers(self.headers.clone());
        // OPTIONS is the one request without Tus-Resumable.
        if method == Method::OPTIONS {
            builder
        } else {
            builder.header("Tus-Resumable", TUS_VERSION)
        }
    }

    /// Sends a request whose answer must come within the I/O timeout.
    async fn send(
        &self,
        what: &str,
        url: &Url,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, DestError> {
        request
            .send()
            .await
            .map_err(|e| network_error(what, url, &e))
    }

    /// Turns a non-success status into an error of the right class.
    fn status_error(&self, what: &str, response: &reqwest::Response) -> DestError {
        let status = response.status();
        let code = status.as_u16();
        let headers = response.headers();
        match code {
            401 | 403 => DestError::permanent(
                "auth",
                format!(
                    "destination '{}' refused the request ({status} on {what}): check the credentials in its `headers` in the config",
                    self.name
                ),
            ),
            404 | 410 => DestError::transient(
                "gone",
                format!("the upload is gone on the server ({status} on {what}): it expired or was removed; starting a new upload"),
            )
            .with_class(ErrorClass::SessionGone),
            409 => DestError::transient(
                "offset_mismatch",
                format!("the server's offset differs from ours ({status} on {what}); asking it again"),
            )
            .with_class(ErrorClass::OffsetMismatch),
            460 => DestError::transient(
                "checksum",
                format!("the server found a checksum mismatch ({status} on {what}); sending the chunk again"),
            )
            .with_class(ErrorClass::OffsetMismatch),
            413 => DestError::permanent(
                "too_large",
                format!("destination '{}' refused the file as too large ({status} on {what})", self.name),
            ),
            408 | 423 | 429 | 500..=599 => DestError {
                class: ErrorClass::Transient {
                    retry_after: retry_after(headers),
                },
                kind: "http",
                message: format!("the server answered {status} to {what}"),
            },
            _ => DestError::permanent("http", format!("the server answered {status} to {what}")),
        }
    }

    async fn capabilities(&self) -> Result<&Capabilities, DestError> {
        self.capabilities
            .get_or_try_init(|| async {
                let response = self
                    .send("OPTIONS", &self.endpoint, self.request(Method::OPTIONS, &self.endpoint))
                    .await?;
                if !response.status().is_success() {
                    // Servers without OPTIONS still speak the core protocol and creation.
                    tracing::info!(destination = %self.name, status = %response.status(), "no tus discovery; assuming core and creation");
                    return Ok(Capabilities::default());
                }
                let headers = response.headers();
                let list = |name: &str| -> Vec<String> {
                    header_str(headers, name)
                        .map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect())
                        .unwrap_or_default()
                };
                let extensions = list("tus-extension");
                let algorithms = list("tus-checksum-algorithm");
                let checksum = if extensions.iter().any(|e| e == "checksum") {
                    if algorithms.iter().any(|a| a == "sha256") {
                        Some(ChecksumAlgorithm::Sha256)
                    } else if algorithms.iter().any(|a| a == "sha1") {
                        Some(ChecksumAlgorithm::Sha1)
                    } else {
                        None
                    }
                } else {
                    None
                };
                let capabilities = Capabilities {
                    max_size: header_str(headers, "tus-max-size").and_then(|v| v.trim().parse().ok()),
                    extensions,
                    checksum,
                };
                tracing::info!(destination = %self.name, ?capabilities, "tus server discovered");
                Ok(capabilities)
            })
            .await
    }

    fn session_url(&self, session: &RemoteSession) -> Result<Url, DestError> {
        session
            .0
            .get("url")
            .and_then(|u| u.as_str())
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| {
                DestError::transient("internal", "the stored upload has no valid URL")
                    .with_class(ErrorClass::SessionGone)
            })
    }

    fn expired(session: &RemoteSession) -> bool {
        session
            .0
            .get("expires")
            .and_then(|e| e.as_str())
            .and_then(|e| DateTime::parse_from_rfc3339(e).ok())
            .is_some_and(|at| at <= Utc::now())
    }

    async fn create(&self, upload: &UploadInfo) -> Result<RemoteSession, DestError> {
        let request = self
            .request(Method::POST, &self.endpoint)
            .header("Upload-Length", upload.size)
            .header("Upload-Metadata", upload_metadata(upload))
            .header(CONTENT_LENGTH, 0);
        let response = self
            .send("POST (creating the upload)", &self.endpoint, request)
            .await?;
        if response.status() != StatusCode::CREATED {
            if response.status().is_success() {
                return Err(DestError::transient(
                    "http",
                    format!(
                        "the server answered {} to POST, expected 201 Created",
                        response.status()
                    ),
                ));
            }
            let mut error = self.status_error("POST (creating the upload)", &response);
            // A vanished endpoint is not a vanished upload.
            if error.class == ErrorClass::SessionGone {
                error = DestError::permanent(
                    "http",
                    format!(
                        "destination '{}': the endpoint {} answered {}; check `endpoint` in the config",
                        self.name,
                        redact(&self.endpoint),
                        response.status()
                    ),
                );
            }
            return Err(error);
        }
        let location = header_str(response.headers(), LOCATION.as_str()).ok_or_else(|| {
            protocol_error("the server's 201 to POST has no Location header".into())
        })?;
        let url = self.endpoint.join(location).map_err(|e| {
            protocol_error(format!(
                "the server's Location {location:?} is not a URL: {e}"
            ))
        })?;
        let expires = header_str(response.headers(), "upload-expires")
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .map(|at| DateTime::<Utc>::from(at).to_rfc3339());
        tracing::info!(destination = %self.name, job = upload.job_id, url = %redact(&url), "tus upload created");
        Ok(RemoteSession(
            json!({ "url": url.as_str(), "expires": expires }),
        ))
    }
}

#[async_trait]
impl Destination for TusDestination {
    fn kind(&self) -> &'static str {
        "tus"
    }

    fn chunk_size(&self, size: u64) -> u64 {
        self.chunk_size.unwrap_or(size)
    }

    /// With a configured `chunk_size`, fixed chunks. Without one, one PATCH carries
    /// everything but the last `FINAL_PIECE` bytes, and the final piece goes alone:
    /// - a tus server keeps the bytes of an interrupted PATCH, so a long one loses no
    ///   more to a dropped connection than short ones would (the next attempt asks the
    ///   offset and goes on from there);
    /// - every PATCH is a request the server handles on its own, and fewer of them is
    ///   what makes an upload as fast as a single `curl -T`;
    /// - the final chunk is the commit point: a held job waits with only that piece
    ///   unsent, and its release sends it in a moment.
    ///
    /// A server with the checksum extension gets `CHECKSUMMED_CHUNK`s instead of one long
    /// PATCH: the digest heads the request, so each chunk is read twice, and a mismatch
    /// sends it again.
    ///
    /// After a 413 every chunk stays within what the server took (see `SMALLER_PATCHES`).
    fn chunk_len(&self, _session: &RemoteSession, size: u64, offset: u64) -> u64 {
        let left = size.saturating_sub(offset);
        let cap = self.max_patch.load(Ordering::Relaxed);
        if let Some(chunk) = self.chunk_size {
            return chunk.min(cap).max(1).min(left);
        }
        let checksummed = self
            .capabilities
            .get()
            .is_some_and(|capabilities| capabilities.checksum.is_some());
        let span = if checksummed {
            CHECKSUMMED_CHUNK
        } else {
            u64::MAX
        }
        .min(cap);
        let body_end = size.saturating_sub(FINAL_PIECE);
        if offset < body_end {
            (body_end - offset).min(span)
        } else {
            left.min(cap).max(1)
        }
    }

    fn commits_with_final_chunk(&self) -> bool {
        true
    }

    async fn preflight(&self, upload: &UploadInfo) -> Result<Vec<String>, DestError> {
        let capabilities = match self.capabilities().await {
            Ok(capabilities) => capabilities,
            Err(e) => {
                return Ok(vec![format!(
                "could not ask destination '{}' for its limits ({}); the upload will try anyway",
                self.name, e.message
            )])
            }
        };
        if let Some(max) = capabilities.max_size {
            if upload.size > max {
                return Err(DestError::permanent(
                    "too_large",
                    format!(
                        "{} is {} bytes; destination '{}' accepts at most {max} bytes (Tus-Max-Size)",
                        upload.name, upload.size, self.name
                    ),
                ));
            }
        }
        if !capabilities.extensions.is_empty()
            && !capabilities.extensions.iter().any(|e| e == "creation")
        {
            return Err(DestError::permanent(
                "unsupported",
                format!(
                    "destination '{}' does not offer the tus creation extension",
                    self.name
                ),
            ));
        }
        Ok(Vec::new())
    }

    async fn open(
        &self,
        upload: &UploadInfo,
        existing: Option<&RemoteSession>,
    ) -> Result<RemoteSession, DestError> {
        if let Some(existing) = existing {
            if Self::expired(existing) {
                return Err(DestError::transient(
                    "gone",
                    "the upload expired on the server (Upload-Expires); starting a new upload",
                )
                .with_class(ErrorClass::SessionGone));
            }
            self.session_url(existing)?;
            return Ok(existing.clone());
        }
        // Discovery first, so checksums are known before the first PATCH.
        self.capabilities().await?;
        self.create(upload).await
    }

    async fn confirmed_offset(
        &self,
        session: &RemoteSession,
        upload: &UploadInfo,
        _recorded: u64,
    ) -> Result<u64, DestError> {
        let url = self.session_url(session)?;
        let response = self
            .send("HEAD", &url, self.request(Method::HEAD, &url))
            .await?;
        let status = response.status();
        if status == StatusCode::FORBIDDEN {
            // tus lets servers answer 403 for uploads they do not know.
            return Err(DestError::transient(
                "gone",
                format!(
                    "the upload is gone on the server ({status} on HEAD); starting a new upload"
                ),
            )
            .with_class(ErrorClass::SessionGone));
        }
        if !status.is_success() {
            return Err(self.status_error("HEAD", &response));
        }
        let offset = upload_offset(response.headers(), "HEAD")?;
        if let Some(length) = header_str(response.headers(), "upload-length") {
            if length.trim().parse::<u64>().ok() != Some(upload.size) {
                return Err(DestError::transient(
                    "protocol",
                    format!("the upload on the server has Upload-Length {length:?}, the file has {} bytes; starting a new upload", upload.size),
                )
                .with_class(ErrorClass::SessionGone));
            }
        }
        Ok(offset)
    }

    async fn send_chunk(
        &self,
        session: &RemoteSession,
        _upload: &UploadInfo,
        chunk: Chunk,
        pacer: &Pacer,
    ) -> Result<u64, DestError> {
        let url = self.session_url(session)?;
        let length = chunk.len;
        let expected = chunk.offset + length;
        let mut request = self
            .request(Method::PATCH, &url)
            .header(CONTENT_TYPE, "application/offset+octet-stream")
            .header(CONTENT_LENGTH, length)
            .header("Upload-Offset", chunk.offset);
        if let Some(algorithm) = self.capabilities().await?.checksum {
            let digest = match algorithm {
                ChecksumAlgorithm::Sha256 => {
                    let state = chunk
                        .body
                        .inspect(sha2::Sha256::new(), |h, bytes| h.update(bytes))
                        .await?;
                    base64::engine::general_purpose::STANDARD.encode(state.finalize())
                }
                ChecksumAlgorithm::Sha1 => {
                    let state = chunk
                        .body
                        .inspect(sha1::Sha1::new(), |h, bytes| h.update(bytes))
                        .await?;
                    base64::engine::general_purpose::STANDARD.encode(state.finalize())
                }
            };
            request = request.header("Upload-Checksum", format!("{} {digest}", algorithm.name()));
        }
        let body = chunk.body.into_stream(pacer.clone());
        let what = format!("PATCH at byte {}", chunk.offset);
        let response = tokio::select! {
            response = self.send(&what, &url, request.body(reqwest::Body::wrap_stream(body))) => response?,
            _ = idle(pacer.progress(), self.io_timeout) => {
                return Err(DestError::transient(
                    "network",
                    format!("{what} to {}: no byte moved for {:?}", redact(&url), self.io_timeout),
                ));
            }
        };
        let status = response.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            if let Some(smaller) = SMALLER_PATCHES.into_iter().find(|&cap| cap < length) {
                self.max_patch.fetch_min(smaller, Ordering::Relaxed);
                return Err(DestError::transient(
                    "http",
                    format!(
                        "the server refused a PATCH of {length} bytes ({status}); sending at most {smaller} bytes a request from now on"
                    ),
                )
                .with_class(ErrorClass::OffsetMismatch));
            }
        }
        if status != StatusCode::NO_CONTENT {
            if status.is_success() {
                return Err(DestError::transient(
                    "http",
                    format!("the server answered {status} to {what}, expected 204 No Content"),
                ));
            }
            return Err(self.status_error(&what, &response));
        }
        let offset = upload_offset(response.headers(), &what)?;
        if offset > expected {
            return Err(protocol_error(format!(
                "the server claims offset {offset} after {what} of {length} bytes (at most {expected} were sent)"
            )));
        }
        Ok(offset)
    }

    async fn poll_processing(
        &self,
        session: &RemoteSession,
        _upload: &UploadInfo,
    ) -> Result<Processing, DestError> {
        Ok(Processing::Done {
            location: Some(self.session_url(session)?.to_string()),
            needs_publish: false,
            note: None,
        })
    }

    /// A fresh OPTIONS request (the cached discovery may be old): the server speaks tus
    /// 1.0.0, with the extensions and the largest upload it states.
    async fn check(&self) -> Vec<upq_proto::CheckView> {
        use upq_proto::CheckView;
        let at = redact(&self.endpoint);
        let name = &self.name;
        let endpoint_fix =
            format!("check `endpoint` of [destinations.{name}] in the config: it must be the server's upload address");
        let response = match self.request(Method::OPTIONS, &self.endpoint).send().await {
            Ok(response) => response,
            Err(e) => {
                return vec![CheckView::problem(
                    "destination",
                    format!(
                        "the tus server does not answer: {}",
                        network_error("OPTIONS", &self.endpoint, &e).message
                    ),
                    format!("start the server, or {endpoint_fix}"),
                )]
            }
        };
        let status = response.status();
        let finding = match status.as_u16() {
            401 | 403 => CheckView::problem(
                "destination",
                format!("the tus server at {at} refuses upq ({status} to OPTIONS)"),
                format!("check the credentials in `headers` of [destinations.{name}]"),
            ),
            404 | 410 => CheckView::problem(
                "destination",
                format!("nothing serves tus at {at} ({status} to OPTIONS)"),
                endpoint_fix,
            ),
            500..=599 => CheckView::problem(
                "destination",
                format!("the tus server at {at} fails ({status} to OPTIONS)"),
                "look at the server's log; uploads retry until it recovers",
            ),
            _ if !status.is_success() => CheckView::warning(
                "destination",
                format!(
                    "the server at {at} answers {status} to OPTIONS, so it states no tus version \
                     or extensions; upq assumes the core protocol and creation"
                ),
                format!("if uploads fail, {endpoint_fix}"),
            ),
            _ => {
                let headers = response.headers();
                let versions = header_str(headers, "tus-version").unwrap_or_default();
                if !versions.split(',').any(|v| v.trim() == TUS_VERSION) {
                    CheckView::problem(
                        "destination",
                        format!(
                            "the server at {at} does not offer tus {TUS_VERSION} (Tus-Version: {:?})",
                            versions
                        ),
                        endpoint_fix,
                    )
                } else {
                    let extensions = header_str(headers, "tus-extension")
                        .filter(|list| !list.trim().is_empty())
                        .map(|list| format!("extensions {list}"))
                        .unwrap_or_else(|| "no extensions".into());
                    let size = header_str(headers, "tus-max-size")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|max| format!("uploads up to {}", upq_proto::text::human_size(max)))
                        .unwrap_or_else(|| "no stated size limit".into());
                    CheckView::ok(
                        "destination",
                        format!("tus {TUS_VERSION} at {at}: {extensions}; {size}"),
                    )
                }
            }
        };
        vec![finding]
    }

    async fn discard(&self, session: &RemoteSession) -> Result<(), DestError> {
        if Self::expired(session) {
            return Ok(());
        }
        let Ok(url) = self.session_url(session) else {
            return Ok(());
        };
        let response = self
            .send("DELETE", &url, self.request(Method::DELETE, &url))
            .await?;
        let status = response.status();
        if status.is_success() || matches!(status.as_u16(), 404 | 410) {
            return Ok(());
        }
        let error = self.status_error("DELETE", &response);
        match error.class {
            ErrorClass::Transient { .. } => Err(error),
            _ => Err(DestError::permanent(
                error.kind,
                format!(
                    "{}; the partial upload stays on the server until it expires",
                    error.message
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
