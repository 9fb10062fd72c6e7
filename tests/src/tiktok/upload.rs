//! The upload URLs: chunk PUTs checked against the init's plan, streamed into the upload's
//! file and hashed. Touches only the server's state and its temp dir.

use super::*;

/// `bytes {first}-{last}/{total}`, strictly.
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some((number(first)?, number(last)?, number(total)?))
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A chunk that passed every header check and may be written.
struct Accepted {
    first: u64,
    len: u64,
    path: PathBuf,
    hasher: blake3::Hasher,
}

pub(super) async fn put(request: Request<Incoming>, shared: &Shared) -> Answer {
    if request.method() != Method::PUT {
        drain(request.into_body()).await;
        return Answer::error(405, "invalid_param", "the upload URL only takes PUT");
    }
    if let Some(answer) = take_respond(shared, "put") {
        drain(request.into_body()).await;
        return answer;
    }
    let query = request.uri().query().unwrap_or("").to_string();
    let found = {
        let inner = shared.inner();
        let id = query_param(&query, "upload_id").and_then(|id| id.parse::<u64>().ok());
        let token = query_param(&query, "upload_token");
        inner
            .uploads
            .iter()
            .find(|u| Some(u.upload_id) == id && Some(u.upload_token.as_str()) == token)
            .map(|u| (u.busy.clone(), u.record.publish_id.clone()))
    };
    let Some((busy, publish_id)) = found else {
        drain(request.into_body()).await;
        return Answer::error(
            404,
            "not_found",
            "no upload task for this upload_id and upload_token",
        );
    };
    let Ok(_guard) = tokio::time::timeout(BUSY_WAIT, busy.lock_owned()).await else {
        drain(request.into_body()).await;
        let range = {
            let inner = shared.inner();
            let upload = find(&inner, &publish_id);
            progress_range(upload.record.received, upload.record.video_size)
        };
        return Answer::error(
            416,
            "range_not_satisfiable",
            "another chunk of this upload is still being received",
        )
        .range(range)
        .publish_id(&publish_id);
    };

    let (parts, body) = request.into_parts();
    let content_type = header(&parts.headers, "content-type")
        .unwrap_or("")
        .to_string();
    let range = header(&parts.headers, "content-range").and_then(parse_content_range);
    let checked = {
        let now = shared.now();
        let mut inner = shared.inner();
        let lifetime = inner.options.url_lifetime;
        let upload = find_mut(&mut inner, &publish_id);
        check_put(&parts.headers, upload, now, lifetime)
    };
    let answer = match checked {
        Err(answer) => {
            drain(body).await;
            answer
        }
        Ok(accepted) => {
            let first = accepted.first;
            let len = accepted.len;
            match write_chunk(body, accepted).await {
                Ok(hasher) => {
                    let mut inner = shared.inner();
                    commit(&mut inner, &publish_id, first, len, hasher)
                }
                Err(why) => Answer::invalid(why),
            }
        }
    }
    .publish_id(&publish_id);

    if let Some((first, last, _)) = range {
        let mut inner = shared.inner();
        let upload = find_mut(&mut inner, &publish_id);
        let status = if answer.drop_connection {
            0
        } else {
            answer.status
        };
        upload.record.chunks.push((first, last, status));
        upload.record.content_types.push(content_type);
    }
    answer
}

fn find<'a>(inner: &'a Inner, publish_id: &str) -> &'a Upload {
    inner
        .uploads
        .iter()
        .find(|u| u.record.publish_id == publish_id)
        .expect("uploads are never removed")
}

fn find_mut<'a>(inner: &'a mut Inner, publish_id: &str) -> &'a mut Upload {
    inner
        .uploads
        .iter_mut()
        .find(|u| u.record.publish_id == publish_id)
        .expect("uploads are never removed")
}

/// Every header rule of a chunk PUT, against the upload's progress and plan.
fn check_put(
    headers: &HeaderMap,
    upload: &mut Upload,
    now: Duration,
    lifetime: Duration,
) -> Result<Accepted, Answer> {
    let total = upload.record.video_size;
    let received = upload.record.received;
    if now > upload.record.created + lifetime {
        return Err(Answer::error(
            403,
            "url_expired",
            format!(
                "the upload URL expired {:.0} s after it was issued",
                lifetime.as_secs_f64()
            ),
        ));
    }
    let content_type = header(headers, "content-type");
    if !content_type.is_some_and(|ct| {
        VIDEO_CONTENT_TYPES
            .iter()
            .any(|allowed| ct.trim().eq_ignore_ascii_case(allowed))
    }) {
        return Err(Answer::invalid(format!(
            "Content-Type must be one of {}, not {:?}",
            VIDEO_CONTENT_TYPES.join(", "),
            content_type.unwrap_or("(none)")
        )));
    }
    if headers.contains_key("transfer-encoding") {
        return Err(Answer::invalid(
            "a chunk must be sent with Content-Length, not Transfer-Encoding",
        ));
    }
    let Some(length) = header(headers, "content-length") else {
        return Err(Answer::invalid("Content-Length is required"));
    };
    let Ok(length) = length.trim().parse::<u64>() else {
        return Err(Answer::invalid(format!(
            "Content-Length {length:?} is not a number"
        )));
    };
    let Some(claimed) = header(headers, "content-range") else {
        return Err(Answer::invalid("Content-Range is required"));
    };
    let Some((first, last, claimed_total)) = parse_content_range(claimed) else {
        return Err(Answer::invalid(format!(
            "Content-Range {claimed:?} is not \"bytes {{first}}-{{last}}/{{total}}\""
        )));
    };
    if claimed_total != total {
        return Err(Answer::invalid(format!(
            "Content-Range total {claimed_total} is not the video_size {total}"
        )));
    }
    if first > last || last >= total {
        return Err(Answer::invalid(format!(
            "Content-Range {claimed:?} is not a range inside the video"
        )));
    }
    if length != last - first + 1 {
        return Err(Answer::invalid(format!(
            "Content-Length {length} does not match Content-Range {claimed:?} ({} bytes)",
            last - first + 1
        )));
    }
    if received == total || first != received {
        let mut answer = Answer::error(
            416,
            "range_not_satisfiable",
            if received == total {
                format!("all {total} bytes were already received")
            } else {
                format!(
                    "the upload has {received} bytes; the next chunk starts there, not at {first}"
                )
            },
        )
        .range(progress_range(received, total));
        if upload.lost_ack == Some((first, last)) {
            upload.lost_ack = None;
            answer.excused = true;
        }
        return Err(answer);
    }
    let planned = upload
        .plan
        .iter()
        .find(|(offset, _)| *offset == received)
        .map(|(_, len)| *len)
        .expect("progress is always at a chunk boundary");
    if length != planned {
        return Err(Answer::invalid(format!(
            "this chunk is {length} bytes; the plan's chunk at {received} is {planned} bytes"
        )));
    }
    Ok(Accepted {
        first,
        len: length,
        path: upload.record.data_path.clone(),
        hasher: upload.hasher.clone(),
    })
}

/// Streams the body into the upload's file at `first`, hashing it; on any failure the file
/// is cut back to `first` and the progress is unchanged.
async fn write_chunk(mut body: Incoming, accepted: Accepted) -> Result<blake3::Hasher, String> {
    let Accepted {
        first,
        len,
        path,
        mut hasher,
    } = accepted;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .await
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    let result: Result<(), String> = async {
        file.seek(io::SeekFrom::Start(first))
            .await
            .map_err(|e| format!("seek: {e}"))?;
        let mut written = 0u64;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| format!("the body ended after {written} of {len} bytes: {e}"))?;
            if let Some(data) = frame.data_ref() {
                written += data.len() as u64;
                if written > len {
                    return Err(format!("the body is longer than {len} bytes"));
                }
                file.write_all(data)
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                hasher.update(data);
            }
        }
        if written != len {
            return Err(format!("the body ended after {written} of {len} bytes"));
        }
        file.flush().await.map_err(|e| format!("flush: {e}"))
    }
    .await;
    match result {
        Ok(()) => Ok(hasher),
        Err(why) => {
            let _ = file.set_len(first).await;
            Err(why)
        }
    }
}

/// Records an accepted chunk and builds its answer (201 when it completed the upload,
/// else 206), applying an accept-then-fail/drop fault if one is queued.
fn commit(
    inner: &mut Inner,
    publish_id: &str,
    first: u64,
    len: u64,
    hasher: blake3::Hasher,
) -> Answer {
    let lost = take_fault(inner, |fault| match fault {
        Fault::AcceptThenFail | Fault::AcceptThenDrop => Some(fault.clone()),
        _ => None,
    });
    let polls = inner.options.processing_polls;
    let upload = find_mut(inner, publish_id);
    upload.record.received = first + len;
    upload.hasher = hasher;
    upload.lost_ack = None;
    let total = upload.record.video_size;
    let complete = upload.record.received == total;
    let mode = upload.record.mode;
    if complete {
        upload.record.complete = true;
        upload.record.blake3 = Some(upload.hasher.finalize().to_hex().to_string());
    }
    let range = progress_range(upload.record.received, total);
    if complete {
        let failed = take_fault(inner, |fault| match fault {
            Fault::FailProcessing(reason) => Some(reason.clone()),
            _ => None,
        });
        let slow = take_fault(inner, |fault| match fault {
            Fault::SlowProcessing(extra) => Some(*extra),
            _ => None,
        });
        let upload = find_mut(inner, publish_id);
        upload.processing_left = polls + slow.unwrap_or(0);
        upload.outcome = Some(match (failed, mode) {
            (Some(reason), _) => Outcome::Failed(reason),
            (None, Mode::Direct) => Outcome::Published,
            (None, Mode::Inbox) => Outcome::Inboxed,
        });
    }
    let upload = find_mut(inner, publish_id);
    match lost {
        Some(Fault::AcceptThenFail) => {
            upload.lost_ack = Some((first, first + len - 1));
            let mut answer =
                Answer::error(500, "internal_error", "injected: chunk stored, answer lost");
            answer.injected = true;
            answer
        }
        Some(_) => {
            upload.lost_ack = Some((first, first + len - 1));
            let mut answer = Answer::error(
                200,
                "connection_dropped",
                "injected: chunk stored, connection closed",
            );
            answer.injected = true;
            answer.drop_connection = true;
            answer
        }
        None => {
            let mut answer = Answer::ok(json!({})).range(range);
            answer.status = if complete { 201 } else { 206 };
            answer.body = Body::Empty;
            answer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_content_range("bytes 0-9/10"), Some((0, 9, 10)));
        assert_eq!(parse_content_range("bytes 0-9/*"), None);
        assert_eq!(parse_content_range("bytes=0-9/10"), None);
        assert_eq!(parse_content_range("bytes -9/10"), None);
        assert_eq!(progress_range(0, 10), "bytes */10");
        assert_eq!(progress_range(10, 10), "bytes 0-9/10");
    }
}
