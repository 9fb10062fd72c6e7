//! Discarding remote partial uploads after cancel, recover or a fresh restart.
//!
//! Each clean-up is stored with the state change that caused it and retried with backoff,
//! across restarts, until the destination confirms it.

use rand::SeedableRng;
use tokio_util::sync::CancellationToken;

use crate::backoff;
use crate::service::{Service, State};
use crate::store::{Cleanup, Store};

impl Service {
    /// Starts discarding `cleanup` once the job's worker (if any) has stopped.
    pub(crate) fn spawn_cleanup(&self, state: &mut State, seq: u64, cleanup: Cleanup) {
        let key = Store::cleanup_key(cleanup.job_id, seq);
        let worker_finished = state
            .running
            .get(&cleanup.job_id)
            .map(|running| running.finished.clone());
        let done = CancellationToken::new();
        state
            .pending_cleanups
            .entry(cleanup.job_id)
            .or_default()
            .push(done.clone());
        let service = self.clone();
        let what = format!("job {}: discarding the partial upload", cleanup.job_id);
        self.inner.tasks.spawn_named(what, async move {
            let shutdown = service.inner.shutdown.clone();
            if let Some(finished) = worker_finished {
                // The worker may still be writing; discarding before it stops could race it.
                tokio::select! {
                    _ = finished.cancelled() => {}
                    _ = shutdown.cancelled() => return,
                }
            }
            if service.run_cleanup(&key, &cleanup).await {
                done.cancel();
                let mut state = service.lock();
                if let Some(tokens) = state.pending_cleanups.get_mut(&cleanup.job_id) {
                    tokens.retain(|t| !t.is_cancelled());
                    if tokens.is_empty() {
                        state.pending_cleanups.remove(&cleanup.job_id);
                    }
                }
            }
        });
    }

    /// Returns true once the destination confirmed the discard; false on shutdown.
    async fn run_cleanup(&self, key: &[u8], cleanup: &Cleanup) -> bool {
        let shutdown = self.inner.shutdown.clone();
        let Some(destination) = self.destination(&cleanup.destination) else {
            tracing::warn!(
                job = cleanup.job_id,
                destination = %cleanup.destination,
                "cannot discard a partial upload: the destination is no longer configured; kept for later"
            );
            return false;
        };
        let mut rng = rand::rngs::StdRng::from_os_rng();
        let mut attempt = 0u32;
        loop {
            let result = tokio::select! {
                result = destination.discard(&cleanup.session) => result,
                _ = shutdown.cancelled() => return false,
            };
            match result {
                Ok(()) => {
                    if let Err(e) = self.inner.store.remove_cleanup(key) {
                        tracing::error!(job = cleanup.job_id, error = %e, "cannot forget a finished clean-up");
                    }
                    tracing::info!(job = cleanup.job_id, "partial upload discarded");
                    return true;
                }
                Err(e) if !matches!(e.class, crate::destinations::ErrorClass::Transient { .. }) => {
                    tracing::warn!(job = cleanup.job_id, error = %e, "giving up on discarding the partial upload");
                    if let Err(e) = self.inner.store.remove_cleanup(key) {
                        tracing::error!(job = cleanup.job_id, error = %e, "cannot forget an abandoned clean-up");
                    }
                    return true;
                }
                Err(e) => {
                    attempt = attempt.saturating_add(1);
                    let delay =
                        backoff::delay(&self.config().daemon.retry, attempt, None, &mut rng);
                    tracing::warn!(job = cleanup.job_id, error = %e, retry_in = ?delay, "discarding the partial upload failed");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => return false,
                    }
                }
            }
        }
    }

    /// Resumes the clean-ups left over from the last run.
    pub(crate) fn resume_cleanups(&self) -> Result<usize, crate::store::StoreError> {
        let pending = self.inner.store.cleanups()?;
        let count = pending.len();
        for (key, cleanup) in pending {
            let service = self.clone();
            let what = format!("job {}: discarding the partial upload", cleanup.job_id);
            self.inner.tasks.spawn_named(what, async move {
                service.run_cleanup(&key, &cleanup).await;
            });
        }
        Ok(count)
    }

    /// Waits until every clean-up started for job `id` has finished.
    pub(crate) async fn cleanups_done(&self, id: u64) {
        let tokens = self
            .lock()
            .pending_cleanups
            .get(&id)
            .cloned()
            .unwrap_or_default();
        for token in tokens {
            token.cancelled().await;
        }
    }
}
