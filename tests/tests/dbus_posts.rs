//! Posts over D-Bus, with `busctl` on a private bus: `Manager.AddPost`, the post object's
//! properties (as the committed XML declares them), `PropertiesChanged` as its jobs move,
//! the ObjectManager listing it, and `Post.Publish` releasing every job.

use std::fs;
use std::time::Duration;

use upq_tests::bins::workspace_root;
use upq_tests::bus::{
    interface_members, job_path, post_path, PrivateBus, MANAGER, MANAGER_PATH, POST,
};
use upq_tests::env::toml_string;
use upq_tests::{post_job_ids, wait_for, Daemon, JobState, OutputExt, TestEnv, MIB};

const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const TIMEOUT: Duration = Duration::from_secs(60);

/// Two folder destinations, `local` and `archive`; returns their paths.
fn two_folders(env: &TestEnv) -> (std::path::PathBuf, std::path::PathBuf) {
    let local = env.root().join("outbox");
    let archive = env.root().join("archive");
    for dir in [&local, &archive] {
        fs::create_dir_all(dir).unwrap();
    }
    env.write_config(&format!(
        "[destinations.local]\nkind = \"dir\"\npath = {}\n\n\
         [destinations.archive]\nkind = \"dir\"\npath = {}\n",
        toml_string(&local),
        toml_string(&archive),
    ));
    (local, archive)
}

#[test]
fn a_post_added_over_the_bus_is_an_object_that_follows_its_jobs_and_releases_them() {
    let env = TestEnv::new("dbus-posts");
    let (local, archive) = two_folders(&env);
    let bus = PrivateBus::start(env.root());
    let _daemon = Daemon::on_bus(&env, &bus).start();
    let monitor = bus.monitor();
    let video = env.source("bus-post.mp4", 2 * MIB);
    let file = video.path.display().to_string();

    let answer = bus.call(
        MANAGER_PATH,
        MANAGER,
        "AddPost",
        &[
            "sasa{sv}",
            &file,
            "2",
            "local",
            "archive",
            "3",
            "hold",
            "b",
            "true",
            "title",
            "s",
            "Over the bus",
            "caption_for",
            "a{ss}",
            "1",
            "archive",
            "Archive words",
        ],
    );
    assert_eq!(answer[0], "p1", "{answer}");
    let path = post_path(upq_proto::PostId(1));

    // The post object, as the committed XML declares it.
    let committed = interface_members(
        &fs::read_to_string(workspace_root().join("daemon/dbus/dev.upq.upq1.xml")).unwrap(),
    );
    let live = interface_members(&bus.introspect_xml(&path));
    assert_eq!(live.get(POST), committed.get(POST), "the live post object");

    assert_eq!(bus.property(&path, POST, "Id"), "p1");
    assert_eq!(bus.property(&path, POST, "Title"), "Over the bus");
    let jobs = bus.property(&path, POST, "Jobs");
    let ids = post_job_ids(&env.ctl_json(["show", "p1"]));
    let paths: Vec<String> = ids.iter().map(|&id| job_path(id)).collect();
    assert_eq!(jobs, serde_json::json!(paths));
    assert_eq!(
        env.job(ids[1]).metadata.caption.as_deref(),
        Some("Archive words")
    );

    wait_for(TIMEOUT, "the post to be held", || {
        (bus.property(&path, POST, "State") == "held").then_some(())
    });
    let managed = bus.call(
        MANAGER_PATH,
        "org.freedesktop.DBus.ObjectManager",
        "GetManagedObjects",
        &[],
    );
    assert!(
        managed.to_string().contains(&path),
        "the ObjectManager lists the post: {managed}"
    );

    bus.call(&path, POST, "Publish", &[]);
    wait_for(TIMEOUT, "the post to be published", || {
        (bus.property(&path, POST, "State") == "published").then_some(())
    });
    for &id in &ids {
        assert_eq!(env.job(id).state, JobState::Published);
    }
    video.assert_same_content(&local.join(video.name()));
    video.assert_same_content(&archive.join(video.name()));
    // Each state the post went through was announced on its object.
    let announced: Vec<String> = monitor
        .messages()
        .iter()
        .filter(|m| m.is_signal(PROPERTIES, "PropertiesChanged") && m.path() == path)
        .filter_map(|m| m.args()[1]["State"]["data"].as_str().map(str::to_string))
        .collect();
    assert!(
        announced.contains(&"held".to_string())
            && announced.last().map(String::as_str) == Some("published"),
        "PropertiesChanged(State) on {path}: {announced:?}\n{}",
        monitor.describe()
    );
}

/// `upqctl --bus` reaches posts as the socket does: `add` with several `--to` and
/// per-destination words, `show pN`, `list --posts`, `publish pN` and `wait pN`, each
/// giving what the socket gives.
#[test]
fn upqctl_over_the_bus_adds_shows_lists_and_releases_a_post() {
    let env = TestEnv::new("dbus-posts-ctl");
    let (local, archive) = two_folders(&env);
    let bus = PrivateBus::start(env.root());
    let _daemon = Daemon::on_bus(&env, &bus).start();
    env.set_var("DBUS_SESSION_BUS_ADDRESS", bus.address());
    let video = env.source("ctl-bus-post.mp4", MIB);

    let added = env.ctl_json([
        "--bus",
        "add",
        video.arg(),
        "--to",
        "local",
        "--to",
        "archive",
        "--title",
        "Both at once",
        "--caption-for",
        "archive=Archive words",
        "--meta-for",
        "archive",
        "shelf=3",
        "--all-or-nothing",
        "--hold",
    ]);
    assert_eq!(added["id"], "p1", "{added}");
    assert_eq!(added["all_or_nothing"], true, "{added}");
    let jobs = added["jobs"].as_array().expect("the post's jobs");
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1]["metadata"]["caption"], "Archive words");
    assert_eq!(jobs[1]["metadata"]["extra"]["shelf"], "3");
    assert!(jobs[0]["metadata"]["caption"].is_null(), "{added}");
    assert!(
        jobs[0]["history"].is_array(),
        "jobs as show gives them: {added}"
    );

    wait_for(TIMEOUT, "the post to be held", || {
        (env.ctl_json(["--bus", "show", "p1"])["state"] == "held").then_some(())
    });
    // The bus and the socket tell the same post.
    let over_bus = env.ctl_json(["--bus", "show", "p1"]);
    let over_socket = env.ctl_json(["show", "p1"]);
    for key in [
        "id",
        "state",
        "file",
        "title",
        "all_or_nothing",
        "created_at",
    ] {
        assert_eq!(over_bus[key], over_socket[key], "{key}");
    }
    assert_eq!(post_job_ids(&over_bus), post_job_ids(&over_socket));
    let listed = env.ctl_json(["--bus", "list", "--posts"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], "p1");
    assert!(
        !local.join(video.name()).exists(),
        "held means not published"
    );

    let published = env.ctl(["--bus", "publish", "p1"]);
    published.assert_ok("upqctl --bus publish p1");
    let waited = env.ctl(["--bus", "wait", "p1", "--timeout", "60s"]);
    assert_eq!(waited.code(), 0, "{}", waited.stderr_text());
    assert_eq!(env.ctl_json(["show", "p1"])["state"], "published");
    // The release went through the post: it is recorded on it.
    assert!(
        env.ctl_json(["show", "p1"])["released_at"].is_string(),
        "the release is the post's"
    );
    video.assert_same_content(&local.join(video.name()));
    video.assert_same_content(&archive.join(video.name()));
    assert_eq!(
        env.ctl_json(["--bus", "list", "--posts"]),
        serde_json::json!([])
    );
}
