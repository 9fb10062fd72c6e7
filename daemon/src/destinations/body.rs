//! A chunk's bytes, read from the source piece by piece while the destination sends them.
//!
//! One `SourceReader` per attempt reads ahead across chunk boundaries, so the next chunk's
//! first bytes are ready while the previous answer is awaited. Memory stays at two reads
//! per upload whatever the chunk size; every byte read feeds the content hash, in order.
//! Knows nothing about protocols.

use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::Stream;
use tokio::task::JoinHandle;

use super::DestError;
use crate::pacer::Pacer;
use crate::source::{Source, SourceError};

/// The content hash shared between a job's chunks.
pub type ContentHasher = Arc<Mutex<blake3::Hasher>>;

/// Where a source error seen while reading a body is kept for the worker, which
/// would otherwise only see the destination's "body failed".
pub type SourceFailure = Arc<Mutex<Option<SourceError>>>;

/// Bytes read from the file at a time: fewer trips to the blocking pool than pieces.
const READ_BYTES: u64 = 2 * 1024 * 1024;

/// Reads a file sequentially from an offset to its end, one read ahead.
pub struct SourceReader {
    source: Arc<Source>,
    /// Where the next read starts.
    read_at: u64,
    end: u64,
    read_bytes: u64,
    hasher: ContentHasher,
    ahead: Option<JoinHandle<Result<Bytes, SourceError>>>,
    /// What is left of the last read.
    current: Bytes,
    failure: SourceFailure,
}

impl SourceReader {
    /// Reads `[offset, end of file)`; `read_bytes` at a time (at least 2 MiB).
    pub fn new(
        source: Arc<Source>,
        offset: u64,
        end: u64,
        read_bytes: usize,
        hasher: ContentHasher,
    ) -> SourceReader {
        SourceReader {
            source,
            read_at: offset,
            end,
            read_bytes: (read_bytes as u64).max(READ_BYTES),
            hasher,
            ahead: None,
            current: Bytes::new(),
            failure: Arc::default(),
        }
    }

    pub fn failure(&self) -> SourceFailure {
        self.failure.clone()
    }

    fn spawn_read(&mut self) -> JoinHandle<Result<Bytes, SourceError>> {
        let offset = self.read_at;
        let len = self.read_bytes.min(self.end - offset) as usize;
        self.read_at += len as u64;
        let (source, hasher) = (self.source.clone(), self.hasher.clone());
        tokio::task::spawn_blocking(move || {
            let bytes = source.read_at(offset, len)?;
            if let Ok(mut hasher) = hasher.lock() {
                hasher.update(&bytes);
            }
            Ok(bytes)
        })
    }

    fn fail(&self, error: SourceError) -> DestError {
        let message = error.to_string();
        if let Ok(mut slot) = self.failure.lock() {
            *slot = Some(error);
        }
        DestError::transient("source", message)
    }

    /// Up to `max` of the next bytes; empty only at the end of the file.
    async fn take(&mut self, max: usize) -> Result<Bytes, DestError> {
        if self.current.is_empty() {
            let reading = match self.ahead.take() {
                Some(reading) => reading,
                None if self.read_at < self.end => self.spawn_read(),
                None => return Ok(Bytes::new()),
            };
            self.current = match reading.await {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(e)) => return Err(self.fail(e)),
                Err(e) => {
                    return Err(DestError::transient(
                        "internal",
                        format!("read task failed: {e}"),
                    ))
                }
            };
            if self.read_at < self.end {
                self.ahead = Some(self.spawn_read());
            }
        }
        let len = max.min(self.current.len());
        Ok(self.current.split_to(len))
    }

    /// The next `len` bytes as a chunk body, handed out in pieces of `piece_bytes`.
    pub fn chunk(reader: &SharedReader, offset: u64, len: u64, piece_bytes: usize) -> ChunkBody {
        ChunkBody {
            reader: reader.clone(),
            offset,
            remaining: len,
            piece_bytes: piece_bytes.max(4096),
        }
    }
}

/// A reader shared by the chunks of one attempt, each taking its bytes in turn.
pub type SharedReader = Arc<tokio::sync::Mutex<SourceReader>>;

pub struct ChunkBody {
    reader: SharedReader,
    offset: u64,
    remaining: u64,
    piece_bytes: usize,
}

impl ChunkBody {
    /// The next piece, or `None` after the chunk's last byte.
    pub async fn next_piece(&mut self) -> Result<Option<Bytes>, DestError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let max = (self.piece_bytes as u64).min(self.remaining) as usize;
        let piece = self.reader.lock().await.take(max).await?;
        if piece.is_empty() {
            return Err(DestError::transient(
                "source",
                format!(
                    "the file ended {} bytes before the chunk did",
                    self.remaining
                ),
            ));
        }
        self.remaining -= piece.len() as u64;
        Ok(Some(piece))
    }

    /// Runs `visit` over the chunk's bytes in a separate pass (for a checksum that must be
    /// sent before the body), without touching the content hash.
    pub async fn inspect<T: Send + 'static>(
        &self,
        state: T,
        visit: fn(&mut T, &[u8]),
    ) -> Result<T, DestError> {
        let reader = self.reader.lock().await;
        let source = reader.source.clone();
        let (start, end) = (self.offset, self.offset + self.remaining);
        let result = tokio::task::spawn_blocking(move || {
            let mut state = state;
            let mut offset = start;
            while offset < end {
                let len = (1024 * 1024u64).min(end - offset) as usize;
                visit(&mut state, &source.read_at(offset, len)?);
                offset += len as u64;
            }
            Ok::<T, SourceError>(state)
        })
        .await
        .map_err(|e| DestError::transient("internal", format!("read task failed: {e}")))?;
        result.map_err(|e| reader.fail(e))
    }

    /// The body as a stream for an HTTP client, paced and counted by `pacer`.
    /// The stream ends after the first error.
    pub fn into_stream(
        self,
        pacer: Pacer,
    ) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        futures::stream::unfold(Some((self, pacer)), |state| async move {
            let (mut body, pacer) = state?;
            match body.next_piece().await {
                Ok(Some(piece)) => {
                    pacer.admit(piece.len()).await;
                    pacer.sent(piece.len());
                    Some((Ok(piece), Some((body, pacer))))
                }
                Ok(None) => None,
                Err(e) => Some((Err(io::Error::other(e.message)), None)),
            }
        })
    }
}
