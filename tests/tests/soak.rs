//! A seeded soak: hundreds of jobs to a local folder and to the official tus server behind a
//! chaos front (resets, 5xx, 429, stalls, slow links), random user commands, and `kill -9`
//! of upqd every few seconds; at the end every job is published once or a clean draft.
//!
//! `UPQ_SOAK_SEED` replays a run (the seed is printed first); `UPQ_SOAK_MINUTES` makes the
//! chaos phase that long and keeps adding jobs (`scripts/soak --minutes N`).

mod soak_model;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use upq_tests::chaos::{Chaos, ChaosSettings};
use upq_tests::env::{toml_string, OutputExt};
use upq_tests::files::{final_files, partial_files};
use upq_tests::jobs::Rng;
use upq_tests::tus::TusServer;
use upq_tests::wait::POLL_INTERVAL;
use upq_tests::{describe_history, JobState, JobView, SourceFile, TestEnv, MIB};

use soak_model::{check_history, UserCommands};

/// Jobs added in one wave; the short run adds one wave.
const WAVE: usize = 200;
/// The short run's chaos phase: with start-up and the settling after it, under two minutes.
const SHORT_CHAOS: Duration = Duration::from_secs(50);
/// upqd's stall timeout in the soak; the chaos front holds stalled requests longer.
const STALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the queue may take to settle once chaos and kills stop.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the drafts' remote clean-ups may take once the queue settled.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// One job the soak added: which source, where to, and what the user did to it.
struct Added {
    source: usize,
    commands: UserCommands,
    /// tus upload URLs the job had when it was canceled: each must be gone at the end.
    canceled_urls: BTreeSet<String>,
}

/// What the soak did, for the summary line.
#[derive(Default)]
struct Tally {
    kills: u64,
    commands: BTreeMap<&'static str, u64>,
    refusals: BTreeMap<String, u64>,
    violations: Vec<String>,
    /// The last job count `status` gave that disagreed with the soak's (reported once).
    miscount: Option<u64>,
}

struct Soak<'e> {
    seed: u64,
    rng: Rng,
    env: &'e TestEnv,
    sources: Vec<SourceFile>,
    jobs: BTreeMap<u64, Added>,
    tally: Tally,
}

#[test]
fn soak_with_chaos_publishes_each_job_once_or_leaves_a_clean_draft() {
    let seed = soak_seed();
    let minutes: Option<f64> = std::env::var("UPQ_SOAK_MINUTES")
        .ok()
        .map(|m| m.parse().expect("UPQ_SOAK_MINUTES is a number of minutes"));
    let chaos_phase = minutes.map_or(SHORT_CHAOS, |m| Duration::from_secs_f64(m * 60.0));
    let started = Instant::now();

    let env = TestEnv::new("soak");
    let tus = TusServer::start(&env);
    let chaos = Chaos::start(
        tus.addr(),
        seed ^ 0xC4A0_5C4A_05C4_A05C,
        ChaosSettings {
            fault_percent: 12,
            stall_hold: STALL_TIMEOUT + Duration::from_millis(1500),
            slow_rate: 256 * 1024,
            retry_after_secs: 1,
        },
    );
    let outbox = env.root().join("outbox");
    std::fs::create_dir_all(&outbox).expect("outbox");
    env.write_config(&format!(
        "[daemon]\nmax_active = 4\nstall_timeout = \"{}s\"\n\n\
         [daemon.retry]\nmax_attempts = 30\nbase_delay = \"100ms\"\nmax_delay = \"1s\"\n\n\
         [destinations.tus]\nkind = \"tus\"\nendpoint = {}\nchunk_size = \"256KiB\"\nio_timeout = \"5s\"\n\n\
         [destinations.local]\nkind = \"dir\"\npath = {}\nchunk_size = \"256KiB\"\n",
        STALL_TIMEOUT.as_secs(),
        toml_string(Path::new(&chaos.endpoint())),
        toml_string(&outbox),
    ));
    let mut daemon = env.start_daemon();
    let mut soak = Soak {
        seed,
        rng: Rng(seed),
        env: &env,
        sources: Vec::new(),
        jobs: BTreeMap::new(),
        tally: Tally::default(),
    };

    // Chaos phase: faults on, commands at random moments, kill -9 every few seconds.
    chaos.set_enabled(true);
    soak.add_wave();
    let chaos_end = Instant::now() + chaos_phase;
    while Instant::now() < chaos_end {
        let round_end = Instant::now() + Duration::from_millis(1500 + soak.rng.below(2500));
        let mut next_command = Instant::now();
        while Instant::now() < round_end {
            if Instant::now() >= next_command {
                soak.random_command();
                next_command = Instant::now() + Duration::from_millis(soak.rng.below(400));
            }
            // Between commands, watch the daemon: alive, and every job still there.
            soak.check_live(&mut daemon);
            std::thread::sleep(POLL_INTERVAL);
        }
        daemon.kill9();
        soak.tally.kills += 1;
        daemon.restart();
        // The long run keeps the queue busy: a new wave when the last one is nearly done.
        if minutes.is_some() && soak.active_count() < WAVE / 4 {
            soak.add_wave();
        }
    }

    // Settle: no more faults or kills; release what waits on the user and let it finish.
    chaos.set_enabled(false);
    soak.env
        .ctl(["limit", "none"])
        .assert_ok("upqctl limit none");
    soak.settle();
    let finals = soak.final_views();
    soak.check_histories(&finals);
    soak.check_local(&finals, &outbox);
    let orphans = soak.check_tus(&finals, &tus);
    let _ = daemon.stop();

    let published = finals
        .values()
        .filter(|j| j.state == JobState::Published)
        .count();
    let drafts = finals
        .values()
        .filter(|j| j.state == JobState::Canceled)
        .count();
    let commands: u64 = soak.tally.commands.values().sum();
    // What upqd itself recorded of the faults: retries after a stall and after a 429.
    let retries_for = |needle: &str| -> usize {
        finals
            .values()
            .flat_map(|j| j.history.as_deref().unwrap_or_default())
            .filter(|e| e.to == JobState::Retrying && e.reason.to_lowercase().contains(needle))
            .count()
    };
    println!(
        "soak summary: seed {seed}, jobs {} (published {published}, drafts {drafts}), {}, \
         upqd retried after {} stalls and {} 429s, kills {}, commands {commands} {:?}, \
         refusals {:?}, orphan tus uploads {orphans} ({} created with the answer dropped), minutes {:.1}, violations {}",
        soak.jobs.len(),
        chaos.counts(),
        retries_for("no progress"),
        retries_for("429"),
        soak.tally.kills,
        soak.tally.commands,
        soak.tally.refusals,
        chaos.counts().creations_lost,
        started.elapsed().as_secs_f64() / 60.0,
        soak.tally.violations.len()
    );
    // The faults and kills really happened, or a clean result would prove nothing.
    let counts = chaos.counts();
    assert!(
        [
            counts.resets,
            counts.server_errors,
            counts.too_many,
            counts.stalls,
            counts.slow_links
        ]
        .iter()
        .all(|&n| n > 0)
            && soak.tally.kills > 0,
        "seed {seed}: a fault class was never injected or upqd never killed: {counts}"
    );
    assert!(
        soak.tally.violations.is_empty(),
        "seed {seed} (replay with UPQ_SOAK_SEED={seed}): {} violations:\n{}",
        soak.tally.violations.len(),
        soak.tally.violations.join("\n")
    );
}

impl Soak<'_> {
    /// Adds `WAVE` jobs: a new small file each, to `local` or `tus`, some held for review.
    fn add_wave(&mut self) {
        for _ in 0..WAVE {
            let index = self.sources.len();
            // Tens of KiB to about 1.5 MiB: several 256 KiB chunks for the larger ones.
            let size = 16 * 1024 + self.rng.below(3 * MIB / 2);
            let source = self.env.source(&format!("clip-{index}.mp4"), size);
            let destination = if self.rng.below(2) == 0 {
                "local"
            } else {
                "tus"
            };
            let mut args = vec!["--to", destination, "--title", "soak"];
            if self.rng.below(100) < 15 {
                args.push("--hold");
            }
            let id = self.env.add(&source, &args);
            self.sources.push(source);
            self.jobs.insert(
                id,
                Added {
                    source: index,
                    commands: UserCommands::default(),
                    canceled_urls: BTreeSet::new(),
                },
            );
        }
    }

    /// Jobs not yet terminal, as the daemon counts them.
    fn active_count(&self) -> usize {
        let status = self.status();
        ["published", "failed", "canceled"]
            .iter()
            .fold(self.jobs.len(), |left, state| {
                left.saturating_sub(status["counts"][state].as_u64().unwrap_or(0) as usize)
            })
    }

    fn status(&self) -> Value {
        self.env.with_client(|client| {
            client
                .call("status", None)?
                .map_err(|e| std::io::Error::other(format!("status refused: {e}")))
        })
    }

    /// The daemon is alive and still holds every job the soak added.
    fn check_live(&mut self, daemon: &mut upq_tests::Daemon<'_>) {
        assert!(
            daemon.is_running(),
            "seed {}: upqd died without being killed; log:\n{}",
            self.seed,
            daemon.log()
        );
        let counts = self.status()["counts"].clone();
        let held: u64 = JobState::ALL
            .iter()
            .map(|s| counts[s.as_str()].as_u64().unwrap_or(0))
            .sum();
        if held != self.jobs.len() as u64 && self.tally.miscount != Some(held) {
            self.tally.miscount = Some(held);
            self.violation(format!(
                "status counts {held} jobs, {} were added: {counts}",
                self.jobs.len()
            ));
        }
    }

    fn violation(&mut self, what: String) {
        eprintln!("soak violation (seed {}): {what}", self.seed);
        self.tally.violations.push(what);
    }

    /// One user command at random on a job picked at random among those it can apply to.
    fn random_command(&mut self) {
        let jobs = self.env.list(true);
        let in_state = |states: &[JobState]| -> Vec<u64> {
            jobs.iter()
                .filter(|j| states.contains(&j.state))
                .map(|j| j.id)
                .collect()
        };
        use JobState::*;
        let (command, candidates) = match self.rng.below(100) {
            0..=19 => ("pause", in_state(&[Queued, Uploading, Retrying])),
            20..=39 => ("resume", in_state(&[Paused])),
            40..=51 => (
                "cancel",
                in_state(&[Queued, Uploading, Retrying, Paused, Held, Processing]),
            ),
            52..=61 => ("recover", in_state(&[Canceled])),
            62..=73 => ("retry", in_state(&[Failed, Retrying])),
            74..=91 => ("publish", in_state(&[Held])),
            _ => {
                let rate = ["none", "8MiB", "2MiB", "32MiB"][self.rng.below(4) as usize];
                self.env
                    .ctl(["limit", rate])
                    .assert_ok(&format!("upqctl limit {rate}"));
                *self.tally.commands.entry("limit").or_default() += 1;
                return;
            }
        };
        if candidates.is_empty() {
            return;
        }
        let id = candidates[self.rng.below(candidates.len() as u64) as usize];
        let before = self.env.job(id);
        let output = self.env.ctl([command, &id.to_string(), "--json"]);
        *self.tally.commands.entry(command).or_default() += 1;
        let items: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "seed {}: upqctl {command} {id} --json printed no JSON ({e}): {} / {}",
                self.seed,
                output.stdout_text(),
                output.stderr_text()
            )
        });
        let item = &items[0];
        match item["error"]["code"].as_str() {
            None => {
                let after = self.env.job(id);
                if command == "cancel" && after.state != Canceled {
                    self.violation(format!(
                        "job {id}: cancel was accepted yet the job is {}:\n{}",
                        after.state,
                        describe_history(&self.env.show(id))
                    ));
                }
                let added = self.jobs.get_mut(&id).expect("a job the soak added");
                added.commands.record(command);
                if command == "cancel" {
                    for url in [&before.upload_url, &before.remote, &after.upload_url]
                        .into_iter()
                        .flatten()
                    {
                        added.canceled_urls.insert(url.clone());
                    }
                }
            }
            // The job moved on between the pick and the command, or passed its commit point.
            Some(code @ ("invalid_state" | "too_late")) => {
                *self
                    .tally
                    .refusals
                    .entry(format!("{command}:{code}"))
                    .or_default() += 1;
                let after = self.env.job(id);
                if command == "cancel" && after.state == Canceled && before.state != Canceled {
                    self.violation(format!(
                        "job {id}: cancel was refused ({code}) yet the job is canceled:\n{}",
                        describe_history(&self.env.show(id))
                    ));
                }
            }
            Some(other) => self.violation(format!(
                "job {id} ({} before): upqctl {command} answered {other}: {}",
                before.state, item["error"]
            )),
        }
    }

    /// Releases held jobs, resumes paused ones and retries failed ones until every job is
    /// published or a draft; a job that never gets there is a violation.
    fn settle(&mut self) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let jobs = self.env.list(true);
            let left: Vec<&JobView> = jobs
                .iter()
                .filter(|j| !matches!(j.state, JobState::Published | JobState::Canceled))
                .collect();
            if left.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                let stuck: Vec<String> = left
                    .iter()
                    .map(|j| format!("job {}:\n{}", j.id, describe_history(&self.env.show(j.id))))
                    .collect();
                self.violation(format!(
                    "{} jobs neither published nor drafts {SETTLE_TIMEOUT:?} after the chaos \
                     stopped:\n{}",
                    stuck.len(),
                    stuck.join("\n")
                ));
                return;
            }
            for (command, state) in [
                ("publish", JobState::Held),
                ("resume", JobState::Paused),
                ("retry", JobState::Failed),
            ] {
                let ids: Vec<u64> = left
                    .iter()
                    .filter(|j| j.state == state)
                    .map(|j| j.id)
                    .collect();
                for id in ids {
                    let output = self.env.ctl([command, &id.to_string()]);
                    *self.tally.commands.entry(command).or_default() += 1;
                    if output.status.success() {
                        if let Some(added) = self.jobs.get_mut(&id) {
                            added.commands.record(command);
                        }
                    }
                }
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Every job the soak added, shown with its history; a missing one is a violation.
    fn final_views(&mut self) -> BTreeMap<u64, JobView> {
        let listed: BTreeSet<u64> = self.env.list(true).iter().map(|j| j.id).collect();
        let mut views = BTreeMap::new();
        let ids: Vec<u64> = self.jobs.keys().copied().collect();
        for id in ids {
            if !listed.contains(&id) {
                self.violation(format!("job {id} is lost: not in list --all"));
                continue;
            }
            views.insert(id, self.env.show(id));
        }
        let drafts: BTreeSet<u64> = self.env.drafts().iter().map(|j| j.id).collect();
        for job in views.values() {
            let is_draft = drafts.contains(&job.id);
            if is_draft != (job.state == JobState::Canceled) {
                self.violation(format!(
                    "job {} is {} but {} the drafts folder",
                    job.id,
                    job.state,
                    if is_draft { "in" } else { "not in" }
                ));
            }
        }
        views
    }

    /// Each history is a legal path through the state machine, with every user-only move
    /// backed by a command the soak gave.
    fn check_histories(&mut self, finals: &BTreeMap<u64, JobView>) {
        for job in finals.values() {
            let history = job.history.as_deref().unwrap_or_default();
            if let Err(problem) = check_history(history, job.state, &self.jobs[&job.id].commands) {
                let mut text = format!(
                    "job {} ({}, {}): {problem}\n{}",
                    job.id,
                    job.destination,
                    job.state,
                    describe_history(job)
                );
                let _ = write!(text, "\n  commands: {:?}", self.jobs[&job.id].commands);
                self.violation(text);
            }
        }
    }

    /// `local`: one byte-identical file per published job, nothing else, no partial left.
    fn check_local(&mut self, finals: &BTreeMap<u64, JobView>, outbox: &Path) {
        let published: Vec<&JobView> = finals
            .values()
            .filter(|j| j.destination == "local" && j.state == JobState::Published)
            .collect();
        let files = final_files(outbox);
        if files.len() != published.len() {
            self.violation(format!(
                "the outbox holds {} files for {} published local jobs",
                files.len(),
                published.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for job in published {
            let Some(remote) = job.remote.as_deref() else {
                self.violation(format!("published local job {} has no path", job.id));
                continue;
            };
            if !seen.insert(remote.to_string()) {
                self.violation(format!("job {} shares its published file {remote}", job.id));
            }
            let source = &self.sources[self.jobs[&job.id].source];
            if let Err(problem) = same_content(source, Path::new(remote)) {
                self.violation(format!("job {}: {problem}", job.id));
            }
        }
        for job in finals.values().filter(|j| j.destination == "local") {
            let partials = partial_files(outbox, job.id);
            if !partials.is_empty() {
                self.violation(format!(
                    "job {} ({}) left partial files {partials:?}",
                    job.id, job.state
                ));
            }
        }
    }

    /// tus: one complete, byte-identical upload per published job; every partial upload a
    /// draft had is gone (clean-ups are retried in the background, so wait for them).
    /// Returns how many incomplete uploads no job owns (a kill between POST and its record).
    fn check_tus(&mut self, finals: &BTreeMap<u64, JobView>, tus: &TusServer) -> usize {
        let published: Vec<&JobView> = finals
            .values()
            .filter(|j| j.destination == "tus" && j.state == JobState::Published)
            .collect();
        let mut owned = BTreeSet::new();
        for job in &published {
            let Some(url) = job.remote.as_deref() else {
                self.violation(format!("published tus job {} has no upload URL", job.id));
                continue;
            };
            let Some(upload) = tus.upload(url) else {
                self.violation(format!(
                    "published tus job {}: no upload {url} on the server",
                    job.id
                ));
                continue;
            };
            if !owned.insert(upload.id.clone()) {
                self.violation(format!("job {} shares upload {url}", job.id));
            }
            let source = self.sources[self.jobs[&job.id].source].clone();
            if upload.size != Some(source.size) {
                self.violation(format!(
                    "job {}: upload {url} declares {:?} bytes, the file has {}",
                    job.id, upload.size, source.size
                ));
            }
            if let Err(problem) = same_content(&source, &upload.data_path) {
                self.violation(format!("job {} upload {url}: {problem}", job.id));
            }
        }
        let complete = tus
            .uploads()
            .into_iter()
            .filter(|u| u.size.is_some_and(|size| u.received() == size))
            .count();
        if complete != published.len() {
            self.violation(format!(
                "the tus store holds {complete} complete uploads for {} published tus jobs",
                published.len()
            ));
        }
        let drafts: Vec<(u64, Vec<String>)> = finals
            .values()
            .filter(|j| j.destination == "tus" && j.state == JobState::Canceled)
            .map(|j| {
                (
                    j.id,
                    self.jobs[&j.id].canceled_urls.iter().cloned().collect(),
                )
            })
            .collect();
        // upqd retries clean-ups in the background: give them all one shared deadline.
        let deadline = Instant::now() + CLEANUP_TIMEOUT;
        for (id, urls) in drafts {
            for url in urls {
                let gone = wait_gone(tus, &url, deadline);
                if !gone {
                    self.violation(format!(
                        "draft {id}: its partial upload {url} is still on the server"
                    ));
                }
            }
        }
        let known: BTreeSet<String> = finals
            .values()
            .flat_map(|j| j.upload_url.iter().chain(j.remote.iter()))
            .filter_map(|url| {
                url.trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .map(str::to_owned)
            })
            .collect();
        tus.uploads()
            .iter()
            .filter(|u| !owned.contains(&u.id) && !known.contains(&u.id))
            .count()
    }
}

/// Waits until `deadline` for the server to forget an upload; false if it never does.
fn wait_gone(tus: &TusServer, url: &str, deadline: Instant) -> bool {
    loop {
        if tus.is_gone(url) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Whether `copy` holds exactly the source's bytes.
fn same_content(source: &SourceFile, copy: &Path) -> Result<(), String> {
    let size = std::fs::metadata(copy)
        .map_err(|e| format!("{}: {e}", copy.display()))?
        .len();
    if size != source.size {
        return Err(format!(
            "{} has {size} bytes, not {}",
            copy.display(),
            source.size
        ));
    }
    if upq_tests::hash_file(copy) != source.hash {
        return Err(format!(
            "{} differs from {}",
            copy.display(),
            source.path.display()
        ));
    }
    Ok(())
}

/// `UPQ_SOAK_SEED` to replay a run, else the clock; printed before anything else.
fn soak_seed() -> u64 {
    let seed = std::env::var("UPQ_SOAK_SEED")
        .ok()
        .map(|s| s.parse().expect("UPQ_SOAK_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
                | 1
        });
    println!("soak seed: {seed} (replay with UPQ_SOAK_SEED={seed})");
    seed
}
