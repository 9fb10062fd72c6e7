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

#[test]
fn long_captions_are_listed_in_pages_that_stay_under_the_line_cap() {
    let env = TestEnv::new("long-captions");
    env.write_local_config("", "1MiB");
    let _daemon = env.start_daemon();
    env.ctl(["pause", "--all"]).assert_ok("pause --all");
    let video = env.source("long.mp4", 4096);
    // 40 jobs of 40 KB captions: 1.6 MB of them, past the 1 MiB a line may hold.
    let caption = "a long description ".repeat(2100);
    let added: Vec<u64> = (0..40)
        .map(|_| env.add(&video, &["--caption", &caption]))
        .collect();

    let page = env
        .with_client(|c| c.call("list", Some(json!({"all": true, "limit": 500}))))
        .expect("a page");
    let first = ids(&page);
    assert!(
        !first.is_empty() && first.len() < added.len(),
        "the first page holds part of the jobs: {}",
        first.len()
    );
    assert!(
        serde_json::to_vec(&page).unwrap().len() < 1024 * 1024,
        "a page stays under the line cap"
    );

    let listed: Vec<u64> = env.list(true).iter().map(|job| job.id).collect();
    assert_eq!(
        listed, added,
        "upqctl list --json reads on to the last page"
    );
    assert!(env
        .list(true)
        .iter()
        .all(|job| job.metadata.caption.as_deref() == Some(caption.as_str())));
    env.ctl(["list", "--all"])
        .assert_ok("upqctl list --all, the table");

    // All at once: the batch answer carries the views it has room for, then ids alone.
    let mut args = vec!["cancel".to_string(), "--json".to_string()];
    args.extend(added.iter().map(u64::to_string));
    let canceled = env.ctl(&args);
    canceled.assert_ok("cancel");
    let items: Value = serde_json::from_str(&canceled.stdout_text()).expect("batch items");
    let items = items.as_array().expect("an array of items");
    assert_eq!(items.len(), added.len(), "an item for each id");
    let with_view = items
        .iter()
        .filter(|item| item.get("job").is_some())
        .count();
    assert!(
        with_view > 0 && with_view < added.len(),
        "views while there is room, then ids alone: {with_view} views"
    );
    assert!(items.iter().all(|item| item.get("error").is_none()));
    let drafts: Vec<u64> = env.drafts().iter().map(|job| job.id).collect();
    assert_eq!(drafts, added, "upqctl drafts reads on to the last page");
}
