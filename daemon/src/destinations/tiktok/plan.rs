//! TikTok's chunk plan (Content Posting API, media transfer guide): how a file is cut
//! into the chunks that `video/init` announces and the PUTs then send, in order.
//!
//! Pure arithmetic over the documented limits, kept in one table so they can be updated.

/// The documented limits, in bytes. "MB" is read as decimal, the conservative reading:
/// single chunks of up to 64,000,000 bytes are reported to work.
pub mod limits {
    /// Smallest chunk, except a file smaller than this is sent as one chunk.
    pub const MIN_CHUNK: u64 = 5_000_000;
    /// Largest chunk; a file up to this size may be sent as one chunk.
    pub const MAX_CHUNK: u64 = 64_000_000;
    /// Largest final chunk, which absorbs the remainder.
    pub const MAX_FINAL_CHUNK: u64 = 128_000_000;
    pub const MAX_CHUNKS: u64 = 1000;
}

use limits::*;

/// What `source_info` declares: `video_size`, `chunk_size`, `total_chunk_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlan {
    pub video_size: u64,
    pub chunk_size: u64,
    pub total_chunk_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the file is empty")]
    Empty,
    #[error("a chunk of {chunk} bytes is outside TikTok's {MIN_CHUNK}..={MAX_CHUNK} bytes")]
    ChunkSize { chunk: u64 },
    #[error("{count} chunks; TikTok takes 1 to {MAX_CHUNKS}")]
    ChunkCount { count: u64 },
    #[error("the final chunk would be {last} bytes; TikTok takes at most {MAX_FINAL_CHUNK}")]
    FinalChunk { last: u64 },
    #[error(
        "a single chunk of {size} bytes is over TikTok's {MAX_CHUNK}; the file must be chunked"
    )]
    MustBeChunked { size: u64 },
    #[error(
        "one chunk of {chunk} bytes for a {size}-byte file: TikTok rejects a single chunk smaller than the file"
    )]
    SingleChunkSmallerThanFile { size: u64, chunk: u64 },
}

impl ChunkPlan {
    /// The plan for exactly this chunk size, checked against every documented rule.
    pub fn with_chunk_size(video_size: u64, chunk_size: u64) -> Result<ChunkPlan, PlanError> {
        if video_size == 0 {
            return Err(PlanError::Empty);
        }
        if chunk_size >= video_size {
            // One chunk: it must be the whole file.
            if chunk_size != video_size {
                return Err(PlanError::ChunkSize { chunk: chunk_size });
            }
            if video_size > MAX_CHUNK {
                return Err(PlanError::MustBeChunked { size: video_size });
            }
            return Ok(ChunkPlan {
                video_size,
                chunk_size,
                total_chunk_count: 1,
            });
        }
        if !(MIN_CHUNK..=MAX_CHUNK).contains(&chunk_size) {
            return Err(PlanError::ChunkSize { chunk: chunk_size });
        }
        let count = video_size / chunk_size;
        if count == 1 {
            return Err(PlanError::SingleChunkSmallerThanFile {
                size: video_size,
                chunk: chunk_size,
            });
        }
        if count > MAX_CHUNKS {
            return Err(PlanError::ChunkCount { count });
        }
        let last = video_size - (count - 1) * chunk_size;
        if last > MAX_FINAL_CHUNK {
            return Err(PlanError::FinalChunk { last });
        }
        Ok(ChunkPlan {
            video_size,
            chunk_size,
            total_chunk_count: count,
        })
    }

    /// The plan upq uses: one chunk whenever the file fits in one (the form TikTok has
    /// accepted most reliably), else chunks near `preferred`, adjusted to the rules.
    pub fn choose(video_size: u64, preferred: u64) -> Result<ChunkPlan, PlanError> {
        if video_size == 0 {
            return Err(PlanError::Empty);
        }
        if video_size <= MAX_CHUNK {
            return ChunkPlan::with_chunk_size(video_size, video_size);
        }
        let mut chunk = preferred.clamp(MIN_CHUNK, MAX_CHUNK);
        // At most 1000 chunks: grow the chunk (rounding up) until they fit.
        if video_size / chunk > MAX_CHUNKS {
            chunk = video_size.div_ceil(MAX_CHUNKS);
        }
        // Never one chunk smaller than the file: between one and two chunks, halve it.
        if video_size / chunk < 2 {
            chunk = video_size / 2;
        }
        ChunkPlan::with_chunk_size(video_size, chunk)
    }

    /// `(offset, length)` of each chunk in order; the last absorbs the remainder.
    pub fn chunks(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        (0..self.total_chunk_count).map(move |index| {
            let offset = index * self.chunk_size;
            (offset, self.len_at(offset))
        })
    }

    /// Length of the chunk starting at `offset`: the final one absorbs the remainder.
    pub fn len_at(&self, offset: u64) -> u64 {
        let remaining = self.video_size.saturating_sub(offset);
        if offset / self.chunk_size + 1 >= self.total_chunk_count {
            remaining
        } else {
            self.chunk_size.min(remaining)
        }
    }

    /// True when a chunk starts at `offset`, or it is the end of the file.
    pub fn is_boundary(&self, offset: u64) -> bool {
        offset == self.video_size
            || (offset.is_multiple_of(self.chunk_size)
                && offset / self.chunk_size < self.total_chunk_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_documented_example() {
        // 50,000,123 bytes in chunks of 10,000,000: five chunks, the last 10,000,123.
        let plan = ChunkPlan::with_chunk_size(50_000_123, 10_000_000).unwrap();
        assert_eq!(plan.total_chunk_count, 5);
        let chunks: Vec<_> = plan.chunks().collect();
        assert_eq!(chunks.len(), 5);
        assert_eq!(chunks[4], (40_000_000, 10_000_123));
    }

    #[test]
    fn small_files_are_one_chunk_of_their_size() {
        let plan = ChunkPlan::choose(1_234_567, 10_000_000).unwrap();
        assert_eq!((plan.chunk_size, plan.total_chunk_count), (1_234_567, 1));
        let plan = ChunkPlan::choose(64_000_000, 10_000_000).unwrap();
        assert_eq!(plan.total_chunk_count, 1);
    }

    #[test]
    fn the_rejected_shapes_are_refused() {
        // Between one and two chunks with a chunk smaller than the file.
        assert!(matches!(
            ChunkPlan::with_chunk_size(15_000_000, 10_000_000),
            Err(PlanError::SingleChunkSmallerThanFile { .. })
        ));
        assert!(matches!(
            ChunkPlan::with_chunk_size(100_000_000, 100_000_000),
            Err(PlanError::MustBeChunked { .. })
        ));
        assert!(matches!(
            ChunkPlan::with_chunk_size(300_000_000, 4_000_000),
            Err(PlanError::ChunkSize { .. })
        ));
        assert!(matches!(
            ChunkPlan::with_chunk_size(6_000_000_000, 5_000_000),
            Err(PlanError::ChunkCount { .. })
        ));
        assert_eq!(ChunkPlan::choose(0, 1), Err(PlanError::Empty));
    }

    #[test]
    fn just_over_one_chunk_is_split_in_two() {
        let plan = ChunkPlan::choose(64_000_001, 64_000_000).unwrap();
        assert_eq!(plan.total_chunk_count, 2);
        let chunks: Vec<_> = plan.chunks().collect();
        assert_eq!(chunks[0].1 + chunks[1].1, 64_000_001);
    }

    proptest! {
        /// Every plan `choose` makes obeys every rule and covers the file exactly.
        #[test]
        fn chosen_plans_obey_the_rules(
            size in 1u64..=10_000_000_000,
            preferred in 1u64..=200_000_000,
        ) {
            match ChunkPlan::choose(size, preferred) {
                Ok(plan) => {
                    let chunks: Vec<_> = plan.chunks().collect();
                    prop_assert_eq!(chunks.len() as u64, plan.total_chunk_count);
                    prop_assert!((1..=MAX_CHUNKS).contains(&plan.total_chunk_count));
                    prop_assert_eq!(plan.total_chunk_count, size / plan.chunk_size);
                    let mut next = 0;
                    for (i, (offset, len)) in chunks.iter().enumerate() {
                        prop_assert_eq!(*offset, next);
                        if i + 1 < chunks.len() {
                            prop_assert!((MIN_CHUNK..=MAX_CHUNK).contains(len));
                        } else {
                            prop_assert!(*len <= MAX_FINAL_CHUNK);
                        }
                        next += len;
                    }
                    prop_assert_eq!(next, size);
                    if plan.total_chunk_count == 1 {
                        prop_assert_eq!(plan.chunk_size, size);
                        prop_assert!(size <= MAX_CHUNK);
                    }
                }
                // Only files too large for 1000 chunks of 64 MB may be refused.
                Err(e) => prop_assert!(size > MAX_CHUNKS * MAX_CHUNK, "{size}: {e}"),
            }
        }
    }
}
