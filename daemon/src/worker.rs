//! One attempt at one job: resume from the destination's offset, stream chunks, hold or
//! commit, follow processing to the end.
//!
//! State changes go through the service; errors are classified into retry or failure here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use upq_proto::{Event as WireEvent, JobState};

use crate::destinations::body::{ContentHasher, SharedReader, SourceReader};
use crate::destinations::{Chunk, DestError, Destination, ErrorClass, Processing, UploadInfo};
use crate::job::{Event, Job, RemoteSession};
use crate::pacer::{Pacer, Progress};
use crate::service::{Live, Service};
use crate::source::{Source, SourceError};
use crate::stall::{self, Stall, StallSettings};

/// Why an attempt ended early.
#[derive(Debug)]
enum Failure {
    Destination(DestError),
    Source(SourceError),
    /// No progress, or too little, for the stall timeout.
    Stalled(Stall),
    /// The job changed under the worker (paused, canceled, discarded): stop quietly.
    Superseded,
}

impl From<DestError> for Failure {
    fn from(e: DestError) -> Failure {
        Failure::Destination(e)
    }
}

impl From<SourceError> for Failure {
    fn from(e: SourceError) -> Failure {
        Failure::Source(e)
    }
}

mod retry;
use retry::fail;

/// How often progress is reported to subscribers while bytes move.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Drives job `id` until it is published, held, failed, or `token` is cancelled.
pub(crate) async fn run(
    service: &Service,
    id: u64,
    token: CancellationToken,
    progress: Arc<Progress>,
    live: Arc<Live>,
) {
    let acked_pushed = AtomicU64::new(0);
    // The stall detector watches the network part of the attempt (session, offset,
    // chunks), not the commit and processing that follow.
    let (uploading, uploading_rx) = tokio::sync::watch::channel(true);
    let config = service.config();
    let stall_settings = StallSettings {
        timeout: config.daemon.stall_timeout,
        min_speed: config.daemon.min_speed,
    };
    let result = tokio::select! {
        biased;
        _ = token.cancelled() => None,
        result = attempt(service, id, &progress, &acked_pushed, &uploading) => Some(result),
        stall = stall::watch_while(&progress, stall_settings, uploading_rx) => {
            Some(Err(Failure::Stalled(stall)))
        }
        never = report_progress(service, id, &progress, &acked_pushed, &live) => match never {},
    };
    // Bytes that left but were never acknowledged still count as transferred.
    let unacknowledged = progress
        .pushed()
        .saturating_sub(acked_pushed.load(Ordering::Relaxed));
    if unacknowledged > 0 {
        service.update(id, |job| job.record_unacknowledged(unacknowledged));
    }
    match result {
        Some(Err(failure)) if !token.is_cancelled() => fail(service, id, failure).await,
        None => record_confirmed_offset(service, id).await,
        _ => {}
    }
}

/// How long a stopped worker waits for the destination to say what it holds.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);

/// After a pause or a shutdown stopped the transfer mid-chunk, asks the destination what it
/// holds, so the job shows the bytes that are safe instead of the last whole chunk.
async fn record_confirmed_offset(service: &Service, id: u64) {
    let resumable = |job: &Job| {
        !job.committed()
            && matches!(
                job.state(),
                JobState::Paused | JobState::Uploading | JobState::Queued
            )
    };
    let Some(job) = service.job(id).filter(resumable) else {
        return;
    };
    let (Some(session), Some(destination)) = (
        job.remote().cloned(),
        service.destination(job.destination()),
    ) else {
        return;
    };
    let info = UploadInfo::of(&job);
    let asked = tokio::time::timeout(
        CONFIRM_TIMEOUT,
        destination.confirmed_offset(&session, &info, job.bytes_sent()),
    )
    .await;
    let offset = match asked {
        Ok(Ok(offset)) if offset <= info.size => offset,
        Ok(Ok(_)) => return,
        Ok(Err(e)) => {
            tracing::debug!(job = id, error = %e.message, "cannot ask the destination's offset now");
            return;
        }
        Err(_) => {
            tracing::debug!(job = id, "the destination did not say its offset in time");
            return;
        }
    };
    let mut changed = false;
    service.update(id, |job| {
        // A cancel or a new session meanwhile makes the answer moot.
        if resumable(job) && job.remote() == Some(&session) && job.bytes_sent() != offset {
            job.record_offset(&session, offset);
            changed = true;
        }
    });
    if changed {
        tracing::info!(
            job = id,
            confirmed = offset,
            "the destination holds the upload up to here"
        );
        service.emit(WireEvent::Progress {
            id,
            bytes_sent: offset,
            bytes_in_flight: 0,
            size: info.size,
            speed: 0,
        });
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, Failure> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Failure::Source),
        Err(e) => Err(Failure::Destination(DestError::transient(
            "internal",
            format!("file task failed: {e}"),
        ))),
    }
}

fn superseded<T>(result: Result<T, crate::service::ServiceError>) -> Result<T, Failure> {
    result.map_err(|_| Failure::Superseded)
}

async fn attempt(
    service: &Service,
    id: u64,
    progress: &Arc<Progress>,
    acked_pushed: &AtomicU64,
    uploading: &tokio::sync::watch::Sender<bool>,
) -> Result<(), Failure> {
    let job = service.job(id).ok_or(Failure::Superseded)?;
    let destination = service.destination(job.destination()).ok_or_else(|| {
        DestError::permanent(
            "destination",
            format!(
                "destination '{}' is no longer configured",
                job.destination()
            ),
        )
    })?;
    let info = UploadInfo::of(&job);
    let final_chunk_commits = destination.commits_with_final_chunk();
    // Past a separate commit only processing is left; a final-chunk commit may still
    // have its last bytes to send, so it goes through the upload path below.
    if job.committed() && !final_chunk_commits {
        uploading.send_replace(false);
        let (event, reason) = match job.location() {
            None => (Event::CommitStep, "publishing: the commit step runs again"),
            Some(_) => (Event::Start, "following processing"),
        };
        superseded(service.apply(id, event, reason.into(), |_| {}))?;
        return finish(service, &job, destination.as_ref(), &info).await;
    }

    let source = {
        let (file, fingerprint) = (job.file().to_path_buf(), job.fingerprint());
        Arc::new(blocking(move || Source::open_expecting(&file, &fingerprint)).await?)
    };
    let session = destination.open(&info, job.remote()).await?;
    if job.remote() != Some(&session) {
        let stored = session.clone();
        service.update(id, |job| job.attach(stored));
        service.durable_quiet().await;
    }
    let size = info.size;
    let new_session = job.remote() != Some(&session);
    let offset = destination
        .confirmed_offset(&session, &info, job.bytes_sent())
        .await?;
    if offset > size {
        return Err(DestError::transient(
            "protocol",
            format!("the destination claims {offset} bytes of a {size}-byte file"),
        )
        .with_class(ErrorClass::SessionGone)
        .into());
    }
    let mut reason = if offset > 0 {
        format!("resuming at byte {offset} confirmed by the destination")
    } else {
        "upload started".to_string()
    };
    if new_session {
        if let Some(described) = destination.describe_session(&session) {
            reason = format!("{reason} ({described})");
        }
    }
    let job = superseded(service.apply(id, Event::Start, reason, |job| {
        if job.bytes_sent() > offset {
            tracing::info!(
                job = job.id(),
                stored = job.bytes_sent(),
                confirmed = offset,
                "destination confirms less than recorded"
            );
        }
        job.record_offset(&session, offset);
    }))?;

    // The content hash covers every byte; after a resume, pick it up from the file itself.
    let mut hasher = blake3::Hasher::new();
    let known_hash = job
        .content_hash()
        .map(str::to_owned)
        .filter(|_| offset == size);
    if offset > 0 && known_hash.is_none() {
        let (source, progress) = (source.clone(), progress.clone());
        hasher = blocking(move || {
            source.hash_prefix(offset, &mut hasher, || progress.touch())?;
            Ok(hasher)
        })
        .await?;
    }

    let hasher: ContentHasher = Arc::new(std::sync::Mutex::new(hasher));
    let upload = Upload {
        service,
        id,
        destination_name: job.destination(),
        destination: destination.as_ref(),
        info: &info,
        session: &session,
        source: &source,
        hasher: &hasher,
        progress,
        acked_pushed,
    };
    let sent = upload
        .send_chunks(offset, job.committed(), job.fingerprint())
        .await?;
    uploading.send_replace(false);
    if sent == Sent::Held {
        return Ok(());
    }

    let content_hash = match known_hash {
        Some(hash) => hash,
        None => match hasher.lock() {
            Ok(hasher) => hasher.finalize().to_hex().to_string(),
            Err(_) => {
                return Err(DestError::transient("internal", "content hash unavailable").into())
            }
        },
    };
    {
        let (source, fingerprint) = (source.clone(), job.fingerprint());
        blocking(move || source.check_unchanged(&fingerprint)).await?;
    }
    let stored_hash = content_hash.clone();
    service.update(id, |job| job.record_content_hash(&session, stored_hash));
    let session = match destination.settled(&session).await? {
        Some(settled) => {
            let kept = settled.clone();
            service.update(id, |job| job.settle(kept));
            service.durable_quiet().await;
            settled
        }
        None => session,
    };
    if final_chunk_commits {
        return finish(service, &job, destination.as_ref(), &info).await;
    }
    let due = service
        .job(id)
        .ok_or(Failure::Superseded)?
        .release_due(service.now());
    if destination.processes_before_commit() && !due {
        superseded(service.apply(
            id,
            Event::AwaitProcessing,
            "uploaded, not yet public; the platform processes it before the review".into(),
            |_| {},
        ))?;
        processed(service, &job, destination.as_ref(), &session, &info).await?;
    }
    if !commit_durably(service, id, &session, Event::CommitStep).await? {
        return Ok(());
    }
    let job = service.job(id).ok_or(Failure::Superseded)?;
    finish(service, &job, destination.as_ref(), &info).await
}

/// What `Processing::Done` said.
struct Processed {
    location: Option<String>,
    needs_publish: bool,
    note: Option<String>,
}

/// Polls the destination until it has processed the upload (before the review window of a
/// platform that processes first, or after the commit); returns what `Processing::Done`
/// says. Processing slower than `processing_timeout` is notified once, and waited for.
async fn processed(
    service: &Service,
    job: &Job,
    destination: &dyn Destination,
    session: &RemoteSession,
    info: &UploadInfo,
) -> Result<Processed, Failure> {
    let since = tokio::time::Instant::now();
    let mut slow_noted = false;
    loop {
        match destination.poll_processing(session, info).await? {
            Processing::Pending {
                poll_after,
                detail,
                progress,
            } => {
                tracing::debug!(job = job.id(), %detail, "still processing");
                service.record_processing(job.id(), progress);
                let waited = since.elapsed();
                if !slow_noted && waited >= service.config().daemon.processing_timeout {
                    // Platforms sometimes take hours: say so, but keep waiting.
                    slow_noted = true;
                    tracing::warn!(job = job.id(), waited = ?waited, "processing takes longer than processing_timeout");
                    service
                        .inner
                        .notifier
                        .processing_slow(job.file(), waited.as_secs() as i64)
                        .await;
                }
                tokio::time::sleep(poll_after).await;
            }
            Processing::Done {
                location,
                needs_publish,
                note,
            } => {
                service.record_processing(job.id(), None);
                return Ok(Processed {
                    location,
                    needs_publish,
                    note,
                });
            }
        }
    }
}

/// Everything one attempt's chunk loop needs.
struct Upload<'a> {
    service: &'a Service,
    id: u64,
    /// The destination's name, for its own rate limit.
    destination_name: &'a str,
    destination: &'a dyn Destination,
    info: &'a UploadInfo,
    session: &'a RemoteSession,
    source: &'a Arc<Source>,
    hasher: &'a ContentHasher,
    progress: &'a Arc<Progress>,
    acked_pushed: &'a AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Every byte is at the destination.
    Complete,
    /// Stopped before the final chunk, which is the commit point, to wait for release.
    Held,
}

impl Upload<'_> {
    /// Sends the chunks from `offset` to the end of the file.
    async fn send_chunks(
        &self,
        mut offset: u64,
        committed: bool,
        fingerprint: crate::job::Fingerprint,
    ) -> Result<Sent, Failure> {
        let (service, id, size) = (self.service, self.id, self.info.size);
        let pacer = Pacer::new(service.limiter(), self.progress.clone())
            .with_destination_limit(service.destination_limiter(self.destination_name));
        let reader = SourceReader::new(
            self.source.clone(),
            offset,
            size,
            self.destination.piece_size(),
            self.hasher.clone(),
        );
        let source_failure = reader.failure();
        let reader: SharedReader = Arc::new(tokio::sync::Mutex::new(reader));
        while offset < size {
            let len = self
                .destination
                .chunk_len(self.session, size, offset)
                .max(1);
            let is_final = offset + len == size;
            if is_final
                && self.destination.commits_with_final_chunk()
                && !committed
                && !commit_durably(service, id, self.session, Event::Commit).await?
            {
                return Ok(Sent::Held);
            }
            {
                let source = self.source.clone();
                blocking(move || source.check_unchanged(&fingerprint)).await?;
            }
            let body = SourceReader::chunk(&reader, offset, len, self.destination.piece_size());
            let chunk = Chunk {
                offset,
                len,
                body,
                is_final,
            };
            let sent = self
                .destination
                .send_chunk(self.session, self.info, chunk, &pacer)
                .await;
            let confirmed = match sent {
                Ok(confirmed) => confirmed,
                // A problem with the file is reported as such, not as the transfer error it caused.
                Err(e) => {
                    let taken = source_failure.lock().ok().and_then(|mut slot| slot.take());
                    return Err(match taken {
                        Some(source_error) => Failure::Source(source_error),
                        None => Failure::Destination(e),
                    });
                }
            };
            if confirmed != offset + len {
                return Err(DestError::transient(
                    "protocol",
                    format!(
                        "the destination confirmed byte {confirmed} after a chunk ending at {}",
                        offset + len
                    ),
                )
                .with_class(ErrorClass::OffsetMismatch)
                .into());
            }
            offset = confirmed;
            self.acked_pushed
                .store(self.progress.pushed(), Ordering::Relaxed);
            let mut was_stalled = false;
            let job = service
                .update(id, |job| {
                    was_stalled = job.stalls() > 0;
                    job.record_chunk(self.session, offset, len);
                })
                .ok_or(Failure::Superseded)?;
            if was_stalled {
                let notifier = service.inner.notifier.clone();
                service.inner.tasks.spawn_named(
                    format!("job {id}: closing its stall notification"),
                    async move { notifier.recovered(id).await },
                );
            }
            service.emit(WireEvent::Progress {
                id,
                bytes_sent: offset,
                bytes_in_flight: 0,
                size,
                speed: 0,
            });
            if job.state() != JobState::Uploading && job.state() != JobState::Processing {
                return Err(Failure::Superseded);
            }
        }
        Ok(Sent::Complete)
    }
}

/// At the commit point: holds the job if its review window is not over (returns false),
/// or marks it committed (returns true) so a cancel from now on is refused as too late.
/// `commit` is `Commit` when the final chunk commits, `CommitStep` before a separate step.
fn hold_or_commit(
    service: &Service,
    id: u64,
    session: &RemoteSession,
    commit: Event,
) -> Result<bool, Failure> {
    let job = service.job(id).ok_or(Failure::Superseded)?;
    if !job.release_due(service.now()) {
        let reason = match (job.hold(), job.publish_at()) {
            (true, _) => "uploaded; held until `upqctl publish`".to_string(),
            (false, Some(at)) => format!("uploaded; held until {}", at.to_rfc3339()),
            (false, None) => "uploaded; held".to_string(),
        };
        superseded(service.apply(id, Event::Hold, reason, |_| {}))?;
        return Ok(false);
    }
    superseded(service.apply(
        id,
        commit,
        "committing: the upload becomes public".into(),
        |job| job.commit(session),
    ))?;
    Ok(true)
}

/// Makes the commit mark durable before the commit happens, so a crash right after it
/// can never lead to a second upload of the same job.
async fn commit_durably(
    service: &Service,
    id: u64,
    session: &RemoteSession,
    commit: Event,
) -> Result<bool, Failure> {
    let committed = hold_or_commit(service, id, session, commit)?;
    if committed {
        service.durable_quiet().await;
        crate::crash_point(&format!("commit-job-{id}"));
    }
    Ok(committed)
}

/// After the commit point: the separate commit step if still due, processing, publishing.
async fn finish(
    service: &Service,
    job: &Job,
    destination: &dyn Destination,
    info: &UploadInfo,
) -> Result<(), Failure> {
    let id = job.id();
    let job = service.job(id).ok_or(Failure::Superseded)?;
    let session = job
        .remote()
        .cloned()
        .ok_or_else(|| DestError::permanent("internal", "committed job has no remote session"))?;
    if !destination.commits_with_final_chunk() && job.location().is_none() {
        let hash = job
            .content_hash()
            .map(str::to_owned)
            .ok_or_else(|| DestError::permanent("internal", "committed job has no content hash"))?;
        let committed = destination.commit(&session, info, &hash).await?;
        service.update(id, |job| {
            job.record_location(committed.location);
            if let Some(note) = committed.note {
                job.record_commit_note(note);
            }
        });
        service.durable_quiet().await;
    }
    let Processed {
        location,
        needs_publish,
        note,
    } = processed(service, &job, destination, &session, info).await?;
    service.update(id, |job| {
        if let Some(location) = location {
            job.record_location(location);
        }
        if let Some(note) = note {
            let note = match job.commit_note() {
                Some(first) => format!("{first}; {note}"),
                None => note,
            };
            job.record_commit_note(note);
        }
    });
    // A job whose commit step ran is in `publishing` already.
    let processing = service.job(id).map(|job| job.state()) == Some(JobState::Processing);
    if needs_publish && processing {
        superseded(service.apply(id, Event::NeedsPublish, "publishing".into(), |_| {}))?;
    }
    if needs_publish {
        if let Some(location) = destination.publish(&session, info).await? {
            service.update(id, |job| job.record_location(location));
        }
    }
    let job = service.job(id).ok_or(Failure::Superseded)?;
    let mut reason = match &job.location() {
        Some(location) => format!("published at {location}"),
        None => "published".to_string(),
    };
    if let Some(note) = job.commit_note() {
        reason = format!("{reason}; {note}");
    }
    // Whatever went wrong on the way is in the history; the job is fine now.
    superseded(service.apply(id, Event::Published, reason, |_| {}))?;
    service.durable_quiet().await;
    Ok(())
}

/// Reports in-flight progress and speed every quarter second while the attempt runs.
async fn report_progress(
    service: &Service,
    id: u64,
    progress: &Progress,
    acked_pushed: &AtomicU64,
    live: &Live,
) -> std::convert::Infallible {
    const WINDOW: usize = 8;
    let mut samples = [0u64; WINDOW];
    let mut tick = 0usize;
    let mut ticker = tokio::time::interval(PROGRESS_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let pushed = progress.pushed();
        let oldest = samples[tick % WINDOW];
        samples[tick % WINDOW] = pushed;
        tick += 1;
        let span = (tick.min(WINDOW) as f64) * PROGRESS_EVERY.as_secs_f64();
        let bytes_per_second = (pushed.saturating_sub(oldest) as f64 / span) as u64;
        live.speed.store(bytes_per_second, Ordering::Relaxed);
        if let Some(job) = service.job(id) {
            if job.state() == JobState::Uploading {
                let in_flight = pushed
                    .saturating_sub(acked_pushed.load(Ordering::Relaxed))
                    .min(job.fingerprint().size.saturating_sub(job.bytes_sent()));
                live.in_flight.store(in_flight, Ordering::Relaxed);
                service.emit(WireEvent::Progress {
                    id,
                    bytes_sent: job.bytes_sent(),
                    bytes_in_flight: in_flight,
                    size: job.fingerprint().size,
                    speed: bytes_per_second,
                });
            }
        }
    }
}
