//! The FILE_UPLOAD chunk rules: which (video_size, chunk_size, total_chunk_count) TikTok
//! accepts and the chunks they mean. Pure; touches nothing.

use super::limits::*;

/// The chunks `(offset, length)` of a FILE_UPLOAD plan, or why TikTok refuses it.
pub fn plan_chunks(
    video_size: u64,
    chunk_size: u64,
    total_chunk_count: u64,
) -> Result<Vec<(u64, u64)>, String> {
    let invalid = |why: String| Err(format!("The chunk size is invalid: {why}"));
    if video_size == 0 {
        return Err("The video size is invalid: video_size must be at least 1".to_string());
    }
    if video_size > MAX_VIDEO_SIZE {
        return Err(format!(
            "The video size is invalid: {video_size} bytes is over the {MAX_VIDEO_SIZE}-byte limit"
        ));
    }
    if chunk_size == 0 {
        return invalid("chunk_size must be at least 1".to_string());
    }
    if !(1..=MAX_CHUNKS).contains(&total_chunk_count) {
        return invalid(format!(
            "total_chunk_count {total_chunk_count} is outside 1..={MAX_CHUNKS}"
        ));
    }
    if total_chunk_count != video_size / chunk_size {
        return invalid(format!(
            "total_chunk_count {total_chunk_count} is not floor(video_size / chunk_size) = {}",
            video_size / chunk_size
        ));
    }
    if total_chunk_count == 1 {
        if chunk_size != video_size {
            return invalid(format!(
                "a single chunk must be the whole file ({video_size} bytes), not {chunk_size}"
            ));
        }
        if video_size > MAX_CHUNK {
            return invalid(format!(
                "a {video_size}-byte file is over {MAX_CHUNK} bytes and must be chunked"
            ));
        }
        return Ok(vec![(0, video_size)]);
    }
    if video_size < MIN_CHUNK {
        return invalid(format!(
            "a file under {MIN_CHUNK} bytes must be sent as one chunk of its whole size"
        ));
    }
    if !(MIN_CHUNK..=MAX_CHUNK).contains(&chunk_size) {
        return invalid(format!(
            "chunk_size {chunk_size} is outside {MIN_CHUNK}..={MAX_CHUNK}"
        ));
    }
    let last = video_size - (total_chunk_count - 1) * chunk_size;
    if last > MAX_FINAL_CHUNK {
        return invalid(format!(
            "the final chunk would be {last} bytes, over {MAX_FINAL_CHUNK}"
        ));
    }
    Ok((0..total_chunk_count)
        .map(|index| {
            let offset = index * chunk_size;
            let len = if index + 1 == total_chunk_count {
                last
            } else {
                chunk_size
            };
            (offset, len)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        assert_eq!(plan_chunks(1000, 1000, 1).unwrap(), vec![(0, 1000)]);
        let plan = plan_chunks(50_000_123, 10_000_000, 5).unwrap();
        assert_eq!(plan.len(), 5);
        assert_eq!(plan[4], (40_000_000, 10_000_123));
        assert!(
            plan_chunks(1000, 500, 2).is_err(),
            "under 5 MB is one chunk"
        );
        assert!(plan_chunks(12_000_000, 7_000_000, 1).is_err());
        assert!(plan_chunks(64_000_001, 64_000_001, 1).is_err());
        assert!(plan_chunks(64_000_000, 64_000_000, 1).is_ok());
        assert!(plan_chunks(12_000_000, 5_000_000, 3).is_err());
        assert!(plan_chunks(200_000_000, 64_000_000, 3).is_ok());
        // With chunks of at most 64 MB and count = floor(size / chunk), the final chunk
        // stays under 128 MB: the largest it gets.
        assert_eq!(
            plan_chunks(255_999_999, 64_000_000, 3).unwrap()[2],
            (128_000_000, 127_999_999)
        );
        assert!(plan_chunks(MAX_VIDEO_SIZE + 1, 64_000_000, 62).is_err());
    }
}
