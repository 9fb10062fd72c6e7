//! Posts: one file to several destinations, stored with its jobs in one transaction, shown
//! with them, and released together.
//!
//! A post's release is recorded on the post, durably, before any job is released; at a
//! start, a post whose release began has its remaining jobs released, so a crash in the
//! middle of `publish pN` never leaves a post half public.

use std::collections::BTreeSet;

use upq_proto::{
    metadata_for, AddOptions, AddPostRequest, AddRequest, ErrorCode, PostId, PostView,
};

use upq_proto::JobState;

use super::views::{encoded_bound, Page};
use super::{Service, ServiceError, State};
use crate::destinations::Destinations;
use crate::job::{Job, Summary};
use crate::post::Post;

/// Why job `id`, of a post held for a release together, does not start its upload yet:
/// its destination forgets an upload not committed in time (TikTok's upload_url lives an
/// hour), so it starts only once every other job of the post whose uploads keep is ready
/// at its commit point. Members ready early then wait for it, not it for them. `None` when
/// it may start. Jobs with a publish time start by that time instead (`start_time`).
pub(crate) fn waits_for_post(
    state: &State,
    destinations: &Destinations,
    id: u64,
    job: &Summary,
) -> Option<String> {
    if !job.hold() || job.started() || job.committed() {
        return None;
    }
    let post = job.post()?;
    let lifetime = destinations
        .get(job.destination().as_ref())?
        .upload_lifetime()?;
    let expires = |other: &Summary| {
        destinations
            .get(other.destination().as_ref())
            .is_some_and(|d| d.upload_lifetime().is_some())
    };
    let (other, _) = state.jobs.iter().find(|&(&other_id, other)| {
        other_id != id
            && other.post() == Some(post)
            && !other.state().is_terminal()
            && other.state() != JobState::Held
            && !other.committed()
            && !expires(other)
    })?;
    Some(format!(
        "job {other} of {} to be ready: {}'s upload expires {} after it starts, so it starts last",
        PostId(post),
        job.destination(),
        humantime::format_duration(lifetime)
    ))
}

impl Service {
    /// Queues a post: one job per destination, each checked like an `add`. One refusal
    /// stores nothing and is the answer, naming the destination.
    pub async fn add_post(&self, request: AddPostRequest) -> Result<PostView, ServiceError> {
        let bad = |message: String| ServiceError::new(ErrorCode::BadRequest, message);
        if request.destinations.len() < 2 {
            return Err(bad(
                "a post needs at least two destinations; one is a plain add".into(),
            ));
        }
        let mut seen = BTreeSet::new();
        if let Some(twice) = request
            .destinations
            .iter()
            .find(|name| !seen.insert(name.as_str()))
        {
            return Err(bad(format!("destination '{twice}' is named twice")));
        }
        if let Some(stray) = request
            .overrides
            .keys()
            .find(|name| !seen.contains(name.as_str()))
        {
            return Err(bad(format!(
                "metadata is given for '{stray}', which is not one of the post's destinations ({})",
                request.destinations.join(", ")
            )));
        }
        // `--delay`: every job is held until all are ready and the delay has passed; the
        // post releases them together. `--at` is one review time for every job.
        let mut options = request.options.clone();
        let mut release_after = None;
        if let (None, Some(ms)) = (options.at, options.delay_ms.take()) {
            if !options.hold {
                release_after = Some(self.now() + chrono::Duration::milliseconds(ms as i64));
                options.hold = true;
            }
        }
        let adds = request
            .destinations
            .iter()
            .map(|destination| AddRequest {
                file: request.file.clone(),
                options: AddOptions {
                    destination: Some(destination.clone()),
                    metadata: metadata_for(&options.metadata, request.overrides.get(destination)),
                    ..options.clone()
                },
            })
            .collect();
        let prepared = self.prepare_adds(adds).await;
        let mut news = Vec::with_capacity(prepared.len());
        for (destination, prepared) in request.destinations.iter().zip(prepared) {
            match prepared {
                Ok(new) => news.push(new),
                Err(e) => {
                    return Err(ServiceError::new(
                        e.code,
                        format!(
                            "destination '{destination}': {}; nothing was queued",
                            e.message
                        ),
                    ))
                }
            }
        }
        self.inner.store.check_space()?;
        let now = self.now();
        let file = news[0].file.clone();
        let title = options.metadata.title.clone();
        let (post, jobs) = {
            let mut state = self.lock();
            let (post, jobs) = self.inner.store.insert_post(
                news.len(),
                |id, n| Job::queued(id, news[n].clone(), now),
                |id, jobs| {
                    Post::new(
                        id,
                        file.clone(),
                        title.clone(),
                        jobs,
                        request.all_or_nothing,
                        release_after,
                        now,
                    )
                },
            )?;
            for job in &jobs {
                state.remember(job);
            }
            (post, jobs)
        };
        self.durable().await?;
        tracing::info!(post = %PostId(post.id()), jobs = ?post.jobs(), "post queued");
        for job in &jobs {
            self.announce_added(job);
        }
        // Each job as `show` gives it, history included.
        self.show_post(PostId(post.id()))
    }

    fn post_record(&self, id: PostId) -> Result<Post, ServiceError> {
        self.inner
            .store
            .post(id.0)?
            .ok_or_else(|| ServiceError::new(ErrorCode::NotFound, format!("no post {id}")))
    }

    /// A post with its jobs, each with its history. A job discarded since is left out.
    pub fn show_post(&self, id: PostId) -> Result<PostView, ServiceError> {
        self.post_view(id, true)
    }

    /// A post with the views of its jobs that still exist, with or without their histories.
    pub fn post_view(&self, id: PostId, history: bool) -> Result<PostView, ServiceError> {
        self.view_of_post(&self.post_record(id)?, history)
    }

    /// The posts after post number `after`, each with its jobs (no histories): every one
    /// (`all`), or those with a job not ended. With a `limit`, a page also stops before
    /// its answer could outgrow the protocol's line cap, as `list`'s do.
    pub fn list_posts(
        &self,
        all: bool,
        after: Option<u64>,
        limit: Option<u32>,
    ) -> Result<Vec<PostView>, ServiceError> {
        let mut page = Page::new(limit);
        for post in self.inner.store.posts_after(after) {
            if page.is_full() {
                break;
            }
            let view = self.view_of_post(&post?, false)?;
            if !all && (view.jobs.is_empty() || view.state.is_terminal()) {
                continue;
            }
            let bytes = 1024 + view.jobs.iter().map(encoded_bound).sum::<usize>();
            if !page.push(view, bytes) {
                break;
            }
        }
        Ok(page.items)
    }

    fn view_of_post(&self, post: &Post, history: bool) -> Result<PostView, ServiceError> {
        let mut jobs = Vec::with_capacity(post.jobs().len());
        for &job in post.jobs() {
            let view = if history {
                self.show(job)
            } else {
                let state = self.lock();
                self.record(job).map(|record| self.view_of(&state, &record))
            };
            match view {
                Ok(view) => jobs.push(view),
                Err(e) if e.code == ErrorCode::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(post.view(jobs))
    }

    /// Every post's id, in order.
    pub fn post_ids(&self) -> Result<Vec<PostId>, ServiceError> {
        Ok(self
            .inner
            .store
            .posts()?
            .iter()
            .map(|post| PostId(post.id()))
            .collect())
    }

    /// The job ids named, then every job of the posts named, in order and without repeats.
    pub fn expand(&self, ids: &[u64], posts: &[PostId]) -> Result<Vec<u64>, ServiceError> {
        let mut seen = BTreeSet::new();
        let mut out: Vec<u64> = ids.iter().copied().filter(|&id| seen.insert(id)).collect();
        for &post in posts {
            let record = self.post_record(post)?;
            out.extend(record.jobs().iter().copied().filter(|&id| seen.insert(id)));
        }
        Ok(out)
    }

    /// `publish` of jobs and posts: the release of each post is recorded first, durably,
    /// then every job named or belonging to a post named is released in one batch.
    pub async fn publish_targets(
        &self,
        ids: &[u64],
        posts: &[PostId],
    ) -> Result<Vec<upq_proto::BatchItem>, ServiceError> {
        let jobs = self.expand(ids, posts)?;
        self.begin_release(posts).await?;
        crate::crash_point("post-release-begun");
        self.publish(jobs).await
    }

    /// Records, durably, that the release of each post named began, before any of its
    /// jobs is released.
    async fn begin_release(&self, posts: &[PostId]) -> Result<(), ServiceError> {
        if posts.is_empty() {
            return Ok(());
        }
        let now = self.now();
        for &id in posts {
            let mut post = self.post_record(id)?;
            if post.released_at().is_none() {
                post.release(now);
                self.inner.store.write_post(&post)?;
            }
        }
        self.durable().await
    }

    /// After job `failed` of post `post` failed: if the post is all or nothing and its
    /// release has not begun, holds every other job not yet committed at its commit point,
    /// until the user releases the rest (`publish pN`) or cancels. Each says why in its
    /// history.
    pub(super) fn hold_post_back(&self, state: &mut State, post: u64, failed: u64) {
        let record = match self.inner.store.post(post) {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(post = %PostId(post), error = %e, "cannot read the post of a failed job");
                return;
            }
        };
        if !record.all_or_nothing() || record.released_at().is_some() {
            return;
        }
        for &id in record.jobs().iter().filter(|&&id| id != failed) {
            let mut job = match self.record(id) {
                Ok(job) => job,
                // A job discarded since has nothing left to hold.
                Err(e) if e.code == ErrorCode::NotFound => continue,
                Err(e) => {
                    tracing::error!(job = id, error = %e, "cannot hold back a job of an all-or-nothing post");
                    continue;
                }
            };
            if job.state().is_terminal() || job.committed() || job.hold() {
                continue;
            }
            job.hold_back();
            let reason = format!(
                "held back: job {failed} of {} failed and the post is all or nothing; \
                 `upqctl publish {}` releases the rest",
                PostId(post),
                PostId(post)
            );
            if let Err(e) = self.write_changed(state, &mut job, reason) {
                tracing::error!(job = id, error = %e, "cannot hold back a job of an all-or-nothing post");
                continue;
            }
            tracing::info!(job = id, post = %PostId(post), "held back: another job of the post failed");
        }
    }

    /// After a job of post `post` became held: when the post waits for all of its jobs
    /// (`--delay`) and every job not ended is now held, releases them together once the
    /// delay has passed too. An all-or-nothing post with a failed job waits for the user.
    pub(super) fn release_when_ready(&self, state: &State, post: u64) {
        let record = match self.inner.store.post(post) {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(post = %PostId(post), error = %e, "cannot read a post to release it when ready");
                return;
            }
        };
        let Some(after) = record.release_after() else {
            return;
        };
        if record.released_at().is_some() {
            return;
        }
        let states: Vec<JobState> = record
            .jobs()
            .iter()
            .filter_map(|id| state.jobs.get(id).map(|job| job.state()))
            .collect();
        let live: Vec<JobState> = states
            .iter()
            .copied()
            .filter(|s| !s.is_terminal())
            .collect();
        let failed = states.contains(&JobState::Failed);
        if live.is_empty()
            || live.iter().any(|&s| s != JobState::Held)
            || (record.all_or_nothing() && failed)
        {
            return;
        }
        let wait = (after - self.now()).to_std().unwrap_or_default();
        let service = self.clone();
        let id = PostId(post);
        tracing::info!(post = %id, at = %after, "every job of the post is ready; releasing them together");
        self.inner
            .tasks
            .spawn_named(format!("{id}: release when ready"), async move {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = service.inner.shutdown.cancelled() => return,
                }
                if let Err(e) = service.publish_targets(&[], &[id]).await {
                    tracing::error!(post = %id, error = %e, "cannot release the post");
                }
            });
    }

    /// At a start: finishes the release of every post whose release began, by releasing
    /// its jobs that are still held back. Returns how many jobs it released.
    pub async fn finish_releases(&self) -> Result<usize, ServiceError> {
        let mut released = 0;
        for post in self.inner.store.posts()? {
            if post.released_at().is_none() {
                let state = self.lock();
                self.release_when_ready(&state, post.id());
                continue;
            }
            let waiting: Vec<u64> = post
                .jobs()
                .iter()
                .copied()
                .filter(|&id| {
                    self.job(id).is_some_and(|job| {
                        !job.state().is_terminal()
                            && !job.committed()
                            && !job.release_due(self.now())
                    })
                })
                .collect();
            if waiting.is_empty() {
                continue;
            }
            tracing::info!(post = %PostId(post.id()), jobs = ?waiting, "finishing the release of a post");
            let items = self.publish(waiting).await?;
            released += items.iter().filter(|item| item.error.is_none()).count();
        }
        Ok(released)
    }
}
