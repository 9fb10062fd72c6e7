//! Crash safety: `kill -9` upqd at many random moments while it uploads to a local folder
//! and to the official tus server, cancels and publishes; restart it each time.
//!
//! Set UPQ_KILL_SEED to replay a run; the seed is printed at the start and on failure.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use upq_tests::files::{final_files, partial_files};
use upq_tests::tus::{tus_config, TusServer};
use upq_tests::{wait_until, JobState, JobView, SourceFile, TestEnv};

#[test]
fn kill_nine_at_random_moments_loses_nothing_and_publishes_once() {
    let seed = upq_tests::jobs::kill_seed();
    let mut rng = upq_tests::jobs::Rng(seed);

    let env = TestEnv::new("kill-loop");
    let tus = TusServer::start(&env);
    let outbox = env.root().join("outbox");
    std::fs::create_dir_all(&outbox).expect("outbox");
    let config = tus_config(
        &tus.endpoint,
        "max_active = 3\nrate_limit = \"120MiB\"",
        "base_delay = \"100ms\"\nmax_delay = \"1s\"\nmax_attempts = 50",
        "chunk_size = \"4MiB\"\nio_timeout = \"10s\"",
    ) + &format!(
        "\n[destinations.local]\nkind = \"dir\"\npath = {}\nchunk_size = \"4MiB\"\n",
        upq_tests::env::toml_string(&outbox)
    );
    env.write_config(&config);
    let mut daemon = env.start_daemon();

    let sizes_mb = [20u64, 48, 90, 150, 200];
    let files: Vec<SourceFile> = sizes_mb
        .iter()
        .enumerate()
        .map(|(i, mb)| env.source(&format!("take-{i}.mp4"), mb * 1_000_000))
        .collect();
    // Every file to both destinations: 10 jobs.
    let mut jobs: BTreeMap<u64, (usize, &str)> = BTreeMap::new();
    for (index, file) in files.iter().enumerate() {
        for destination in ["local", "tus"] {
            let id = env.add(
                file,
                &["--to", destination, "--title", &format!("take {index}")],
            );
            jobs.insert(id, (index, destination));
        }
    }

    // Two jobs are canceled along the way, each right before one of the kills.
    let ids: Vec<u64> = jobs.keys().copied().collect();
    let mut to_cancel: Vec<u64> = vec![
        ids[rng.below(ids.len() as u64) as usize],
        ids[rng.below(ids.len() as u64) as usize],
    ];
    to_cancel.dedup();
    let mut canceled: BTreeMap<u64, Option<String>> = BTreeMap::new();
    let kills = 25;
    let cancel_at: BTreeSet<u64> = [rng.below(kills / 2), kills / 2 + rng.below(kills / 2)]
        .into_iter()
        .collect();

    let total_sent = || -> u64 { env.list(true).iter().map(|j| j.bytes_sent).sum() };
    let all_done = || env.list(false).is_empty();
    for round in 0..kills {
        // Let it move on by a random amount (mid-chunk, at chunk boundaries, in commits):
        // between 1 and 40 MB more acknowledged, or until there is nothing left to do.
        let target = total_sent() + (1 + rng.below(40)) * 1_000_000;
        wait_until(
            Duration::from_secs(60),
            format!("seed {seed}: progress before kill {round}"),
            || all_done() || total_sent() >= target,
        );
        if cancel_at.contains(&round) {
            if let Some(id) = to_cancel.pop() {
                let job = env.job(id);
                let out = env.ctl(["cancel", &id.to_string()]);
                if out.status.success() {
                    canceled.insert(id, job.upload_url.clone());
                } else {
                    // Too late (already committed or published): it must then be published.
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    assert!(
                        stderr.contains("commit point") || stderr.contains("cannot be canceled"),
                        "seed {seed}: cancel of {id} failed unexpectedly: {stderr}"
                    );
                }
            }
        }
        daemon.kill9();
        daemon.restart();
    }

    // Everything not canceled ends published, exactly once.
    for (&id, _) in jobs.iter().filter(|(id, _)| !canceled.contains_key(id)) {
        env.wait_published(id, 300);
    }
    let all: BTreeMap<u64, JobView> = jobs.keys().map(|&id| (id, env.show(id))).collect();
    assert_eq!(all.len(), jobs.len(), "seed {seed}: a job was lost");
    for job in all.values() {
        upq_tests::jobs::assert_consistent_history(job, seed);
    }

    // Local: one final file per published local job, byte-identical, no partial left.
    let published_local: Vec<&JobView> = all
        .values()
        .filter(|j| j.destination == "local" && j.state == JobState::Published)
        .collect();
    let finals = final_files(&outbox);
    assert_eq!(
        finals.len(),
        published_local.len(),
        "seed {seed}: outbox holds {finals:?} for {} published local jobs",
        published_local.len()
    );
    for job in &published_local {
        let (index, _) = jobs[&job.id];
        let remote = job
            .remote
            .as_deref()
            .expect("a published local job has its path");
        files[index].assert_same_content(std::path::Path::new(remote));
    }

    // tus: one complete upload per published tus job, byte-identical.
    let published_tus: Vec<&JobView> = all
        .values()
        .filter(|j| j.destination == "tus" && j.state == JobState::Published)
        .collect();
    let complete: Vec<_> = tus
        .uploads()
        .into_iter()
        .filter(|u| u.size.is_some_and(|size| u.received() == size))
        .collect();
    assert_eq!(
        complete.len(),
        published_tus.len(),
        "seed {seed}: {} complete uploads on the server for {} published tus jobs",
        complete.len(),
        published_tus.len()
    );
    for job in &published_tus {
        let (index, _) = jobs[&job.id];
        let url = job
            .remote
            .as_deref()
            .expect("a published tus job has its URL");
        let upload = tus
            .upload(url)
            .unwrap_or_else(|| panic!("seed {seed}: no upload on the server for {url}"));
        upq_tests::tus::assert_stored_copy(&upload, &files[index]);
    }

    // Canceled jobs are drafts with their metadata, and their partial uploads are gone.
    let drafts: BTreeSet<u64> = env.drafts().iter().map(|j| j.id).collect();
    for (&id, upload_url) in &canceled {
        assert!(
            drafts.contains(&id),
            "seed {seed}: canceled job {id} is not a draft"
        );
        assert_eq!(
            all[&id]
                .metadata
                .title
                .as_deref()
                .map(|t| t.starts_with("take")),
            Some(true)
        );
        assert!(
            partial_files(&outbox, id).is_empty(),
            "seed {seed}: job {id} left a partial file"
        );
        if let Some(url) = upload_url {
            wait_until(
                Duration::from_secs(60),
                format!("seed {seed}: DELETE of {url}"),
                || tus.is_gone(url),
            );
        }
    }
    let _ = daemon.stop();
}
