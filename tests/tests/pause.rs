//! Pause and resume: one job mid-upload, and `--all`, which also holds the queue itself.
//!
//! A paused job keeps its offset; resuming continues from the acknowledged byte.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use upq_tests::files::partial_files;
use upq_tests::{
    describe_history, holds_for, resume_offsets, wait_for, wait_until, JobState, OutputExt,
    TestEnv, MIB,
};

#[test]
fn pause_and_resume_mid_upload() {
    let env = TestEnv::new("pause-one");
    let outbox = env.write_local_config("rate_limit = \"20MiB\"", "4MiB");
    let video = env.source("concert.mp4", 80 * MIB);
    let _daemon = env.start_daemon();

    let id = env.add(&video, &[]);
    wait_until(Duration::from_secs(30), "the upload to get going", || {
        let job = env.job(id);
        job.state == JobState::Uploading && job.bytes_sent >= 8 * MIB
    });
    env.ctl(["pause", &id.to_string()])
        .assert_ok("upqctl pause");
    let paused_at = Utc::now();
    let paused = wait_for(Duration::from_secs(10), "the job to be paused", || {
        let job = env.job(id);
        (job.state == JobState::Paused).then_some(job)
    });
    let at_pause = paused.bytes_sent;
    assert!(
        at_pause > 0 && at_pause < video.size,
        "paused at {at_pause}"
    );
    holds_for(
        Duration::from_millis(1500),
        "bytes_sent to stay put while paused",
        || {
            let job = env.job(id);
            job.state == JobState::Paused && job.bytes_sent == at_pause
        },
    );
    assert!(
        !outbox.join(video.name()).exists(),
        "nothing is published while paused"
    );
    assert_eq!(
        partial_files(&outbox, id).len(),
        1,
        "a paused job keeps its partial upload"
    );

    env.ctl(["resume", &id.to_string()])
        .assert_ok("upqctl resume");
    env.wait_published(id, 60);
    video.assert_same_content(&outbox.join(video.name()));

    let job = env.show(id);
    let history = describe_history(&job);
    let offset = resume_offsets(&job)
        .into_iter()
        .filter(|(at, _)| *at >= paused_at)
        .map(|(_, offset)| offset)
        .next()
        .unwrap_or_else(|| panic!("no 'resuming at byte N' after the pause:\n{history}"));
    assert!(
        offset >= at_pause && offset > 0,
        "resumed at {offset}, paused at {at_pause}:\n{history}"
    );
}

/// Paused in the middle of a 64 MiB chunk (the folder's default), a job shows the bytes the
/// destination holds, as confirmed, instead of the last whole chunk (0 B here).
#[test]
fn a_paused_job_shows_the_bytes_the_destination_holds() {
    let env = TestEnv::new("pause-confirmed");
    let outbox = env.write_local_config("rate_limit = \"20MiB\"", "64MiB");
    let video = env.source("long-take.mp4", 76 * MIB);
    let _daemon = env.start_daemon();

    let id = env.add(&video, &[]);
    let partial_len = || {
        partial_files(&outbox, id)
            .first()
            .and_then(|path| std::fs::metadata(path).ok())
            .map_or(0, |meta| meta.len())
    };
    wait_until(
        Duration::from_secs(30),
        "20 MiB to reach the partial file",
        || partial_len() >= 20 * MIB,
    );
    assert_eq!(env.job(id).bytes_sent, 0, "no chunk is acknowledged yet");
    env.ctl(["pause", &id.to_string()])
        .assert_ok("upqctl pause");
    let paused = wait_for(
        Duration::from_secs(10),
        "the paused job to show what the destination holds",
        || {
            let job = env.job(id);
            (job.state == JobState::Paused && job.bytes_sent > 0).then_some(job)
        },
    );
    assert_eq!(
        paused.bytes_sent,
        partial_len(),
        "what the partial file holds"
    );
    assert!(paused.bytes_sent >= 20 * MIB, "{}", paused.bytes_sent);
    let shown = env.ctl(["show", &id.to_string()]);
    shown.assert_ok("upqctl show");
    assert!(
        shown.stdout_text().contains(" confirmed / 76 MiB"),
        "show says the figure is confirmed: {}",
        shown.stdout_text()
    );
    let listed = env.list(false);
    assert_eq!(
        listed
            .iter()
            .find(|job| job.id == id)
            .map(|job| job.bytes_sent),
        Some(paused.bytes_sent)
    );

    env.ctl(["resume", &id.to_string()])
        .assert_ok("upqctl resume");
    env.wait_published(id, 60);
    video.assert_same_content(&outbox.join(video.name()));
    let offsets = resume_offsets(&env.show(id));
    assert!(
        offsets
            .iter()
            .any(|(_, offset)| *offset == paused.bytes_sent),
        "resumed where the paused job said: {offsets:?}"
    );
}

#[test]
fn pause_all_holds_the_queue_until_resume_all() {
    let env = TestEnv::new("pause-all");
    let outbox = env.write_local_config("max_active = 2\nrate_limit = \"20MiB\"", "4MiB");
    let videos: Vec<_> = ["a.mp4", "b.mp4", "c.mp4"]
        .iter()
        .map(|name| env.source(name, 24 * MIB))
        .collect();
    let _daemon = env.start_daemon();

    let mut ids: Vec<u64> = videos.iter().map(|v| env.add(v, &[])).collect();
    wait_until(Duration::from_secs(30), "an upload to get going", || {
        ids.iter().any(|&id| env.job(id).bytes_sent > 0)
    });

    env.ctl(["pause", "--all"]).assert_ok("upqctl pause --all");
    let snapshot: BTreeMap<u64, (JobState, u64)> = wait_for(
        Duration::from_secs(10),
        "every job to be paused or queued",
        || {
            let jobs: BTreeMap<u64, (JobState, u64)> = ids
                .iter()
                .map(|&id| {
                    let job = env.job(id);
                    (id, (job.state, job.bytes_sent))
                })
                .collect();
            jobs.values()
                .all(|(state, _)| matches!(state, JobState::Paused | JobState::Queued))
                .then_some(jobs)
        },
    );
    assert!(
        snapshot
            .values()
            .any(|(state, _)| *state == JobState::Paused),
        "the running uploads should be paused: {snapshot:?}"
    );
    for (id, (state, sent)) in &snapshot {
        if *state == JobState::Queued {
            assert_eq!(*sent, 0, "job {id} is queued but has progress");
        }
    }
    assert_eq!(env.ctl_json(["status"])["queue_paused"], true);

    let late = env.source("d.mp4", 8 * MIB);
    let late_id = env.add(&late, &[]);
    holds_for(
        Duration::from_millis(1500),
        "nothing to move while the queue is paused",
        || {
            let late_job = env.job(late_id);
            late_job.state == JobState::Queued
                && late_job.bytes_sent == 0
                && snapshot.iter().all(|(&id, &(state, sent))| {
                    let job = env.job(id);
                    job.state == state && job.bytes_sent == sent
                })
        },
    );
    assert!(upq_tests::files::final_files(&outbox).is_empty());

    env.ctl(["resume", "--all"])
        .assert_ok("upqctl resume --all");
    ids.push(late_id);
    let mut wait_args: Vec<String> = vec!["wait".into()];
    wait_args.extend(ids.iter().map(u64::to_string));
    wait_args.extend(["--timeout".into(), "120s".into()]);
    let waited = env.ctl(&wait_args);
    assert_eq!(
        waited.code(),
        0,
        "wait for all four: {}",
        waited.stderr_text()
    );

    for video in videos.iter().chain([&late]) {
        video.assert_same_content(&outbox.join(video.name()));
    }
    assert_eq!(env.ctl_json(["status"])["queue_paused"], false);
}
