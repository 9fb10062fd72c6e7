//! A damaged store never loses jobs in silence: jobs sled's recovery drops are named with
//! their files and titles, undecodable records are set aside, sled-level damage exits 65.
//!
//! Each test damages the data folder of a stopped upqd the way a disk or a crash would.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use upq_tests::daemon::Daemon;
use upq_tests::{Client, OutputExt, TestEnv};

/// The database files of a data folder, largest first.
fn db_files(data_dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<(PathBuf, u64)> = fs::read_dir(data_dir.join("queue.sled"))
        .expect("read queue.sled")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let len = fs::metadata(&path).expect("stat").len();
            (path, len)
        })
        .collect();
    files.sort_by_key(|(_, len)| std::cmp::Reverse(*len));
    files
}

/// Queues `count` jobs titled `clip N` over one connection; returns their ids.
fn queue_jobs(env: &TestEnv, count: usize) -> Vec<u64> {
    let video = env.source("clip.mp4", 4096);
    env.ctl(["pause", "--all"]).assert_ok("upqctl pause --all");
    let mut client = Client::connect(&env.socket_path()).expect("connect");
    (0..count)
        .map(|i| {
            let params = json!({"file": video.arg(), "metadata": {"title": format!("clip {i}")}});
            let job = client
                .call("add", Some(params))
                .expect("add over the socket")
                .unwrap_or_else(|e| panic!("add #{i} refused: {e}"));
            job["id"].as_u64().expect("add returns the job")
        })
        .collect()
}

/// A `local`-only upqd that queued `count` jobs and was stopped cleanly: the data folder
/// a test then damages. Returns the daemon (to restart) and the ids.
fn queued_then_stopped(env: &TestEnv, count: usize) -> (Daemon<'_>, Vec<u64>) {
    env.write_local_config("", "4MiB");
    let mut daemon = env.start_daemon();
    let added = queue_jobs(env, count);
    assert_eq!(daemon.stop().code(), Some(0));
    (daemon, added)
}

fn ids(jobs: &Value) -> Vec<u64> {
    jobs.as_array()
        .expect("a JSON array")
        .iter()
        .map(|job| job["id"].as_u64().expect("an id"))
        .collect()
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = fs::read(&p).expect("read");
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

/// The reported experiment: 300 queued jobs, 64 KiB in the middle of the largest database
/// file overwritten. sled's recovery takes it for a torn write and drops what follows;
/// upqd must name every job that went with it.
#[test]
fn jobs_dropped_by_a_damaged_database_are_named_with_their_files_and_titles() {
    let env = TestEnv::new("store-lost");
    let (mut daemon, added) = queued_then_stopped(&env, 300);

    let (largest, len) = db_files(&env.data_dir()).remove(0);
    assert!(
        len > 128 * 1024,
        "{} is only {len} bytes",
        largest.display()
    );
    let mut bytes = fs::read(&largest).expect("read the database");
    let middle = bytes.len() / 2;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for byte in &mut bytes[middle..middle + 64 * 1024] {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *byte = seed as u8;
    }
    fs::write(&largest, &bytes).expect("overwrite 64 KiB");

    daemon.restart();
    let present = ids(&env.ctl_json(["list", "--all"]));
    let status = env.ctl_json(["status"]);
    let lost = status["lost"].as_array().cloned().unwrap_or_default();
    assert!(
        present.len() < added.len(),
        "the damage should have cost jobs (sled kept {} of {})",
        present.len(),
        added.len()
    );
    let mut accounted: Vec<u64> = present
        .iter()
        .copied()
        .chain(lost.iter().map(|job| job["id"].as_u64().expect("lost id")))
        .collect();
    accounted.sort_unstable();
    assert_eq!(
        accounted, added,
        "every job is either still queued or named as lost"
    );
    let video = env.root().join("videos").join("clip.mp4");
    for job in &lost {
        let id = job["id"].as_u64().expect("id");
        assert_eq!(job["file"], video.to_str().expect("utf-8 path"), "{job}");
        let index = added.iter().position(|&a| a == id).expect("an added id");
        assert_eq!(job["title"], format!("clip {index}"), "{job}");
    }
    let text = env.ctl(["status"]).stdout_text();
    assert!(
        text.contains(&format!("lost          {} jobs", lost.len())),
        "{text}"
    );
    let log = daemon.log();
    let first = lost[0]["id"].as_u64().expect("id");
    assert!(
        log.contains(&format!(
            "job lost: the queue database no longer has it job={first}"
        )),
        "{log}"
    );
    // Ids of lost jobs are never given again.
    let next = queue_jobs(&env, 1)[0];
    assert_eq!(next, added.last().expect("jobs") + 1);
    assert_eq!(daemon.stop().code(), Some(0));

    let check = upq_tests::Daemon::run_to_exit(&env, &["--check"]);
    assert_eq!(check.code(), 1, "{}", check.stdout_text());
    assert!(
        check
            .stdout_text()
            .contains(&format!("lost job {first}: {}", video.display())),
        "{}",
        check.stdout_text()
    );
}

/// A truncated database file: sled opens what is left without a word; upqd does not.
#[test]
fn a_truncated_database_file_reports_every_job_it_lost() {
    let env = TestEnv::new("store-truncated");
    let (mut daemon, added) = queued_then_stopped(&env, 20);
    let (largest, _) = db_files(&env.data_dir()).remove(0);
    fs::OpenOptions::new()
        .write(true)
        .open(&largest)
        .expect("open the database file")
        .set_len(100)
        .expect("truncate");

    daemon.restart();
    let status = env.ctl_json(["status"]);
    let mut lost: Vec<u64> = status["lost"]
        .as_array()
        .expect("status lists lost jobs")
        .iter()
        .map(|job| job["id"].as_u64().expect("id"))
        .collect();
    lost.extend(ids(&env.ctl_json(["list", "--all"])));
    lost.sort_unstable();
    assert_eq!(lost, added);
    assert_eq!(daemon.stop().code(), Some(0));
}

/// A record overwritten with garbage is set aside, named in the log and counted in
/// `status`; upqd starts with the others; `--check` reports it.
#[test]
fn a_record_overwritten_with_garbage_is_quarantined_and_the_rest_starts() {
    let env = TestEnv::new("store-garbage");
    let (mut daemon, added) = queued_then_stopped(&env, 3);
    let clean = upq_tests::Daemon::run_to_exit(&env, &["--check"]);
    assert_eq!(clean.code(), 0, "{}", clean.stdout_text());
    {
        let db = sled::open(env.data_dir().join("queue.sled")).expect("open with sled");
        db.open_tree("jobs")
            .expect("jobs tree")
            .insert(added[1].to_be_bytes(), &b"\x8f\x00{garbage"[..])
            .expect("overwrite a record");
        db.flush().expect("flush");
    }

    daemon.restart();
    let present = ids(&env.ctl_json(["list", "--all"]));
    assert_eq!(present, [added[0], added[2]]);
    let status = env.ctl_json(["status"]);
    assert_eq!(status["quarantined"], 1, "{status}");
    assert!(status["lost"].is_null(), "set aside is not lost: {status}");
    assert!(env
        .ctl(["status"])
        .stdout_text()
        .contains("quarantined   1\n"));
    let key = format!("{:016x}", added[1]);
    assert!(
        daemon.log().contains(&format!("tree=\"jobs\" key={key}"))
            || daemon.log().contains(&format!("tree=jobs key={key}")),
        "{}",
        daemon.log()
    );
    assert_eq!(daemon.stop().code(), Some(0));
    let check = upq_tests::Daemon::run_to_exit(&env, &["--check"]);
    assert_eq!(check.code(), 1, "{}", check.stdout_text());
    assert!(
        check
            .stdout_text()
            .contains(&format!("quarantined jobs {key}")),
        "{}",
        check.stdout_text()
    );
}

/// Damage sled itself refuses: exit 65, a message naming the database, and not a byte of
/// the database changed; `--check` exits 1 on it too.
#[test]
fn damage_sled_refuses_exits_65_naming_the_database_and_leaves_it_alone() {
    let env = TestEnv::new("store-sled");
    queued_then_stopped(&env, 3);
    let db_dir = env.data_dir().join("queue.sled");
    let conf = db_dir.join("conf");
    let mut bytes = fs::read(&conf).expect("read conf");
    for byte in &mut bytes[20..30] {
        *byte = 0xff;
    }
    fs::write(&conf, &bytes).expect("damage conf");
    let before = snapshot(&db_dir);

    let output = upq_tests::Daemon::run_to_exit(&env, &[]);
    assert_eq!(output.code(), 65, "{}", output.stderr_text());
    assert!(
        output.stderr_text().contains(&format!(
            "the queue database {} is damaged",
            db_dir.display()
        )),
        "{}",
        output.stderr_text()
    );
    assert!(
        before == snapshot(&db_dir),
        "upqd changed the damaged database"
    );
    let check = upq_tests::Daemon::run_to_exit(&env, &["--check"]);
    assert_eq!(check.code(), 1, "{}", check.stdout_text());
    assert!(before == snapshot(&db_dir), "--check changed the database");
}

/// `--check` writes nothing: not the database, not the catalogue; and it does not take
/// the lock from a running upqd, which keeps serving.
#[test]
fn check_is_read_only_and_leaves_a_running_daemon_alone() {
    let env = TestEnv::new("store-check");
    env.write_local_config("", "4MiB");
    let mut daemon = env.start_daemon();
    let added = queue_jobs(&env, 5);
    let running = upq_tests::Daemon::run_to_exit(&env, &["--check"]);
    assert_eq!(running.code(), 0, "{}", running.stdout_text());
    assert!(
        running.stdout_text().contains("upqd is running"),
        "{}",
        running.stdout_text()
    );
    assert!(running
        .stdout_text()
        .contains("catalogue: all 5 jobs it lists are present"));
    assert_eq!(
        queue_jobs(&env, 1)[0],
        added[4] + 1,
        "upqd still takes jobs"
    );
    assert_eq!(daemon.stop().code(), Some(0));
    let data = env.data_dir();
    let before = (snapshot(&data), snapshot(&data.join("queue.sled")));
    let stopped = upq_tests::Daemon::run_to_exit(&env, &["--check"]);
    assert_eq!(stopped.code(), 0, "{}", stopped.stdout_text());
    assert!(
        stopped.stdout_text().contains("6 jobs, next id 7"),
        "{}",
        stopped.stdout_text()
    );
    assert!(
        before == (snapshot(&data), snapshot(&data.join("queue.sled"))),
        "--check wrote to the data folder"
    );
}
