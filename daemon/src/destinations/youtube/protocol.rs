//! The pure parts of YouTube's resumable upload protocol: chunk lengths (multiples of
//! 256 KiB but the last), the `Range` of a `308 Resume Incomplete`, and the error answers'
//! `reason`s read into what they mean for a job.
//!
//! No I/O: the destination sends the requests and hands the answers here.

use serde_json::Value;

/// Every chunk but the last is a multiple of this many bytes.
pub const CHUNK_UNIT: u64 = 256 * 1024;

/// A configured chunk size rounded down to a multiple of 256 KiB (at least one unit).
pub fn round_chunk(size: u64) -> u64 {
    (size / CHUNK_UNIT).max(1) * CHUNK_UNIT
}

/// The length of the chunk at `offset` of a `size`-byte file. Without a chunk size the rest of
/// the file goes in one request: YouTube's 308 says how much of it is kept, so nothing is
/// lost by a long request, and one request per attempt is the fastest way up.
pub fn chunk_len(chunk_size: Option<u64>, size: u64, offset: u64) -> u64 {
    let left = size.saturating_sub(offset);
    match chunk_size {
        None => left,
        Some(chunk) => round_chunk(chunk).min(left),
    }
}

/// What a `308 Resume Incomplete` says is stored: the `Range: bytes=0-N` header means N + 1
/// bytes; no header means none. Anything else is unreadable (`None`).
pub fn stored_from_range(range: Option<&str>) -> Option<u64> {
    let Some(range) = range else {
        return Some(0);
    };
    let last = range.trim().strip_prefix("bytes=0-")?;
    last.trim().parse::<u64>().ok()?.checked_add(1)
}

/// `processingDetails.processingProgress` of a video: Google sends its unsigned 64-bit
/// numbers as JSON strings, and plain numbers are taken too. `None` without the two counts.
pub fn processing_progress(progress: &Value) -> Option<upq_proto::ProcessingProgress> {
    let number = |key: &str| match progress.get(key)? {
        Value::String(text) => text.parse::<u64>().ok(),
        other => other.as_u64(),
    };
    Some(upq_proto::ProcessingProgress {
        parts_processed: number("partsProcessed")?,
        parts_total: number("partsTotal")?,
        time_left_ms: number("timeLeftMs"),
    })
}

/// The first `reason` and the `message` of a Google API error body.
pub fn error_reason(body: &Value) -> (String, String) {
    let error = body.get("error");
    let reason = error
        .and_then(|e| e.get("errors"))
        .and_then(Value::as_array)
        .and_then(|errors| errors.first())
        .and_then(|first| first.get("reason"))
        .and_then(Value::as_str)
        .or_else(|| error.and_then(|e| e.get("status")).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    (reason, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chunks_are_whole_units_but_the_last() {
        assert_eq!(round_chunk(1), CHUNK_UNIT);
        assert_eq!(round_chunk(10 * 1024 * 1024 + 5), 10 * 1024 * 1024);
        let size = 3 * CHUNK_UNIT + 100;
        assert_eq!(chunk_len(Some(CHUNK_UNIT + 7), size, 0), CHUNK_UNIT);
        assert_eq!(chunk_len(Some(CHUNK_UNIT), size, 3 * CHUNK_UNIT), 100);
        assert_eq!(chunk_len(None, size, CHUNK_UNIT), size - CHUNK_UNIT);
    }

    #[test]
    fn a_308_range_counts_bytes_from_zero() {
        assert_eq!(stored_from_range(Some("bytes=0-262143")), Some(262_144));
        assert_eq!(stored_from_range(None), Some(0));
        assert_eq!(stored_from_range(Some("bytes=5-9")), None);
        assert_eq!(stored_from_range(Some("bytes=0-x")), None);
    }

    #[test]
    fn google_errors_give_their_reason() {
        let body = json!({"error": {"code": 403, "message": "The request cannot be completed because you have exceeded your quota.",
            "errors": [{"domain": "youtube.quota", "reason": "quotaExceeded", "message": "…"}]}});
        let (reason, message) = error_reason(&body);
        assert_eq!(reason, "quotaExceeded");
        assert!(message.contains("quota"));
        assert_eq!(error_reason(&json!({})), (String::new(), String::new()));
    }

    #[test]
    fn processing_progress_reads_strings_and_numbers() {
        let progress = processing_progress(&serde_json::json!({
            "partsTotal": "1000", "partsProcessed": "37", "timeLeftMs": "12000"
        }))
        .unwrap();
        assert_eq!(
            (
                progress.parts_processed,
                progress.parts_total,
                progress.time_left_ms
            ),
            (37, 1000, Some(12_000))
        );
        let numbers = processing_progress(&serde_json::json!({
            "partsTotal": 4, "partsProcessed": 1
        }))
        .unwrap();
        assert_eq!((numbers.parts_processed, numbers.time_left_ms), (1, None));
        assert!(processing_progress(&serde_json::json!({ "partsTotal": "x" })).is_none());
    }
}
