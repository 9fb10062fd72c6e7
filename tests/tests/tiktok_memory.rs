//! Memory use of a TikTok upload in 64 MB chunks: chunk bodies stream from the file, so
//! neither the memory upqd holds (`RssAnon`) nor the growth of its resident set during the
//! upload ever reaches the size of a single chunk. (The resident set itself also counts the
//! debug binary's code pages, which track the program's size, not what it does.)

mod tiktok_common;

use std::time::{Duration, Instant};

use tiktok_common::*;
use upq_tests::tiktok::TikTokServer;
use upq_tests::{wait_for, JobState, TestEnv};

/// Less than one 64,000,000-byte chunk.
const LIMIT_KIB: u64 = 60 * 1024;

#[test]
fn a_gigabyte_in_64_mb_chunks_never_holds_a_chunk_in_memory() {
    let env = TestEnv::new("tiktok-memory");
    let server = TikTokServer::start(options());
    configure(&env, &server, "inbox", "chunk_size = \"64MB\"");
    let video = mp4_of_size(&env, "feature", 1_000_000_000);
    let daemon = env.start_daemon();
    let baseline = daemon.proc_status_kib("VmRSS").expect("VmRSS of upqd");
    let started = Instant::now();
    let id = env.add(&video, &[]);
    let mut peak = 0;
    let mut peak_anon = 0;
    let mut samples = 0u32;
    wait_for(Duration::from_secs(600), "the 1 GB upload", || {
        peak = peak.max(daemon.proc_status_kib("VmRSS").expect("upqd is running"));
        peak_anon = peak_anon.max(daemon.proc_status_kib("RssAnon").expect("upqd is running"));
        samples += 1;
        let job = env.job(id);
        assert!(
            !matches!(job.state, JobState::Failed | JobState::Canceled),
            "{job:?}"
        );
        (job.state == JobState::Published).then_some(())
    });
    let high_water = daemon.proc_status_kib("VmHWM").expect("VmHWM of upqd");
    eprintln!(
        "tiktok memory: 1 GB in 64 MB chunks in {:.1} s; VmRSS at start {:.1} MiB, peak sampled \
         {:.1} MiB (RssAnon {:.1} MiB) over {samples} samples, VmHWM {:.1} MiB",
        started.elapsed().as_secs_f64(),
        baseline as f64 / 1024.0,
        peak as f64 / 1024.0,
        peak_anon as f64 / 1024.0,
        high_water as f64 / 1024.0
    );
    let record = &server.uploads()[0];
    assert_eq!(record.chunk_size, 64_000_000);
    assert_clean_upload(&server, record, &video);
    assert!(samples >= 5, "too few samples ({samples})");
    assert!(
        peak_anon < LIMIT_KIB,
        "RssAnon reached {peak_anon} KiB during the upload"
    );
    assert!(
        high_water - baseline < LIMIT_KIB,
        "VmHWM is {high_water} KiB, from {baseline} KiB at the start"
    );
}
