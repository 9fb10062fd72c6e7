//! Memory use of a big upload: a 2 GiB file to `local`, with the daemon's resident set
//! sampled from /proc throughout and its high-water mark checked at the end.
//!
//! The limit is on the memory upqd holds (`RssAnon`: heap, stacks, buffers) and on how much
//! its resident set grows during the upload. The resident set also counts the pages of
//! the binary's code and data it has touched (`RssFile`), about 30 MiB of a debug build,
//! which track the size of the program rather than anything it does with the file.

use std::fs;
use std::time::{Duration, Instant};

use upq_tests::{wait_for, JobState, TestEnv, MIB};

const LIMIT_KIB: u64 = 64 * 1024;
/// What the upload may add to the idle daemon's resident set.
const GROWTH_KIB: u64 = 32 * 1024;

#[test]
fn two_gib_upload_holds_under_64_mib() {
    let env = TestEnv::new("memory");
    let video = env.source("feature-film.mp4", 2048 * MIB);
    let daemon = env.start_daemon();
    let baseline = daemon.proc_status_kib("VmRSS").expect("VmRSS of upqd");

    let started = Instant::now();
    let id = env.add(&video, &[]);
    let mut peak_rss = baseline;
    let mut peak_anon = daemon.proc_status_kib("RssAnon").expect("RssAnon of upqd");
    // RssAnon and RssFile at the peak say whether it is heap or mapped files.
    let mut peak_split = (0, 0);
    let mut samples = 0u32;
    wait_for(Duration::from_secs(900), "the 2 GiB upload", || {
        let rss = daemon.proc_status_kib("VmRSS").expect("upqd is running");
        peak_anon = peak_anon.max(daemon.proc_status_kib("RssAnon").expect("upqd is running"));
        if rss > peak_rss {
            peak_rss = rss;
            peak_split = (
                daemon.proc_status_kib("RssAnon").unwrap_or(0),
                daemon.proc_status_kib("RssFile").unwrap_or(0),
            );
        }
        samples += 1;
        let job = env.job(id);
        assert!(
            !matches!(job.state, JobState::Failed | JobState::Canceled),
            "{job:?}"
        );
        (job.state == JobState::Published).then_some(())
    });
    let took = started.elapsed();
    let high_water = daemon.proc_status_kib("VmHWM").expect("VmHWM of upqd");

    eprintln!(
        "memory: 2 GiB upload in {:.1} s ({:.0} MiB/s); VmRSS at start {:.1} MiB, \
         peak sampled {:.1} MiB (anon {:.1}, file {:.1}) over {samples} samples, VmHWM {:.1} MiB",
        took.as_secs_f64(),
        2048.0 / took.as_secs_f64(),
        baseline as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        peak_split.0 as f64 / 1024.0,
        peak_split.1 as f64 / 1024.0,
        high_water as f64 / 1024.0,
    );
    assert!(samples >= 10, "too few samples ({samples}) to say anything");
    assert!(
        peak_anon < LIMIT_KIB,
        "RssAnon reached {peak_anon} KiB during the upload"
    );
    assert!(
        peak_rss - baseline < GROWTH_KIB,
        "VmRSS grew by {} KiB during the upload (from {baseline} KiB)",
        peak_rss - baseline
    );
    assert!(
        high_water - baseline < GROWTH_KIB,
        "VmHWM is {high_water} KiB, from {baseline} KiB at the start"
    );

    let published = env.default_outbox().join(video.name());
    video.assert_same_content(&published);
    fs::remove_file(&published).expect("remove the published copy");
    fs::remove_file(&video.path).expect("remove the source");
}
