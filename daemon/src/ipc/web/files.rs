//! The desk's files: a job's video for the preview (with Range, so the browser can seek),
//! and the user's videos folder, browsed read-only for the Add page.
//!
//! The preview takes a job id and serves that job's own file; the Add page takes a path
//! relative to the videos folder and refuses anything that resolves outside it. Files
//! are only ever opened for reading.

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use upq_proto::{AddOptions, AddPostRequest, AddRequest, JobView, Metadata};

use super::{refusal, shown, videos_dir, Desk, Posted};
use crate::service::Service;

/// A byte range of a file of `size` bytes, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub first: u64,
    pub last: u64,
}

/// Reads a `Range` header against a file of `size` bytes: `Ok(None)` for the whole file
/// (no header, or one this does not serve in part, like several ranges), `Err(())` when
/// the range lies outside the file (416).
pub(super) fn parse_range(header: Option<&str>, size: u64) -> Result<Option<Span>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    let span = match (first.parse::<u64>(), last.parse::<u64>()) {
        // `bytes=-N`: the last N bytes.
        (Err(_), Ok(suffix)) if first.is_empty() => {
            if suffix == 0 || size == 0 {
                return Err(());
            }
            Span {
                first: size.saturating_sub(suffix),
                last: size - 1,
            }
        }
        (Ok(first), Err(_)) if last.is_empty() => Span {
            first,
            last: size.saturating_sub(1),
        },
        (Ok(first), Ok(last)) if first <= last => Span {
            first,
            last: last.min(size.saturating_sub(1)),
        },
        _ => return Ok(None),
    };
    if span.first >= size {
        return Err(());
    }
    Ok(Some(span))
}

/// The media type browsers need to play a file, by its extension.
fn media_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("mp4" | "m4v") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mov") => "video/quicktime",
        Some("mkv") => "video/x-matroska",
        Some("ogv") => "video/ogg",
        _ => "application/octet-stream",
    }
}

/// `GET /preview/{id}`: job `id`'s own file, whole or the range asked for.
pub(super) async fn preview(
    State(desk): State<Desk>,
    UrlPath(id): UrlPath<u64>,
    headers: HeaderMap,
) -> Response {
    let job = match shown(&desk, id) {
        Ok(job) => job,
        Err(refused) => return *refused,
    };
    let path = PathBuf::from(&job.file);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) => {
            return refusal(
                StatusCode::NOT_FOUND,
                &format!("job {id}'s file cannot be read: {e}"),
            )
        }
    };
    let size = match file.metadata().await {
        Ok(meta) if meta.is_file() => meta.len(),
        _ => {
            return refusal(
                StatusCode::NOT_FOUND,
                "the job's file is not a regular file",
            )
        }
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let kind = media_type(&path);
    match parse_range(range, size) {
        Err(()) => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{size}"))],
        )
            .into_response(),
        Ok(None) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, kind.to_owned()),
                (header::ACCEPT_RANGES, "bytes".to_owned()),
                (header::CONTENT_LENGTH, size.to_string()),
            ],
            Body::from_stream(tokio_util::io::ReaderStream::new(file)),
        )
            .into_response(),
        Ok(Some(span)) => {
            if let Err(e) = file.seek(std::io::SeekFrom::Start(span.first)).await {
                return refusal(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
            }
            let length = span.last - span.first + 1;
            (
                StatusCode::PARTIAL_CONTENT,
                [
                    (header::CONTENT_TYPE, kind.to_owned()),
                    (header::ACCEPT_RANGES, "bytes".to_owned()),
                    (header::CONTENT_LENGTH, length.to_string()),
                    (
                        header::CONTENT_RANGE,
                        format!("bytes {}-{}/{size}", span.first, span.last),
                    ),
                ],
                Body::from_stream(tokio_util::io::ReaderStream::new(file.take(length))),
            )
                .into_response()
        }
    }
}

/// One entry of a folder listing.
pub(super) struct Entry {
    pub name: String,
    /// Relative to the videos folder, `/`-separated.
    pub relative: String,
    pub folder: bool,
    pub size: u64,
}

/// Entries shown at most for one folder.
const MAX_ENTRIES: usize = 500;

/// A path relative to the videos folder, as given by a page: plain names only.
fn relative_path(relative: &str) -> Result<PathBuf, String> {
    let path = Path::new(relative.trim_start_matches('/'));
    if path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        Ok(path.to_path_buf())
    } else {
        Err(format!(
            "'{relative}' is not a path inside the videos folder"
        ))
    }
}

/// Resolves `relative` inside the videos folder, following links only as far as they
/// stay inside it.
pub(super) fn inside_videos(relative: &str) -> Result<PathBuf, String> {
    let root = videos_dir();
    let root = root
        .canonicalize()
        .map_err(|e| format!("the videos folder {} cannot be read: {e}", root.display()))?;
    let path = root
        .join(relative_path(relative)?)
        .canonicalize()
        .map_err(|e| format!("'{relative}' cannot be read: {e}"))?;
    if path.starts_with(&root) {
        Ok(path)
    } else {
        Err(format!("'{relative}' leads outside the videos folder"))
    }
}

/// Folders first, then files, by name; at most `MAX_ENTRIES`, and whether more were left out.
pub(super) fn list_folder(relative: &str) -> Result<(Vec<Entry>, bool), String> {
    let folder = inside_videos(relative)?;
    let reading = std::fs::read_dir(&folder)
        .map_err(|e| format!("{} cannot be listed: {e}", folder.display()))?;
    let prefix = relative.trim_matches('/');
    let mut entries = Vec::new();
    let mut more = false;
    for entry in reading.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        // Follows links, as a file chooser would; `inside_videos` checks where they lead.
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        if !meta.is_dir() && !meta.is_file() {
            continue;
        }
        if entries.len() == MAX_ENTRIES {
            more = true;
            break;
        }
        entries.push(Entry {
            relative: if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            },
            name,
            folder: meta.is_dir(),
            size: meta.len(),
        });
    }
    entries.sort_by(|a, b| (!a.folder, &a.name).cmp(&(!b.folder, &b.name)));
    Ok((entries, more))
}

/// What an add from the page made: one job, or a post's jobs.
pub(super) struct Added {
    pub jobs: Vec<JobView>,
    pub post: Option<upq_proto::PostId>,
}

/// Reads the Add form and queues the file, as `add` (one destination) or `add` with
/// several `--to` (a post) would: the same checks and warnings.
pub(super) async fn add(service: &Service, posted: &Posted) -> Result<Added, String> {
    let file = inside_videos(posted.get("file").unwrap_or_default())?;
    let text = |name: &str| {
        posted
            .get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let at = match text("publish_at") {
        Some(local) => Some(local_time(&local)?),
        None => None,
    };
    let options = AddOptions {
        destination: None,
        metadata: Metadata {
            title: text("title"),
            caption: text("caption"),
            privacy: text("privacy"),
            extra: Default::default(),
        },
        hold: posted.get("hold").is_some(),
        at,
        ..AddOptions::default()
    };
    let destinations: Vec<String> = posted.all("to").map(str::to_owned).collect();
    let file = file.to_string_lossy().into_owned();
    match destinations.as_slice() {
        [] | [_] => {
            let request = AddRequest {
                file,
                options: AddOptions {
                    destination: destinations.first().cloned(),
                    ..options
                },
            };
            let job = service.add(request).await.map_err(|e| e.message)?;
            Ok(Added {
                jobs: vec![job],
                post: None,
            })
        }
        _ => {
            let request = AddPostRequest {
                file,
                destinations,
                options,
                ..AddPostRequest::default()
            };
            let post = service.add_post(request).await.map_err(|e| e.message)?;
            Ok(Added {
                post: Some(post.id),
                jobs: post.jobs,
            })
        }
    }
}

/// A `datetime-local` value ("2026-12-03T18:00"), in the daemon's local zone.
fn local_time(value: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    use chrono::TimeZone;
    let naive = chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| format!("'{value}' is not a date and time (2026-12-03T18:00)"))?;
    chrono::Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|at| at.with_timezone(&chrono::Utc))
        .ok_or_else(|| format!("{value} does not exist here (a clock change skips it)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let span = |first, last| Ok(Some(Span { first, last }));
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-9"), 100), span(0, 9));
        assert_eq!(parse_range(Some("bytes=90-"), 100), span(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), span(90, 99));
        assert_eq!(parse_range(Some("bytes=-500"), 100), span(0, 99));
        assert_eq!(parse_range(Some("bytes=50-500"), 100), span(50, 99));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=-0"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=9-1"), 100), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 100), Ok(None));
    }

    #[test]
    fn page_paths_stay_plain() {
        assert!(relative_path("a/b.mp4").is_ok());
        assert!(relative_path("").is_ok());
        assert!(relative_path("../etc/passwd").is_err());
        assert!(relative_path("a/../../b").is_err());
        assert_eq!(relative_path("/abs").unwrap(), PathBuf::from("abs"));
    }
}
