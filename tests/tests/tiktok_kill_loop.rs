//! Crash safety on TikTok: `kill -9` upqd at many random moments while it uploads real
//! videos in chunks, follows processing and cancels; restart it each time. Every job
//! not canceled ends with exactly one complete, byte-identical upload and one post.
//!
//! Set UPQ_KILL_SEED to replay a run; the seed is printed at the start.

mod tiktok_common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tiktok_common::*;
use upq_tests::jobs::{assert_consistent_history, kill_seed, Rng};
use upq_tests::tiktok::TikTokServer;
use upq_tests::{wait_until, JobState, JobView, SourceFile, TestEnv};

#[test]
fn kill_nine_while_posting_to_tiktok_publishes_each_video_once() {
    let seed = kill_seed();
    let mut rng = Rng(seed);
    let env = TestEnv::new("tiktok-kill-loop");
    let server = TikTokServer::start(options());
    configure_with(
        &env,
        &server,
        "direct",
        "max_active = 3\nrate_limit = \"60MiB\"",
        "chunk_size = \"5MB\"",
    );
    let sizes = [30_000_000u64, 66_000_000, 90_000_000, 130_000_123];
    let files: Vec<SourceFile> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| mp4_of_size(&env, &format!("take-{i}"), size))
        .collect();
    let mut daemon = env.start_daemon();
    let mut jobs: BTreeMap<u64, usize> = BTreeMap::new();
    for (index, file) in files.iter().enumerate() {
        let id = env.add(file, &["--title", &format!("take {index}")]);
        jobs.insert(id, index);
    }

    let ids: Vec<u64> = jobs.keys().copied().collect();
    let mut to_cancel = Some(ids[rng.below(ids.len() as u64) as usize]);
    let kills = 12;
    let cancel_round = rng.below(kills);
    let mut canceled: BTreeSet<u64> = BTreeSet::new();
    let total_sent = || -> u64 { env.list(true).iter().map(|j| j.bytes_sent).sum() };
    let all_done = || env.list(false).is_empty();
    for round in 0..kills {
        let target = total_sent() + (1 + rng.below(30)) * 1_000_000;
        wait_until(
            Duration::from_secs(60),
            format!("seed {seed}: progress before kill {round}"),
            || all_done() || total_sent() >= target,
        );
        if round == cancel_round {
            if let Some(id) = to_cancel.take() {
                let out = env.ctl(["cancel", &id.to_string()]);
                if out.status.success() {
                    canceled.insert(id);
                } else {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    assert!(
                        stderr.contains("commit point") || stderr.contains("cannot be canceled"),
                        "seed {seed}: cancel of {id} failed unexpectedly: {stderr}"
                    );
                }
            }
        }
        env.disconnect();
        daemon.kill9();
        daemon.restart();
    }

    for &id in jobs.keys().filter(|id| !canceled.contains(id)) {
        wait_state(
            &env,
            &server,
            id,
            JobState::Published,
            Duration::from_secs(300),
        );
    }
    let all: BTreeMap<u64, JobView> = jobs.keys().map(|&id| (id, env.show(id))).collect();
    for job in all.values() {
        assert_consistent_history(job, seed);
    }

    // One complete upload per published job, with that job's bytes, and its post id.
    let complete: Vec<_> = server
        .uploads()
        .into_iter()
        .filter(|u| u.complete)
        .collect();
    let published: Vec<&JobView> = all
        .values()
        .filter(|j| j.state == JobState::Published)
        .collect();
    assert_eq!(
        complete.len(),
        published.len(),
        "seed {seed}: {} complete uploads for {} published jobs:\n{}",
        complete.len(),
        published.len(),
        server.describe()
    );
    for job in &published {
        let file = &files[jobs[&job.id]];
        let upload = complete
            .iter()
            .find(|u| u.blake3.as_deref() == Some(file.hash.as_str()))
            .unwrap_or_else(|| panic!("seed {seed}: no complete upload of job {}'s file", job.id));
        let post_id = upload.post_id.expect("a completed direct post has an id");
        assert!(
            job.remote
                .as_deref()
                .is_some_and(|r| r.contains(&post_id.to_string())),
            "seed {seed}: job {} records post {post_id}: {:?}",
            job.id,
            job.remote
        );
    }

    // A canceled job is a draft, and none of its uploads was completed.
    let drafts: BTreeSet<u64> = env.drafts().iter().map(|j| j.id).collect();
    for &id in &canceled {
        assert!(
            drafts.contains(&id),
            "seed {seed}: canceled job {id} is not a draft"
        );
        let file = &files[jobs[&id]];
        assert!(
            !complete
                .iter()
                .any(|u| u.blake3.as_deref() == Some(file.hash.as_str())),
            "seed {seed}: canceled job {id} was posted"
        );
    }
    // Resending a chunk the server already had (its answer lost in a kill) meets 416 and
    // is the expected recovery; a kill cuts a PUT's body short.
    assert_no_violations_but(&server, &["416", "the body ended after"]);
    let _ = daemon.stop();
}
