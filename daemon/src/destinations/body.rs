//! A chunk's bytes, read from the source piece by piece while the destination sends them.
//!
//! Memory stays at two pieces per upload whatever the chunk size; every piece read also
//! feeds the job's content hash, in order. Knows nothing about protocols.

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

pub struct ChunkBody {
    source: Arc<Source>,
    /// Where the next read starts.
    read_at: u64,
    end: u64,
    piece_bytes: u64,
    hasher: ContentHasher,
    ahead: Option<JoinHandle<Result<Bytes, SourceError>>>,
    /// What is left of the last read, handed out a piece at a time.
    current: Bytes,
    failure: SourceFailure,
}

/// Bytes read from the file at a time: fewer trips to the blocking pool than pieces.
const READ_BYTES: u64 = 2 * 1024 * 1024;

impl ChunkBody {
    /// The bytes `[offset, offset + len)` of `source`, in pieces of `piece_bytes`.
    pub fn new(
        source: Arc<Source>,
        offset: u64,
        len: u64,
        piece_bytes: usize,
        hasher: ContentHasher,
    ) -> ChunkBody {
        ChunkBody {
            source,
            read_at: offset,
            end: offset + len,
            piece_bytes: piece_bytes.max(4096) as u64,
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
        let len = self.piece_bytes.max(READ_BYTES).min(self.end - offset) as usize;
        self.read_at += len as u64;
        let (source, hasher) = (self.source.clone(), self.hasher.clone());
        tokio::task::spawn_blocking(move || {
            let piece = source.read_at(offset, len)?;
            if let Ok(mut hasher) = hasher.lock() {
                hasher.update(&piece);
            }
            Ok(piece)
        })
    }

    fn fail(&self, error: SourceError) -> DestError {
        let message = error.to_string();
        if let Ok(mut slot) = self.failure.lock() {
            *slot = Some(error);
        }
        DestError::transient("source", message)
    }

    /// The next piece, or `None` after the last. Reads ahead of what it hands out.
    pub async fn next_piece(&mut self) -> Result<Option<Bytes>, DestError> {
        if self.current.is_empty() {
            match self.next_read().await? {
                Some(read) => self.current = read,
                None => return Ok(None),
            }
        }
        let len = (self.piece_bytes as usize).min(self.current.len());
        Ok(Some(self.current.split_to(len)))
    }

    async fn next_read(&mut self) -> Result<Option<Bytes>, DestError> {
        let reading = match self.ahead.take() {
            Some(reading) => reading,
            None if self.read_at < self.end => self.spawn_read(),
            None => return Ok(None),
        };
        let piece = match reading.await {
            Ok(Ok(piece)) => piece,
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
        Ok(Some(piece))
    }

    /// Runs `visit` over the chunk's bytes in a separate pass (for a checksum that must be
    /// sent before the body), without touching the content hash.
    pub async fn inspect<T: Send + 'static>(
        &self,
        state: T,
        visit: fn(&mut T, &[u8]),
    ) -> Result<T, DestError> {
        let (source, start, end) = (self.source.clone(), self.read_at, self.end);
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
        result.map_err(|e| self.fail(e))
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
