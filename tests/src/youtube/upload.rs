//! The session URIs: chunk PUTs checked against what the server holds, persisted (whole, or
//! up to the persistence granularity) into the session's file and hashed, and status queries
//! (`Content-Range: bytes */TOTAL`). Touches only the server's state and its temp dir.

use std::io;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::Request;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::answer::{drain, header, take_fault, take_respond, Answer};
use super::api::{is_video_type, outcome, resource_json};
use super::limits::CHUNK_GRANULE;
use super::*;
use crate::form::Params;

/// How long a PUT waits for another PUT of the same session that is still being received (a
/// client that gave up on a connection may come back before the server noticed).
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// A `Content-Range` as a session PUT carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ContentRange {
    /// `bytes */TOTAL` (or `bytes */*`): a status query.
    Query(Option<u64>),
    /// `bytes FIRST-LAST/TOTAL` (TOTAL may be `*` before the final chunk).
    Chunk {
        first: u64,
        last: u64,
        total: Option<u64>,
    },
    /// No header: the PUT carries the whole video.
    Absent,
    Malformed(String),
}

fn number(text: &str) -> Option<u64> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn parse_content_range(value: Option<&str>) -> ContentRange {
    let Some(value) = value else {
        return ContentRange::Absent;
    };
    let malformed = || ContentRange::Malformed(value.to_string());
    let Some((range, total)) = value
        .strip_prefix("bytes ")
        .and_then(|rest| rest.split_once('/'))
    else {
        return malformed();
    };
    let total = match total {
        "*" => None,
        digits => match number(digits) {
            Some(total) => Some(total),
            None => return malformed(),
        },
    };
    if range == "*" {
        return ContentRange::Query(total);
    }
    match range
        .split_once('-')
        .and_then(|(first, last)| Some((number(first)?, number(last)?)))
    {
        Some((first, last)) => ContentRange::Chunk { first, last, total },
        None => malformed(),
    }
}

/// Rounds `offset` down to what the server persists of it.
fn persistable(offset: u64, granularity: Option<u64>) -> u64 {
    match granularity {
        Some(granularity) => offset / granularity * granularity,
        None => offset,
    }
}

pub(super) async fn put(request: Request<Incoming>, shared: Arc<Shared>) -> (&'static str, Answer) {
    let range = parse_content_range(header(request.headers(), "content-range"));
    let endpoint = if matches!(range, ContentRange::Query(_)) {
        "status_query"
    } else {
        "put"
    };
    (
        endpoint,
        session_put(request, shared, range, endpoint).await,
    )
}

/// The session a PUT names, with its progress, once no other PUT of it is being received.
struct Taken {
    index: usize,
    id: String,
    guard: tokio::sync::OwnedMutexGuard<()>,
}

async fn session_put(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    range: ContentRange,
    endpoint: &str,
) -> Answer {
    if let Some(answer) = take_respond(&shared, endpoint) {
        drain(request.into_body()).await;
        return answer;
    }
    let (parts, body) = request.into_parts();
    let upload_id = Params::parse(parts.uri.query().unwrap_or(""))
        .ok()
        .and_then(|params| params.get("upload_id").map(str::to_string));
    let found = {
        let inner = shared.inner();
        inner
            .sessions
            .iter()
            .enumerate()
            .find(|(_, s)| Some(&s.upload_id) == upload_id.as_ref())
            .map(|(index, s)| (index, s.record.id.clone(), s.busy.clone()))
    };
    let Some((index, id, busy)) = found else {
        drain(body).await;
        return Answer::error(404, "global", "notFound", "Not Found")
            .note("no upload session has this upload_id");
    };
    let Ok(guard) = tokio::time::timeout(BUSY_WAIT, busy.lock_owned()).await else {
        drain(body).await;
        return Answer::error(
            409,
            "global",
            "conflict",
            "Another request for this upload session is still in progress.",
        )
        .video(&id);
    };
    let taken = Taken { index, id, guard };
    if let Some(answer) = expired(&shared, &taken) {
        drain(body).await;
        return answer;
    }
    match range {
        ContentRange::Query(total) => {
            drain(body).await;
            status_query(&shared, &parts.headers, &taken, total)
        }
        range => chunk(shared, parts.headers, body, taken, range).await,
    }
}

/// The 404 of a session past its lifetime (or expired by a fault), if it is.
fn expired(shared: &Shared, taken: &Taken) -> Option<Answer> {
    let now = shared.now();
    let mut inner = shared.settled();
    let by_fault = take_fault(&mut inner, |fault| {
        matches!(fault, Fault::ExpireSession).then_some(())
    })
    .is_some();
    let lifetime = inner.options.session_lifetime;
    let session = &mut inner.sessions[taken.index];
    session.expired_by_fault |= by_fault;
    if !session.expired_by_fault && now <= session.record.created + lifetime {
        return None;
    }
    let first = !session.expiry_told;
    session.expiry_told = true;
    let answer = Answer::error(404, "global", "notFound", "Not Found")
        .video(&taken.id)
        .note(if first {
            "the upload session expired: start a new one"
        } else {
            "the upload session expired, and the client was told so already"
        });
    Some(if first { answer.excused() } else { answer })
}

/// `308` with what is held, or the video once complete.
fn progress_answer(shared: &Shared, session: &Session, complete_status: u16) -> Answer {
    if session.complete {
        let mut answer = Answer::json(resource_json(shared, session, &session.parts));
        answer.status = complete_status;
        return answer.video(&session.record.id);
    }
    let mut answer = Answer::empty(308).range(session.record.received);
    answer.resume_incomplete = true;
    answer.video(&session.record.id)
}

fn status_query(shared: &Shared, headers: &HeaderMap, taken: &Taken, total: Option<u64>) -> Answer {
    let inner = shared.settled();
    let session = &inner.sessions[taken.index];
    let size = session.record.size;
    let refuse = |message: String| Answer::bad_request(message).video(&taken.id);
    if header(headers, "content-length").is_some_and(|length| length.trim() != "0") {
        return refuse("A status query carries no body: Content-Length must be 0".to_string());
    }
    if total.is_some_and(|total| total != size) {
        return refuse(format!(
            "Content-Range total {} is not X-Upload-Content-Length {size}",
            total.unwrap_or_default()
        ));
    }
    if session.record.deleted {
        return Answer::error(404, "global", "notFound", "Not Found")
            .video(&taken.id)
            .note("the video was deleted");
    }
    progress_answer(shared, session, 200)
}

/// A chunk that passed every header check: where it goes and how much of it is kept.
struct Accepted {
    first: u64,
    len: u64,
    /// The end of what is persisted if the whole body arrives.
    keep_end: u64,
    granularity: Option<u64>,
    path: std::path::PathBuf,
    hasher: blake3::Hasher,
}

async fn chunk(
    shared: Arc<Shared>,
    headers: HeaderMap,
    body: Incoming,
    taken: Taken,
    range: ContentRange,
) -> Answer {
    let checked = {
        let mut inner = shared.inner();
        let granularity = inner.options.persist_granularity;
        let session = &mut inner.sessions[taken.index];
        let held = session.record.received;
        check_chunk(&headers, session, range, granularity).map(|mut accepted| {
            let partial = take_fault(&mut inner, |fault| match fault {
                Fault::PersistPartially(keep) => Some(*keep),
                _ => None,
            });
            if let Some(keep) = partial {
                accepted.keep_end = accepted.keep_end.min((accepted.first + keep).max(held));
            }
            accepted
        })
    };
    let accepted = match checked {
        Ok(accepted) => accepted,
        Err(answer) => {
            drain(body).await;
            return answer.video(&taken.id);
        }
    };
    // A task of its own: a client that goes away mid-body must not cancel the commit of what
    // was persisted.
    let task = tokio::spawn(persist(shared.clone(), body, taken, accepted));
    match task.await {
        Ok(answer) => answer,
        Err(e) => Answer::error(
            500,
            "global",
            "backendError",
            format!("the chunk task: {e}"),
        ),
    }
}

/// Every header rule of a chunk PUT, against what the session holds; records the range.
fn check_chunk(
    headers: &HeaderMap,
    session: &mut Session,
    range: ContentRange,
    granularity: Option<u64>,
) -> Result<Accepted, Answer> {
    let size = session.record.size;
    let held = session.record.received;
    if headers.contains_key("transfer-encoding") {
        return Err(Answer::bad_request(
            "A chunk must be sent with Content-Length, not Transfer-Encoding",
        ));
    }
    let Some(length) = header(headers, "content-length") else {
        return Err(Answer::error(
            411,
            "global",
            "required",
            "Content-Length is required",
        ));
    };
    let Ok(length) = length.trim().parse::<u64>() else {
        return Err(Answer::bad_request(format!(
            "Content-Length {length:?} is not a number"
        )));
    };
    if let Some(content_type) = header(headers, "content-type") {
        if !is_video_type(content_type) {
            return Err(Answer::bad_request(format!(
                "Media type '{content_type}' is not supported. Valid media types: [video/*, \
                 application/octet-stream]"
            )));
        }
    }
    let (first, last) = match range {
        ContentRange::Absent => {
            if length != size {
                return Err(Answer::bad_request(format!(
                    "Without Content-Range a PUT carries the whole video: Content-Length must \
                     be {size}, not {length}"
                )));
            }
            (0, size - 1)
        }
        ContentRange::Chunk { first, last, total } => {
            session.record.chunks.push((first, last));
            if let Some(total) = total.filter(|&total| total != size) {
                return Err(Answer::bad_request(format!(
                    "Content-Range total {total} is not X-Upload-Content-Length {size}"
                )));
            }
            if first > last || last >= size {
                return Err(Answer::bad_request(format!(
                    "Content-Range bytes {first}-{last} is not a range inside the {size}-byte \
                     video"
                )));
            }
            if total.is_none() && last + 1 == size {
                return Err(Answer::bad_request(
                    "The final chunk must state the total size in its Content-Range",
                ));
            }
            if length != last - first + 1 {
                return Err(Answer::bad_request(format!(
                    "Content-Length {length} does not match Content-Range bytes {first}-{last} \
                     ({} bytes)",
                    last - first + 1
                )));
            }
            (first, last)
        }
        ContentRange::Malformed(value) => {
            return Err(Answer::bad_request(format!(
                "Failed to parse Content-Range header: {value:?}"
            )))
        }
        ContentRange::Query(_) => unreachable!("status queries are answered elsewhere"),
    };
    if first != held {
        return Err(Answer::bad_request(format!(
            "This chunk starts at byte {first}, but the server holds {held} bytes: ask with a \
             status query (Content-Range: bytes */{size}) and resume after its Range"
        ))
        .range(held));
    }
    let end = last + 1;
    if end < size && length % CHUNK_GRANULE != 0 {
        return Err(Answer::bad_request(format!(
            "This chunk is {length} bytes: every chunk but the final one must be a multiple of \
             {CHUNK_GRANULE} bytes (256 KiB)"
        ))
        .range(held));
    }
    let keep_end = if end == size {
        end
    } else {
        persistable(end, granularity).max(held)
    };
    Ok(Accepted {
        first,
        len: length,
        keep_end,
        granularity,
        path: session.record.path.clone(),
        hasher: session.hasher.clone(),
    })
}

/// What arrived of a chunk's body.
struct Written {
    /// Body bytes received (and written at `first`).
    received: u64,
    /// The base hasher fed with the bytes below `keep_end` that arrived.
    hasher: blake3::Hasher,
    /// Why the body did not arrive whole, or could not be stored.
    error: Option<String>,
}

/// Streams the body into the session's file at `first`, hashing what will be kept.
async fn write_body(
    mut body: Incoming,
    accepted: &Accepted,
    file: &mut tokio::fs::File,
) -> Written {
    let mut hasher = accepted.hasher.clone();
    let mut received = 0u64;
    let error: Option<String> = async {
        file.seek(io::SeekFrom::Start(accepted.first))
            .await
            .map_err(|e| format!("seek: {e}"))?;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                format!(
                    "the body broke off after {received} of {} bytes: {e}",
                    accepted.len
                )
            })?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            if received + data.len() as u64 > accepted.len {
                return Err(format!("the body is longer than {} bytes", accepted.len));
            }
            file.write_all(data)
                .await
                .map_err(|e| format!("write: {e}"))?;
            let start = accepted.first + received;
            if start < accepted.keep_end {
                let kept = (accepted.keep_end - start).min(data.len() as u64) as usize;
                hasher.update(&data[..kept]);
            }
            received += data.len() as u64;
        }
        if received != accepted.len {
            return Err(format!(
                "the body ended after {received} of {} bytes",
                accepted.len
            ));
        }
        file.flush().await.map_err(|e| format!("flush: {e}"))
    }
    .await
    .err();
    Written {
        received,
        hasher,
        error,
    }
}

/// Hashes `[from, to)` of the file onto `hasher`.
async fn rehash(
    file: &mut tokio::fs::File,
    from: u64,
    to: u64,
    mut hasher: blake3::Hasher,
) -> io::Result<blake3::Hasher> {
    file.seek(io::SeekFrom::Start(from)).await?;
    let mut left = to - from;
    let mut buffer = vec![0u8; 1024 * 1024];
    while left > 0 {
        let take = left.min(buffer.len() as u64) as usize;
        file.read_exact(&mut buffer[..take]).await?;
        hasher.update(&buffer[..take]);
        left -= take as u64;
    }
    Ok(hasher)
}

/// Writes a chunk, keeps what is persisted of it, commits, and builds the answer.
async fn persist(shared: Arc<Shared>, body: Incoming, taken: Taken, accepted: Accepted) -> Answer {
    let opened = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&accepted.path)
        .await;
    let mut file = match opened {
        Ok(file) => file,
        Err(e) => {
            drain(body).await;
            return Answer::error(
                500,
                "global",
                "backendError",
                format!("open {}: {e}", accepted.path.display()),
            )
            .video(&taken.id);
        }
    };
    let written = write_body(body, &accepted, &mut file).await;
    let reached = accepted.first + written.received;
    let persisted = match &written.error {
        None => accepted.keep_end,
        Some(_) => persistable(reached, accepted.granularity)
            .min(accepted.keep_end)
            .max(accepted.first),
    };
    let hashed_to = reached.min(accepted.keep_end);
    let hasher = if persisted == hashed_to {
        Ok(written.hasher)
    } else {
        rehash(
            &mut file,
            accepted.first,
            persisted,
            accepted.hasher.clone(),
        )
        .await
    };
    let stored = match hasher {
        Ok(hasher) => file.set_len(persisted).await.map(|()| hasher),
        Err(e) => Err(e),
    };
    let hasher = match stored {
        Ok(hasher) => hasher,
        Err(e) => {
            let _ = file.set_len(accepted.first).await;
            return Answer::error(500, "global", "backendError", format!("store: {e}"))
                .video(&taken.id);
        }
    };
    drop(file);
    let answer = commit(&shared, &taken, persisted, hasher, written.error);
    drop(taken.guard);
    answer
}

/// Records what was persisted and answers: 308 with the `Range`, 201 with the video, or what
/// a fault asks for.
fn commit(
    shared: &Shared,
    taken: &Taken,
    persisted: u64,
    hasher: blake3::Hasher,
    broken: Option<String>,
) -> Answer {
    let now = shared.now();
    let mut inner = shared.inner();
    let polls = inner.options.processing_polls;
    let session = &mut inner.sessions[taken.index];
    session.record.received = persisted;
    session.record.blake3 = hasher.finalize().to_hex().to_string();
    session.hasher = hasher;
    let completed = persisted == session.record.size;
    if completed {
        session.complete = true;
        session.processing_left = polls;
        session.record.upload_status = "uploaded".to_string();
        session.record.status["uploadStatus"] = json!("uploaded");
        let privacy = session.record.status["privacyStatus"]
            .as_str()
            .unwrap_or("public")
            .to_string();
        session.ever_public = privacy == "public";
        session.record.privacy_changes.push((now, privacy));
        let ending = outcome(&mut inner);
        inner.sessions[taken.index].outcome = ending;
        inner.settle(shared, now);
    }
    if let Some(why) = broken {
        // The client went away (or sent less than it announced): nobody reads this answer.
        return Answer::bad_request("The request body was incomplete")
            .video(&taken.id)
            .note(format!("{why}; {persisted} bytes persisted"))
            .excused();
    }
    let fault = take_fault(&mut inner, |fault| match fault {
        Fault::DropAfterStoring | Fault::FailAfterStoring(_) => Some(fault.clone()),
        _ => None,
    });
    let session = &inner.sessions[taken.index];
    let mut answer = match fault {
        Some(Fault::FailAfterStoring(status)) => Answer::error(
            status,
            "global",
            "backendError",
            "injected: chunk persisted, answer lost",
        ),
        Some(_) => {
            let mut answer = Answer::empty(200);
            answer.reason = "connection_dropped".to_string();
            answer.message = "injected: chunk persisted, connection closed".to_string();
            answer.drop_connection = true;
            answer
        }
        None => return progress_answer(shared, session, 201),
    };
    answer.injected = true;
    answer.video(&taken.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range(Some("bytes 0-9/10")),
            ContentRange::Chunk {
                first: 0,
                last: 9,
                total: Some(10)
            }
        );
        assert_eq!(
            parse_content_range(Some("bytes 0-262143/*")),
            ContentRange::Chunk {
                first: 0,
                last: 262_143,
                total: None
            }
        );
        assert_eq!(
            parse_content_range(Some("bytes */10")),
            ContentRange::Query(Some(10))
        );
        assert_eq!(
            parse_content_range(Some("bytes */*")),
            ContentRange::Query(None)
        );
        assert_eq!(parse_content_range(None), ContentRange::Absent);
        for bad in [
            "bytes=0-9/10",
            "bytes -9/10",
            "bytes 0-9",
            "0-9/10",
            "bytes 0-x/10",
        ] {
            assert!(
                matches!(parse_content_range(Some(bad)), ContentRange::Malformed(_)),
                "{bad}"
            );
        }
    }

    #[test]
    fn persistence_rounds_down() {
        assert_eq!(persistable(1_000_000, Some(262_144)), 786_432);
        assert_eq!(persistable(1_000_000, None), 1_000_000);
    }
}
