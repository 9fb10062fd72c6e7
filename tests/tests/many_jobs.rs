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

#[test]
fn pipelined_adds_are_answered_in_order_and_each_reply_means_durable() {
    let env = TestEnv::new("many-pipelined");
    env.write_local_config("max_active = 2", "4MiB");
    let video = env.source("short.mp4", 64 * 1024);
    let mut daemon = env.start_daemon();
    env.ctl(["pause", "--all"]).assert_ok("upqctl pause --all");

    // Every request in one go from a writer thread, a bad one among them and a list last;
    // the replies are read as they come.
    let bad = JOBS / 2;
    let mut lines = Vec::new();
    for i in 0..JOBS {
        let file = if i == bad {
            "relative/path.mp4".to_string()
        } else {
            video.arg().to_string()
        };
        let request = json!({"id": i + 1, "method": "add", "params": {"file": file}});
        lines.extend(serde_json::to_vec(&request).unwrap());
        lines.push(b'\n');
    }
    lines.extend(b"{\"id\": 5000, \"method\": \"list\", \"params\": {\"all\": true}}\n");
    let mut client = Client::connect(&env.socket_path()).expect("connect");
    let mut writer = client.stream().try_clone().expect("a second handle");
    let sender = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &lines));

    let mut added = Vec::new();
    for i in 0..JOBS {
        let response = client.read_json().expect("a reply to each add");
        assert_eq!(response["id"], i + 1, "replies come in request order");
        if i == bad {
            assert_eq!(response["error"]["code"], "bad_request", "{response}");
        } else {
            let id = response["result"]["data"]["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("add #{i}: {response}"));
            added.push(id);
        }
    }
    let listed = client.read_json().expect("the list reply");
    sender.join().unwrap().expect("every request written");
    assert_eq!(listed["id"], 5000);
    assert!(
        added.windows(2).all(|pair| pair[0] < pair[1]),
        "ids follow the order of the requests"
    );
    let listed: Vec<u64> = listed["result"]["data"]
        .as_array()
        .expect("list answers jobs")
        .iter()
        .map(|job| job["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, added, "the list after the adds sees every one");

    // Each reply meant durable: a kill right after the last one loses none.
    drop(client);
    daemon.kill9();
    daemon.restart();
    let mut after = ids_of(&env.list(true));
    after.sort_unstable();
    assert_eq!(after, added, "after kill -9");
}

#[test]
fn adds_sent_before_the_client_stops_writing_are_all_answered() {
    let env = TestEnv::new("many-half-closed");
    env.write_local_config("max_active = 2", "4MiB");
    let video = env.source("short.mp4", 64 * 1024);
    let _daemon = env.start_daemon();
    env.ctl(["pause", "--all"]).assert_ok("upqctl pause --all");

    // A script's way of talking: every request, then the end of its input.
    let count = 50;
    let mut lines = Vec::new();
    for i in 0..count {
        let request = json!({"id": i + 1, "method": "add", "params": {"file": video.arg()}});
        lines.extend(serde_json::to_vec(&request).unwrap());
        lines.push(b'\n');
    }
    let mut client = Client::connect(&env.socket_path()).expect("connect");
    std::io::Write::write_all(&mut client.stream(), &lines).expect("requests written");
    client
        .stream()
        .shutdown(std::net::Shutdown::Write)
        .expect("the write side closed");
    let mut added = Vec::new();
    for i in 0..count {
        let response = client
            .read_json()
            .unwrap_or_else(|e| panic!("no reply to add #{}: {e}", i + 1));
        assert_eq!(response["id"], i + 1, "{response}");
        added.push(response["result"]["data"]["id"].as_u64().expect("a job"));
    }
    let mut listed = ids_of(&env.list(true));
    listed.sort_unstable();
    assert_eq!(listed, added, "every add answered was queued");
}
