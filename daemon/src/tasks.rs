//! Every task the daemon spawns, tracked with what it is, so shutdown can wait for them
//! and name and abort the ones still running when the drain ends. Knows nothing of jobs.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::{AbortHandle, JoinHandle};
use tokio_util::task::TaskTracker;

#[derive(Default)]
struct Live {
    next: u64,
    running: BTreeMap<u64, (String, AbortHandle)>,
}

/// A `TaskTracker` that also keeps each live task's description and abort handle.
#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    live: Arc<Mutex<Live>>,
}

fn lock(live: &Mutex<Live>) -> MutexGuard<'_, Live> {
    // Only inserts and removes happen under the lock; a poisoned map is still consistent.
    live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Tasks {
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// Spawns a task described by where it was spawned from.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let at = std::panic::Location::caller();
        self.spawn_named(format!("task from {}:{}", at.file(), at.line()), future)
    }

    /// Spawns a task with a description for the shutdown log ("job 7: upload worker").
    pub fn spawn_named<F>(&self, what: impl Into<String>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // Held across the spawn so the task cannot finish before it is registered.
        let mut live = lock(&self.live);
        let key = live.next;
        live.next += 1;
        let registry = self.live.clone();
        let handle = self.tracker.spawn(async move {
            let output = future.await;
            lock(&registry).running.remove(&key);
            output
        });
        live.running
            .insert(key, (what.into(), handle.abort_handle()));
        handle
    }

    pub fn close(&self) -> bool {
        self.tracker.close()
    }

    pub async fn wait(&self) {
        self.tracker.wait().await
    }

    /// Descriptions of the tasks still running, oldest first.
    pub fn running(&self) -> Vec<String> {
        lock(&self.live)
            .running
            .values()
            .map(|(what, _)| what.clone())
            .collect()
    }

    /// Closes the tracker and waits up to `timeout` for every task; aborts and logs each
    /// one still running then, and returns their descriptions.
    pub async fn drain(&self, timeout: Duration) -> Vec<String> {
        self.close();
        if tokio::time::timeout(timeout, self.wait()).await.is_ok() {
            return Vec::new();
        }
        let left: Vec<(String, AbortHandle)> = std::mem::take(&mut lock(&self.live).running)
            .into_values()
            .collect();
        for (what, handle) in &left {
            handle.abort();
            tracing::warn!(task = %what, "did not stop within the drain; aborted");
        }
        // Aborted tasks stop at their next await point; a short grace lets them drop.
        let _ = tokio::time::timeout(ABORT_GRACE, self.wait()).await;
        left.into_iter().map(|(what, _)| what).collect()
    }
}

/// How long aborted tasks get to drop after the drain.
const ABORT_GRACE: Duration = Duration::from_millis(200);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Sets its flag when dropped: shows that an aborted task's future was torn down.
    struct Dropped(Arc<AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_aborts_and_names_what_outlives_it() {
        let tasks = Tasks::new();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let stuck_dropped = Arc::new(AtomicBool::new(false));
        {
            let guard = Dropped(stuck_dropped.clone());
            // Waits on something that shutdown does not end (a call that never answers).
            tasks.spawn_named("job 7: upload worker", async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
        }
        let polite_done = Arc::new(AtomicBool::new(false));
        {
            let (shutdown, done) = (shutdown.clone(), polite_done.clone());
            tasks.spawn_named("job 8: upload worker", async move {
                shutdown.cancelled().await;
                done.store(true, Ordering::SeqCst);
            });
        }
        let finished = tasks.spawn(async {});
        finished.await.unwrap();
        assert_eq!(
            tasks.running(),
            ["job 7: upload worker", "job 8: upload worker"],
            "a finished task leaves the registry"
        );

        shutdown.cancel();
        let started = tokio::time::Instant::now();
        let aborted = tasks.drain(Duration::from_secs(4)).await;
        let took = started.elapsed();

        assert_eq!(aborted, ["job 7: upload worker"]);
        assert!(polite_done.load(Ordering::SeqCst), "the polite task ended");
        assert!(
            stuck_dropped.load(Ordering::SeqCst),
            "the stuck task was aborted"
        );
        assert!(tasks.running().is_empty());
        assert!(
            took >= Duration::from_secs(4) && took < Duration::from_millis(4500),
            "the drain is bounded: {took:?}"
        );
    }

    #[tokio::test]
    async fn a_drain_that_finishes_aborts_nothing() {
        let tasks = Tasks::new();
        tasks.spawn(async {});
        assert!(tasks.drain(Duration::from_secs(4)).await.is_empty());
    }
}
