use super::*;
use crate::job::{Fingerprint, NewJob};
use std::path::Path;
use std::sync::Arc;
use upq_proto::{JobState, Metadata};

fn new_job(id: u64) -> (Job, HistoryEntry) {
    let new = NewJob {
        file: PathBuf::from("/v/a.mp4"),
        destination: "local".into(),
        metadata: Metadata::default(),
        fingerprint: Fingerprint {
            size: 10,
            mtime_ns: 0,
            inode: 1,
            device: 1,
        },
        publish_at: None,
        hold: false,
        priority: 0,
        warning: None,
        ignore_policies: false,
    };
    Job::queued(id, new, Utc::now())
}

#[derive(Debug, Clone)]
enum Op {
    Insert,
    RemoveNewest,
    Reopen,
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    /// Whatever mix of inserts, removals and reopenings: every id is new and larger.
    #[test]
    fn ids_are_never_reused(ops in proptest::collection::vec(
        proptest::prop_oneof![
            4 => proptest::strategy::Just(Op::Insert),
            2 => proptest::strategy::Just(Op::RemoveNewest),
            1 => proptest::strategy::Just(Op::Reopen),
        ],
        1..40,
    )) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Some(Store::open(dir.path()).unwrap());
        let mut issued: Vec<u64> = Vec::new();
        for op in ops {
            let current = store.as_ref().unwrap();
            match op {
                Op::Insert => issued.push(current.insert_new(new_job).unwrap().id()),
                Op::RemoveNewest => {
                    if let Some(&id) = issued.last() {
                        current.remove_job(id).unwrap();
                    }
                }
                Op::Reopen => {
                    current.flush_blocking().unwrap();
                    drop(store.take());
                    store = Some(Store::open(dir.path()).unwrap());
                    // Removals and additions never read as jobs the database lost.
                    proptest::prop_assert!(store.as_ref().unwrap().lost().is_empty());
                }
            }
        }
        proptest::prop_assert!(issued.windows(2).all(|w| w[0] < w[1]), "{:?}", issued);
    }
}

#[test]
fn a_transition_and_its_history_are_stored_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut job = store.insert_new(new_job).unwrap();
    job.enter(JobState::Canceled, Utc::now());
    let entry = HistoryEntry {
        at: Utc::now(),
        from: Some(JobState::Queued),
        to: JobState::Canceled,
        reason: "canceled by the user".into(),
    };
    store.write(&job, Some(&entry), None).unwrap();
    assert_eq!(store.history(job.id()).unwrap().len(), 2);
    assert_eq!(store.load_jobs().unwrap()[0].state(), JobState::Canceled);
}

#[test]
fn a_post_and_its_jobs_are_stored_together_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.insert_new(new_job).unwrap();
        let make_post =
            |id, jobs| Post::new(id, "/v/a.mp4".into(), None, jobs, true, None, Utc::now());
        let (post, jobs) = store
            .insert_post(3, |id, _| new_job(id), make_post)
            .unwrap();
        assert_eq!(post.id(), 1, "post ids count apart from job ids");
        assert_eq!(post.jobs(), [2, 3, 4]);
        assert!(jobs.iter().all(|job| job.post() == Some(1)));
        let (second, _) = store
            .insert_post(2, |id, _| new_job(id), make_post)
            .unwrap();
        assert_eq!((second.id(), second.jobs()), (2, &[5, 6][..]));
        store.flush_blocking().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let posts = store.posts().unwrap();
    assert_eq!(posts.len(), 2);
    assert!(posts[0].all_or_nothing());
    assert_eq!(store.post(2).unwrap().unwrap().jobs(), [5, 6]);
    assert_eq!(store.job(3).unwrap().unwrap().post(), Some(1));
    assert_eq!(store.job(1).unwrap().unwrap().post(), None);
    assert!(store.post(3).unwrap().is_none());
    assert!(
        check(dir.path()).is_clean(),
        "{:?}",
        check(dir.path()).lines
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else if entry.file_name() != "README.md" {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// The schema 1 database committed under tests/fixtures, copied to a fresh data folder.
fn fixture_v1() -> tempfile::TempDir {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/store-v1");
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture, dir.path());
    dir
}

#[test]
fn a_database_written_by_schema_1_opens_with_every_job_draft_and_history() {
    let dir = fixture_v1();
    let store = Store::open(dir.path()).unwrap();
    let jobs = store.load_jobs().unwrap();
    let summary: Vec<(u64, JobState, &str, Option<&str>, u64)> = jobs
        .iter()
        .map(|job| {
            (
                job.id(),
                job.state(),
                job.file().to_str().unwrap(),
                job.metadata().title.as_deref(),
                job.history_len(),
            )
        })
        .collect();
    let videos = "/tmp/upq-fixture/videos";
    assert_eq!(
        summary,
        vec![
            (
                1,
                JobState::Published,
                &*format!("{videos}/a.mp4"),
                Some("Alpha clip"),
                4
            ),
            (
                2,
                JobState::Held,
                &*format!("{videos}/b.mp4"),
                Some("Beta held"),
                3
            ),
            (
                3,
                JobState::Failed,
                &*format!("{videos}/g.mp4"),
                Some("Golf fails"),
                5
            ),
            (
                4,
                JobState::Queued,
                &*format!("{videos}/c.mp4"),
                Some("Charlie queued"),
                1
            ),
            (
                5,
                JobState::Paused,
                &*format!("{videos}/d.mp4"),
                Some("Delta paused"),
                2
            ),
            (
                6,
                JobState::Canceled,
                &*format!("{videos}/e.mp4"),
                Some("Echo draft"),
                2
            ),
        ]
    );
    assert_eq!(jobs[0].metadata().caption.as_deref(), Some("first one"));
    assert_eq!(jobs[0].location(), Some("/tmp/upq-fixture/outbox/a.mp4"));
    assert!(jobs[1].hold() && jobs[1].bytes_sent() == 100_000);
    assert_eq!(jobs[1].metadata().privacy.as_deref(), Some("private"));
    assert_eq!(
        jobs[2].last_error().as_ref().map(|e| e.kind.as_str()),
        Some("file_changed")
    );
    assert_eq!(jobs[3].priority(), 5);
    assert_eq!(
        jobs[3].metadata().extra.get("foo").map(String::as_str),
        Some("bar")
    );
    assert_eq!(
        jobs[5].metadata().caption.as_deref(),
        Some("canceled but kept")
    );
    for job in &jobs {
        let history = store.history(job.id()).unwrap();
        assert_eq!(history.len() as u64, job.history_len(), "job {}", job.id());
        assert_eq!(history.last().unwrap().to, job.state(), "job {}", job.id());
    }
    let failed: Vec<JobState> = store.history(3).unwrap().iter().map(|e| e.to).collect();
    assert_eq!(
        failed,
        [
            JobState::Queued,
            JobState::Uploading,
            JobState::Held,
            JobState::Queued,
            JobState::Failed
        ]
    );
    let drafts: Vec<u64> = jobs
        .iter()
        .filter(|job| job.state() == JobState::Canceled)
        .map(|job| job.id())
        .collect();
    assert_eq!(drafts, vec![6]);
    assert!(jobs[0].committed() && jobs[0].remote().is_some());
    assert!(jobs.iter().skip(1).all(|job| !job.committed()));
    // Opening migrated it: no drafts index (schema 2), every job record in today's layout
    // (schema 3), and the version says so.
    for value in store.jobs.iter().values() {
        let value = value.unwrap();
        let strict = serde_json::from_slice::<Job>(&value);
        assert!(
            strict.is_ok(),
            "{strict:?}: {}",
            String::from_utf8_lossy(&value)
        );
    }
    assert!(!store
        .db
        .tree_names()
        .iter()
        .any(|name| name.as_ref() == b"drafts"));
    assert_eq!(
        store.meta.get(SCHEMA_KEY).unwrap().as_deref(),
        Some(&SCHEMA_VERSION.to_be_bytes()[..])
    );
    assert!(store.queue_paused().unwrap());
    assert_eq!(store.quarantined(), 0);
    assert!(store.lost().is_empty());
    // Job 7 was discarded: its id is never given again.
    assert_eq!(store.insert_new(new_job).unwrap().id(), 8);
}

#[test]
fn a_record_that_does_not_decode_is_set_aside_raw_and_the_rest_opens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        for _ in 0..3 {
            store.insert_new(new_job).unwrap();
        }
        store
            .jobs
            .insert(2u64.to_be_bytes(), b"\x00garbage{".as_slice())
            .unwrap();
        store
            .history
            .insert(history_key(3, 0), b"not json".as_slice())
            .unwrap();
        store.flush_blocking().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let ids: Vec<u64> = store.load_jobs().unwrap().iter().map(|j| j.id()).collect();
    assert_eq!(ids, [1, 3]);
    assert_eq!(store.quarantined(), 2);
    let mut key = b"jobs/".to_vec();
    key.extend_from_slice(&2u64.to_be_bytes());
    assert_eq!(
        store.quarantine.get(&key).unwrap().as_deref(),
        Some(b"\x00garbage{".as_slice())
    );
    // Set aside is not lost: the catalogue does not report job 2 as missing.
    assert!(store.lost().is_empty());
    assert!(store.history(3).unwrap().is_empty());
    assert_eq!(store.insert_new(new_job).unwrap().id(), 4);
    drop(store);
    let report = check(dir.path());
    assert!(!report.is_clean(), "{:?}", report.lines);
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.contains("quarantined jobs 0000000000000002")),
        "{:?}",
        report.lines
    );
}

#[test]
fn jobs_the_database_lost_are_reported_from_the_catalogue_and_ids_stay_unique() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        for _ in 0..3 {
            store.insert_new(new_job).unwrap();
        }
        store.flush_blocking().unwrap();
        // What a truncated log looks like to sled: records and counter gone, no error.
        store.jobs.remove(3u64.to_be_bytes()).unwrap();
        store.history.remove(history_key(3, 0)).unwrap();
        store.meta.insert(NEXT_ID_KEY, &3u64.to_be_bytes()).unwrap();
        store.db.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let lost: Vec<(u64, &str)> = store
        .lost()
        .iter()
        .map(|l| (l.id, l.file.as_str()))
        .collect();
    assert_eq!(lost, [(3, "/v/a.mp4")]);
    assert_eq!(store.insert_new(new_job).unwrap().id(), 4);
    drop(store);
    // Still listed at the next start, and by --check.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.lost().len(), 1);
    drop(store);
    let report = check(dir.path());
    assert!(!report.is_clean());
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.contains("lost job 3: /v/a.mp4")),
        "{:?}",
        report.lines
    );
}

#[test]
fn a_healthy_store_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut job = store.insert_new(new_job).unwrap();
    store.insert_new(new_job).unwrap();
    job.enter(JobState::Canceled, Utc::now());
    let entry = HistoryEntry {
        at: Utc::now(),
        from: Some(JobState::Queued),
        to: JobState::Canceled,
        reason: "canceled".into(),
    };
    store.write(&job, Some(&entry), None).unwrap();
    store.remove_job(job.id()).unwrap();
    store.flush_blocking().unwrap();
    let report = check(dir.path());
    assert!(report.is_clean(), "{:?}", report.lines);
    assert!(
        report.lines.iter().any(|l| l == "1 jobs, next id 3"),
        "{:?}",
        report.lines
    );
}

/// The open waits up to 3 s for a lock; the runtime's one thread keeps running meanwhile.
#[tokio::test(flavor = "current_thread")]
async fn waiting_for_a_locked_database_does_not_block_the_runtime() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let _holder = Store::open(dir.path()).unwrap();
    let ticks = std::sync::Arc::new(AtomicU32::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let opened = Store::open_async(dir.path().to_path_buf()).await;
    ticker.abort();
    assert!(matches!(opened, Err(StoreError::Locked { .. })));
    // 3 s of waiting is 300 ticks; a blocked thread would give none.
    let ticked = ticks.load(Ordering::Relaxed);
    assert!(
        ticked >= 30,
        "the runtime ticked {ticked} times while the open waited"
    );
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.insert_new(new_job).unwrap();
        store
            .meta
            .insert(SCHEMA_KEY, &(SCHEMA_VERSION + 1).to_be_bytes())
            .unwrap();
        store.flush_blocking().unwrap();
    }
    let err = Store::open(dir.path())
        .err()
        .expect("newer schema must be refused");
    let message = err.to_string();
    assert!(message.contains("newer upq"), "{message}");
    // The data is still there for the newer version.
    let db = sled::open(dir.path().join("queue.sled")).unwrap();
    assert_eq!(db.open_tree("jobs").unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_flushes_share_one_and_each_caller_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
    let callers = 64;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let store = store.clone();
        tasks.spawn(async move {
            let job = store.insert_new(new_job).unwrap();
            store.flush().await.unwrap();
            job.id()
        });
    }
    let mut ids = Vec::new();
    while let Some(id) = tasks.join_next().await {
        ids.push(id.unwrap());
    }
    let flushes = store.flushes_begun.load(Ordering::SeqCst);
    assert!(
        (1..callers as u64 / 2).contains(&flushes),
        "{callers} callers made {flushes} flushes"
    );
    // A flush alone, with nobody else, is never skipped.
    store.flush().await.unwrap();
    assert_eq!(store.flushes_begun.load(Ordering::SeqCst), flushes + 1);
    drop(store);
    let reopened = Store::open(dir.path()).unwrap();
    let mut stored: Vec<u64> = reopened
        .load_jobs()
        .unwrap()
        .iter()
        .map(|j| j.id())
        .collect();
    stored.sort_unstable();
    ids.sort_unstable();
    assert_eq!(stored, ids);
}

#[test]
fn the_summaries_read_at_open_are_what_the_records_say_and_read_again_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ids: Vec<u64> = (0..3)
        .map(|_| store.insert_new(new_job).unwrap().id())
        .collect();
    store.flush_blocking().unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let at_open = store.summaries().unwrap();
    let mut names = Names::default();
    let from_records: BTreeMap<u64, Summary> = store
        .load_jobs()
        .unwrap()
        .iter()
        .map(|job| (job.id(), job.summary(names.shared(job.destination()))))
        .collect();
    assert_eq!(at_open.keys().copied().collect::<Vec<_>>(), ids);
    assert_eq!(
        at_open, from_records,
        "the pass at open reads what the records say"
    );
    assert_eq!(
        store.summaries().unwrap(),
        at_open,
        "a second call reads them again"
    );
    assert!(Arc::ptr_eq(
        at_open[&ids[0]].destination(),
        at_open[&ids[2]].destination()
    ));
}
