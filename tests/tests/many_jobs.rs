//! A thousand queued jobs: listed in order with unique ids, and all still there with the
//! same ids after a clean stop and after `kill -9`.

use serde_json::json;
use upq_tests::{Client, JobState, JobView, OutputExt, TestEnv};

const JOBS: usize = 1000;

fn ids_of(jobs: &[JobView]) -> Vec<u64> {
    jobs.iter().map(|job| job.id).collect()
}

fn assert_same_jobs(env: &TestEnv, expected: &[u64], when: &str) {
    let mut ids = ids_of(&env.list(true));
    ids.sort_unstable();
    assert_eq!(ids.len(), JOBS, "{when}: list --all has {} jobs", ids.len());
    assert_eq!(ids, expected, "{when}: the job ids changed");
}

#[test]
fn thousand_queued_jobs_survive_restarts() {
    let env = TestEnv::new("many");
    env.write_local_config("max_active = 2", "4MiB");
    let videos: Vec<_> = (0..5)
        .map(|i| env.source(&format!("short-{i}.mp4"), 64 * 1024))
        .collect();
    let mut daemon = env.start_daemon();

    env.ctl(["pause", "--all"]).assert_ok("upqctl pause --all");
    // One connection, one request a job: the CLI's add is covered elsewhere.
    let mut client = Client::connect(&env.socket_path()).expect("connect");
    let added: Vec<u64> = (0..JOBS)
        .map(|i| {
            let file = videos[i % videos.len()].arg();
            let params = json!({"file": file, "metadata": {"title": format!("clip {i}")}});
            let job = client
                .call("add", Some(params))
                .expect("add over the socket")
                .unwrap_or_else(|e| panic!("add #{i} refused: {e}"));
            job["id"].as_u64().expect("add returns the job")
        })
        .collect();
    drop(client);

    let listed = env.list(false);
    assert_eq!(listed.len(), JOBS);
    let ids = ids_of(&listed);
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "ids are not unique and ascending"
    );
    assert!(ids.iter().all(|&id| id > 0));
    assert_eq!(ids, added, "list shows other ids than add returned");
    assert!(
        listed.iter().all(|job| job.state == JobState::Queued),
        "everything stays queued while the queue is paused"
    );
    let status = env.ctl_json(["status"]);
    assert_eq!(status["counts"]["queued"], JOBS as u64, "{status}");

    let exit = daemon.stop();
    assert_eq!(exit.code(), Some(0), "SIGTERM exit: {exit:?}");
    daemon.restart();
    assert_same_jobs(&env, &ids, "after SIGTERM and restart");

    daemon.kill9();
    daemon.restart();
    assert_same_jobs(&env, &ids, "after kill -9 and restart");
}
