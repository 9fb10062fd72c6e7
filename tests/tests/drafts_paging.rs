//! The drafts folder pages like `list`: `after` and `limit` over the socket, and
//! `upqctl drafts` reading every page.

use serde_json::{json, Value};
use upq_tests::{OutputExt, TestEnv};

fn ids(data: &Value) -> Vec<u64> {
    data.as_array()
        .expect("drafts answer with an array")
        .iter()
        .map(|job| job["id"].as_u64().expect("a job has an id"))
        .collect()
}

#[test]
fn drafts_page_by_id() {
    let env = TestEnv::new("drafts-paging");
    env.write_local_config("", "1MiB");
    let _daemon = env.start_daemon();
    // A paused queue starts nothing, so every job is canceled from `queued`.
    env.ctl(["pause", "--all"]).assert_ok("pause --all");
    let video = env.source("draft.mp4", 4096);
    let added: Vec<u64> = (0..7)
        .map(|i| env.add(&video, &["--title", &format!("draft {i}")]))
        .collect();
    let kept = added[3];
    let canceled: Vec<u64> = added.iter().copied().filter(|&id| id != kept).collect();
    let mut args = vec!["cancel".to_string()];
    args.extend(canceled.iter().map(u64::to_string));
    env.ctl(&args).assert_ok("cancel");

    let everything = env.with_client(|c| c.call("drafts", None)).expect("drafts");
    assert_eq!(
        ids(&everything),
        canceled,
        "no params: every draft in id order"
    );
    let page = env
        .with_client(|c| c.call("drafts", Some(json!({"after": canceled[1], "limit": 3}))))
        .expect("a page of drafts");
    assert_eq!(ids(&page), canceled[2..5], "three drafts after the second");
    let last = env
        .with_client(|c| c.call("drafts", Some(json!({"after": canceled[5]}))))
        .expect("the last page");
    assert_eq!(ids(&last), Vec::<u64>::new());

    let listed: Vec<u64> = env.drafts().iter().map(|job| job.id).collect();
    assert_eq!(listed, canceled, "upqctl drafts reads them all");
}
