//! What a failed attempt leads to: classify the failure, then retry with backoff, start
//! afresh with a new remote upload, or give up.
//!
//! Decides and records through the service; never talks to a destination itself.

use std::time::Duration;

use rand::SeedableRng;
use upq_proto::JobState;

use super::Failure;
use crate::backoff;
use crate::config::FileChangePolicy;
use crate::destinations::{ErrorClass, KIND_EXPIRED};
use crate::job::Event;
use crate::service::{Effects, Service};
use crate::source::{Source, SourceError};

/// How long a job waiting for a sign-in waits before it looks again by itself; a sign-in
/// wakes it at once.
const SIGNIN_RECHECK: Duration = Duration::from_secs(3600);

/// The longest wait between two looks at a full destination.
const NO_SPACE_MAX_DELAY: Duration = Duration::from_secs(60);

/// Records a failed attempt: retry with backoff, start afresh, or give up.
pub(super) async fn fail(service: &Service, id: u64, failure: Failure) {
    let Some(job) = service.job(id) else { return };
    let config = service.config();
    let settings = &config.daemon;
    let (error, class) = match failure {
        Failure::Superseded => return,
        Failure::Destination(e) => (Service::error_of(e.kind, &e.message), e.class),
        Failure::Stalled(stall) => (
            Service::error_of("stalled", stall.message()),
            ErrorClass::Transient { retry_after: None },
        ),
        Failure::Source(e) => {
            let kind = match &e {
                SourceError::Changed { .. } => "file_changed",
                SourceError::Missing { .. } => "file_missing",
                SourceError::NotAFile { .. } => "file_changed",
                SourceError::Unreadable { .. } => "file_unreadable",
            };
            let class = match (&e, settings.on_file_change) {
                (SourceError::Unreadable { .. }, _) => ErrorClass::Transient { retry_after: None },
                (SourceError::Changed { .. }, FileChangePolicy::Restart) => ErrorClass::SessionGone,
                _ => ErrorClass::Permanent,
            };
            (Service::error_of(kind, e.to_string()), class)
        }
    };
    // Starting afresh uploads the file as it is now.
    let fresh_fingerprint = if matches!(class, ErrorClass::SessionGone | ErrorClass::Restart) {
        let file = job.file().to_path_buf();
        tokio::task::spawn_blocking(move || Source::open(&file).map(|s| s.fingerprint()))
            .await
            .ok()
            .and_then(Result::ok)
    } else {
        None
    };
    let attempts = job.attempts().saturating_add(1);
    // Only progress ends a stall episode; another error on the way does not.
    let stalls = if error.kind == "stalled" {
        job.stalls().saturating_add(1)
    } else {
        job.stalls()
    };
    let file_problem = error.kind.starts_with("file_") || error.kind == "verify_failed";
    let (counted, stalled) = (job.attempts(), job.stalls());
    let result = match class {
        // A used-up quota: wait until it resets, without using up attempts.
        ErrorClass::Quota { until } => {
            let next = until.max(service.now());
            service.apply(
                id,
                Event::FailTransient,
                format!("waiting for the quota: {}", error.message),
                |job| {
                    job.record_failure(counted, stalled, error.clone());
                    job.retry_at(next);
                },
            )
        }
        // Not the job's fault: it waits for a person without using up its attempts.
        ErrorClass::SigninRequired => {
            let next =
                service.now() + chrono::Duration::from_std(SIGNIN_RECHECK).unwrap_or_default();
            service.apply(
                id,
                Event::FailTransient,
                format!("waiting for a sign-in: {}", error.message),
                |job| {
                    job.record_failure(counted, stalled, error.clone());
                    job.retry_at(next);
                },
            )
        }
        // The network is down (NetworkManager says so): the request could not have gone
        // through. The job waits for the network, held by the scheduler, without using up
        // an attempt, and goes the moment connectivity is back.
        ErrorClass::Transient { .. } if service.offline_for(job.destination()) => service.apply(
            id,
            Event::FailTransient,
            format!("waiting for the network: {}", error.message),
            |job| {
                job.record_failure(counted, stalled, error.clone());
                job.retry_at(service.now());
            },
        ),
        ErrorClass::Permanent => service.apply_with(
            id,
            Event::FailPermanent,
            format!("failed: {}", error.message),
            |job| {
                job.record_failure(attempts, stalls, error.clone());
                // Bytes of a changed or corrupt file must never be completed later.
                let cleanup = if file_problem && !job.committed() {
                    job.start_afresh()
                } else {
                    None
                };
                Effects { cleanup }
            },
        ),
        _ if stalls >= settings.stall_retries => service.apply(
            id,
            Event::FailPermanent,
            format!(
                "gave up: stalled {stalls} times in a row without progress ({})",
                error.message
            ),
            |job| {
                job.record_failure(attempts, stalls, error.clone());
            },
        ),
        // A full destination waits for space however long that takes.
        _ if attempts >= settings.retry.max_attempts && error.kind != "no_space" => service.apply(
            id,
            Event::FailPermanent,
            format!("gave up after {attempts} attempts: {}", error.message),
            |job| job.record_failure(attempts, stalls, error.clone()),
        ),
        class => {
            let mut rng = rand::rngs::StdRng::from_os_rng();
            let (delay, fresh) = match class {
                // Space freed by the user is noticed within a minute, whatever max_delay says.
                ErrorClass::Transient { .. } if error.kind == "no_space" => (
                    backoff::delay(&settings.retry, attempts, None, &mut rng)
                        .min(NO_SPACE_MAX_DELAY),
                    false,
                ),
                ErrorClass::Transient { retry_after } => (
                    backoff::delay(&settings.retry, attempts, retry_after, &mut rng),
                    false,
                ),
                // Re-ask the offset (or start a new remote upload) right away.
                ErrorClass::OffsetMismatch => (Duration::ZERO, false),
                _ => (Duration::ZERO, true),
            };
            // Nothing was published: the commit point has to be passed again.
            let restart = class == ErrorClass::Restart;
            let next = service.now() + chrono::Duration::from_std(delay).unwrap_or_default();
            service.apply_with(
                id,
                Event::FailTransient,
                format!(
                    "attempt {attempts} failed ({}); retrying in {:.1}s",
                    error.message,
                    delay.as_secs_f64()
                ),
                |job| {
                    job.record_failure(attempts, stalls, error.clone());
                    job.retry_at(next);
                    let cleanup = if fresh && (restart || !job.committed()) {
                        match fresh_fingerprint {
                            Some(fingerprint) => job.start_afresh_from(fingerprint),
                            None => job.start_afresh(),
                        }
                    } else {
                        None
                    };
                    // An upload the remote says is gone has nothing left to discard.
                    let cleanup = cleanup.filter(|_| error.kind != KIND_EXPIRED);
                    Effects { cleanup }
                },
            )
        }
    };
    match result {
        Ok(job) if job.state() == JobState::Retrying && error.kind == "stalled" => {
            service
                .inner
                .notifier
                .stalled(id, job.file(), &error.message)
                .await;
        }
        Ok(job) if job.state() == JobState::Retrying && error.kind == "signin_required" => {
            service.signin_needed(id, job.destination()).await;
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(job = id, error = %e, "failure not recorded: the job moved on"),
    }
}
