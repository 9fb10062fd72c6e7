//! Typed D-Bus values of `dev.upq.upq1` turned into the protocol's views, and back for `Add`.
//! Pure conversions: no bus, no I/O; a value that does not fit is a message, never a panic.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use upq_proto::{
    AccountView, AddOptions, AddPostRequest, HistoryEntry, JobError, JobState, JobView, Metadata,
    PostView, ProcessingProgress, StatusView,
};
use zbus::{DeserializeDict, OwnedObjectPath, Type, Variant};

/// One entry of `ListJobs`, with zbus's object path.
pub type JobSummary = upq_proto::dbus::JobSummary<OwnedObjectPath>;

/// One history entry of `GetJob`: at, from ("" for the first), to, reason.
pub type HistoryTuple = (String, String, String, String);

/// `GetJob`'s `a{sv}`: the socket's job object field by field, absent values as "" or 0.
#[derive(Debug, Default, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct JobDict {
    pub id: Option<u64>,
    pub file: Option<String>,
    pub destination: Option<String>,
    pub state: Option<String>,
    pub size: Option<u64>,
    pub bytes_sent: Option<u64>,
    pub bytes_transferred: Option<u64>,
    pub attempts: Option<u32>,
    pub stalls: Option<u32>,
    pub last_error_kind: Option<String>,
    pub last_error_message: Option<String>,
    pub next_attempt_at: Option<String>,
    pub publish_at: Option<String>,
    pub hold: Option<bool>,
    pub priority: Option<i32>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub title: Option<String>,
    pub caption: Option<String>,
    pub privacy: Option<String>,
    pub meta: Option<HashMap<String, String>>,
    pub remote: Option<String>,
    pub upload_url: Option<String>,
    pub content_hash: Option<String>,
    pub speed: Option<u64>,
    pub bytes_in_flight: Option<u64>,
    pub warning: Option<String>,
    pub review_url: Option<String>,
    pub waiting: Option<String>,
    pub ignore_policies: Option<bool>,
    pub actions: Option<Vec<String>>,
    pub processing_parts_processed: Option<u64>,
    pub processing_parts_total: Option<u64>,
    pub processing_time_left_ms: Option<u64>,
    pub history: Option<Vec<HistoryTuple>>,
}

/// `GetPost`'s `a{sv}`: the socket's post object with its jobs as ids.
#[derive(Debug, Default, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct PostDict {
    pub id: Option<String>,
    pub state: Option<String>,
    pub file: Option<String>,
    pub title: Option<String>,
    pub all_or_nothing: Option<bool>,
    pub created_at: Option<String>,
    pub released_at: Option<String>,
    pub release_after: Option<String>,
    pub jobs: Option<Vec<u64>>,
}

/// A post as the socket would show it, given its jobs' views (read with `GetJob`).
pub fn post_view(dict: PostDict, jobs: Vec<JobView>) -> Result<PostView, String> {
    const WHAT: &str = "GetPost's answer";
    Ok(PostView {
        id: required(dict.id, WHAT, "id")?.parse()?,
        state: required(dict.state, WHAT, "state")?.parse()?,
        file: required(dict.file, WHAT, "file")?,
        title: non_empty(dict.title),
        all_or_nothing: dict.all_or_nothing.unwrap_or_default(),
        released_at: optional_time(dict.released_at, "released_at")?,
        release_after: optional_time(dict.release_after, "release_after")?,
        created_at: time(
            &required(dict.created_at, WHAT, "created_at")?,
            "created_at",
        )?,
        jobs,
    })
}

/// `Status`'s `a{sv}`.
#[derive(Debug, Default, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct StatusDict {
    pub version: Option<String>,
    pub protocol: Option<u32>,
    pub pid: Option<u32>,
    pub started_at: Option<String>,
    pub uptime_secs: Option<u64>,
    pub counts: Option<HashMap<String, u64>>,
    pub max_active: Option<u32>,
    pub rate_limit: Option<u64>,
    pub rate_limit_until: Option<String>,
    pub queue_paused: Option<bool>,
    pub destinations: Option<Vec<String>>,
    pub data_dir: Option<String>,
    pub socket: Option<String>,
    pub quarantined: Option<u64>,
    pub metered: Option<bool>,
    pub metered_source: Option<String>,
    pub on_battery: Option<bool>,
    pub battery_percent: Option<f64>,
    pub battery_source: Option<String>,
    pub connectivity: Option<String>,
    pub connectivity_source: Option<String>,
    pub policies: Option<Vec<String>>,
    pub web_url: Option<String>,
}

/// One entry of `ListAccounts`.
#[derive(Debug, Default, DeserializeDict, Type)]
#[zbus(signature = "a{sv}")]
pub struct AccountDict {
    pub destination: Option<String>,
    pub provider: Option<String>,
    pub state: Option<String>,
    pub account_id: Option<String>,
    pub display_name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub missing_scopes: Option<Vec<String>>,
    pub access_expires_at: Option<String>,
    pub refresh_expires_at: Option<String>,
    pub store: Option<String>,
    pub message: Option<String>,
}

pub fn account_view(dict: AccountDict) -> Result<AccountView, String> {
    const WHAT: &str = "ListAccounts' answer";
    Ok(AccountView {
        destination: required(dict.destination, WHAT, "destination")?,
        provider: required(dict.provider, WHAT, "provider")?,
        state: required(dict.state, WHAT, "state")?,
        account_id: non_empty(dict.account_id),
        display_name: non_empty(dict.display_name),
        scopes: dict.scopes.unwrap_or_default(),
        missing_scopes: dict.missing_scopes.unwrap_or_default(),
        access_expires_at: optional_time(dict.access_expires_at, "access_expires_at")?,
        refresh_expires_at: optional_time(dict.refresh_expires_at, "refresh_expires_at")?,
        store: required(dict.store, WHAT, "store")?,
        message: non_empty(dict.message),
    })
}

fn required<T>(value: Option<T>, what: &str, key: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("{what} has no '{key}'"))
}

/// "" is how the bus spells an absent string.
fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|text| !text.is_empty())
}

fn time(text: &str, key: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| format!("'{key}' is not an RFC 3339 time ({e}): {text:?}"))
}

fn optional_time(text: Option<String>, key: &str) -> Result<Option<DateTime<Utc>>, String> {
    non_empty(text).map(|text| time(&text, key)).transpose()
}

fn state(text: &str) -> Result<JobState, String> {
    text.parse()
}

fn history_entry((at, from, to, reason): HistoryTuple) -> Result<HistoryEntry, String> {
    Ok(HistoryEntry {
        at: time(&at, "history.at")?,
        from: non_empty(Some(from)).map(|from| state(&from)).transpose()?,
        to: state(&to)?,
        reason,
    })
}

/// A job as the socket would show it. `speed` and `bytes_in_flight` 0 read as "not
/// uploading" (the bus has no null).
pub fn job_view(dict: JobDict) -> Result<JobView, String> {
    const WHAT: &str = "GetJob's answer";
    let last_error = match (
        non_empty(dict.last_error_kind),
        non_empty(dict.last_error_message),
    ) {
        (None, None) => None,
        (kind, message) => Some(JobError {
            kind: kind.unwrap_or_default(),
            message: message.unwrap_or_default(),
        }),
    };
    let history = dict
        .history
        .map(|entries| entries.into_iter().map(history_entry).collect())
        .transpose()?;
    Ok(JobView {
        id: required(dict.id, WHAT, "id")?,
        file: required(dict.file, WHAT, "file")?,
        destination: required(dict.destination, WHAT, "destination")?,
        state: state(&required(dict.state, WHAT, "state")?)?,
        size: required(dict.size, WHAT, "size")?,
        bytes_sent: required(dict.bytes_sent, WHAT, "bytes_sent")?,
        bytes_transferred: dict.bytes_transferred.unwrap_or_default(),
        attempts: required(dict.attempts, WHAT, "attempts")?,
        stalls: dict.stalls.unwrap_or_default(),
        last_error,
        next_attempt_at: optional_time(dict.next_attempt_at, "next_attempt_at")?,
        publish_at: optional_time(dict.publish_at, "publish_at")?,
        hold: dict.hold.unwrap_or_default(),
        priority: dict.priority.unwrap_or_default(),
        created_at: time(
            &required(dict.created_at, WHAT, "created_at")?,
            "created_at",
        )?,
        updated_at: time(
            &required(dict.updated_at, WHAT, "updated_at")?,
            "updated_at",
        )?,
        metadata: Metadata {
            title: non_empty(dict.title),
            caption: non_empty(dict.caption),
            privacy: non_empty(dict.privacy),
            extra: dict.meta.unwrap_or_default().into_iter().collect(),
        },
        remote: non_empty(dict.remote),
        upload_url: non_empty(dict.upload_url),
        content_hash: non_empty(dict.content_hash),
        speed: dict.speed.filter(|speed| *speed > 0),
        // 0 is what the bus says when nothing is in flight, or no upload is under way.
        bytes_in_flight: dict.bytes_in_flight.filter(|bytes| *bytes > 0),
        warning: non_empty(dict.warning),
        review_url: non_empty(dict.review_url),
        ignore_policies: dict.ignore_policies.unwrap_or_default(),
        waiting: non_empty(dict.waiting),
        actions: dict.actions.unwrap_or_default(),
        // The bus carries no posts yet.
        post: None,
        processing_progress: match (dict.processing_parts_processed, dict.processing_parts_total) {
            (Some(parts_processed), Some(parts_total)) => Some(ProcessingProgress {
                parts_processed,
                parts_total,
                time_left_ms: dict.processing_time_left_ms,
            }),
            _ => None,
        },
        history,
    })
}

pub fn status_view(dict: StatusDict) -> Result<StatusView, String> {
    const WHAT: &str = "Status's answer";
    Ok(StatusView {
        version: required(dict.version, WHAT, "version")?,
        protocol: required(dict.protocol, WHAT, "protocol")?,
        pid: required(dict.pid, WHAT, "pid")?,
        started_at: time(
            &required(dict.started_at, WHAT, "started_at")?,
            "started_at",
        )?,
        uptime_secs: required(dict.uptime_secs, WHAT, "uptime_secs")?,
        counts: required(dict.counts, WHAT, "counts")?
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        max_active: required(dict.max_active, WHAT, "max_active")?,
        rate_limit: required(dict.rate_limit, WHAT, "rate_limit")?,
        rate_limit_until: optional_time(dict.rate_limit_until, "rate_limit_until")?,
        queue_paused: required(dict.queue_paused, WHAT, "queue_paused")?,
        destinations: dict.destinations.unwrap_or_default(),
        data_dir: required(dict.data_dir, WHAT, "data_dir")?,
        socket: required(dict.socket, WHAT, "socket")?,
        quarantined: dict.quarantined.unwrap_or_default(),
        // The bus's Status has no list of lost jobs; the socket's has.
        lost: Vec::new(),
        system: upq_proto::SystemView {
            metered: dict.metered.unwrap_or_default(),
            metered_source: dict.metered_source.unwrap_or_default(),
            on_battery: dict.on_battery.unwrap_or_default(),
            battery_percent: dict.battery_percent.filter(|percent| *percent >= 0.0),
            battery_source: dict.battery_source.unwrap_or_default(),
            connectivity: dict.connectivity.unwrap_or_default(),
            connectivity_source: dict.connectivity_source.unwrap_or_default(),
        },
        policies: dict.policies.unwrap_or_default(),
        web_url: dict.web_url.filter(|url| !url.is_empty()),
    })
}

/// `Add`'s `a{sv}` options for a request; the file goes as the first argument.
/// The bus takes whole seconds of delay, so a delay is rounded up to the next second.
pub fn add_options(add: &AddOptions) -> HashMap<&'static str, Variant<'_>> {
    let mut options = HashMap::new();
    let strings = [
        ("destination", &add.destination),
        ("title", &add.metadata.title),
        ("caption", &add.metadata.caption),
        ("privacy", &add.metadata.privacy),
    ];
    for (key, value) in strings {
        if let Some(value) = value {
            options.insert(key, Variant::from(value.as_str()));
        }
    }
    if add.hold {
        options.insert("hold", Variant::from(true));
    }
    if let Some(delay_ms) = add.delay_ms {
        options.insert("delay", Variant::from(delay_ms.div_ceil(1000)));
    }
    if let Some(at) = add.at {
        options.insert("at", Variant::from(at.to_rfc3339()));
    }
    if add.now {
        options.insert("now", Variant::from(true));
    }
    if add.priority != 0 {
        options.insert("priority", Variant::from(add.priority));
    }
    if !add.metadata.extra.is_empty() {
        options.insert("meta", Variant::from(string_map(&add.metadata.extra)));
    }
    options
}

fn string_map(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// `AddPost`'s options: those of `Add`, and what differs by destination (`title_for`,
/// `caption_for`, `meta_for`) and `all_or_nothing`.
pub fn add_post_options(request: &AddPostRequest) -> HashMap<&'static str, Variant<'_>> {
    let mut options = add_options(&request.options);
    let by_destination = |field: fn(&Metadata) -> &Option<String>| {
        request
            .overrides
            .iter()
            .filter_map(|(destination, metadata)| {
                field(metadata)
                    .as_ref()
                    .map(|value| (destination.clone(), value.clone()))
            })
            .collect::<HashMap<String, String>>()
    };
    let titles = by_destination(|m| &m.title);
    if !titles.is_empty() {
        options.insert("title_for", Variant::from(titles));
    }
    let captions = by_destination(|m| &m.caption);
    if !captions.is_empty() {
        options.insert("caption_for", Variant::from(captions));
    }
    let meta: HashMap<String, HashMap<String, String>> = request
        .overrides
        .iter()
        .filter(|(_, metadata)| !metadata.extra.is_empty())
        .map(|(destination, metadata)| (destination.clone(), string_map(&metadata.extra)))
        .collect();
    if !meta.is_empty() {
        options.insert("meta_for", Variant::from(meta));
    }
    if request.all_or_nothing {
        options.insert("all_or_nothing", Variant::from(true));
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;
    use upq_proto::AddRequest;

    fn dict() -> JobDict {
        JobDict {
            id: Some(7),
            file: Some("/v/a.mp4".into()),
            destination: Some("local".into()),
            state: Some("retrying".into()),
            size: Some(1000),
            bytes_sent: Some(500),
            bytes_transferred: Some(600),
            attempts: Some(2),
            stalls: Some(1),
            last_error_kind: Some("stalled".into()),
            last_error_message: Some("no progress for 30s".into()),
            next_attempt_at: Some("2026-12-01T12:00:12+00:00".into()),
            publish_at: Some(String::new()),
            hold: Some(false),
            priority: Some(-1),
            created_at: Some("2026-12-01T11:00:00.123456789+00:00".into()),
            updated_at: Some("2026-12-01T11:30:00+00:00".into()),
            title: Some("Trip".into()),
            caption: Some(String::new()),
            privacy: Some(String::new()),
            meta: Some([("tag".to_owned(), "sea".to_owned())].into()),
            remote: Some(String::new()),
            upload_url: Some(String::new()),
            content_hash: Some(String::new()),
            speed: Some(0),
            bytes_in_flight: Some(0),
            warning: Some(String::new()),
            review_url: Some("https://studio.youtube.com/video/abc/edit".into()),
            waiting: Some(String::new()),
            ignore_policies: None,
            actions: None,
            processing_parts_processed: Some(37),
            processing_parts_total: Some(1000),
            processing_time_left_ms: None,
            history: None,
        }
    }

    #[test]
    fn empty_strings_and_zero_speed_are_absent() {
        let job = job_view(dict()).unwrap();
        assert_eq!(job.id, 7);
        assert_eq!(job.state, JobState::Retrying);
        assert_eq!(job.metadata.title.as_deref(), Some("Trip"));
        assert_eq!(job.metadata.caption, None);
        assert_eq!(job.metadata.extra["tag"], "sea");
        assert_eq!(job.publish_at, None);
        assert_eq!(job.remote, None);
        assert_eq!(job.speed, None);
        assert_eq!(job.priority, -1);
        assert_eq!(job.waiting, None);
        assert_eq!(
            job.review_url.as_deref(),
            Some("https://studio.youtube.com/video/abc/edit")
        );
        let progress = job.processing_progress.expect("both counts are there");
        assert_eq!((progress.parts_processed, progress.parts_total), (37, 1000));
        assert_eq!(progress.time_left_ms, None);
        let error = job.last_error.unwrap();
        assert_eq!(error.kind, "stalled");
        // Times keep their precision and serialise as the socket sends them.
        assert_eq!(
            serde_json::to_value(job.created_at).unwrap(),
            "2026-12-01T11:00:00.123456789Z"
        );
    }

    #[test]
    fn no_error_is_null() {
        let mut clean = dict();
        clean.last_error_kind = Some(String::new());
        clean.last_error_message = Some(String::new());
        assert_eq!(job_view(clean).unwrap().last_error, None);
    }

    #[test]
    fn history_entries_parse_with_an_empty_first_from() {
        let mut shown = dict();
        shown.history = Some(vec![
            (
                "2026-12-01T11:00:00+00:00".into(),
                String::new(),
                "queued".into(),
                "queued".into(),
            ),
            (
                "2026-12-01T11:00:01+00:00".into(),
                "queued".into(),
                "uploading".into(),
                "upload started".into(),
            ),
        ]);
        let history = job_view(shown).unwrap().history.unwrap();
        assert_eq!(history[0].from, None);
        assert_eq!(history[1].from, Some(JobState::Queued));
        assert_eq!(history[1].to, JobState::Uploading);
    }

    #[test]
    fn bad_values_are_messages() {
        let mut missing = dict();
        missing.id = None;
        assert!(job_view(missing).unwrap_err().contains("'id'"));
        let mut bad_state = dict();
        bad_state.state = Some("teleported".into());
        assert!(job_view(bad_state).unwrap_err().contains("teleported"));
        let mut bad_time = dict();
        bad_time.updated_at = Some("yesterday".into());
        assert!(job_view(bad_time).unwrap_err().contains("updated_at"));
    }

    #[test]
    fn status_counts_are_sorted() {
        let status = status_view(StatusDict {
            version: Some("0.1.0".into()),
            protocol: Some(1),
            pid: Some(42),
            started_at: Some("2026-12-01T10:00:00+00:00".into()),
            uptime_secs: Some(5),
            counts: Some([("queued".to_owned(), 2), ("canceled".to_owned(), 1)].into()),
            max_active: Some(2),
            rate_limit: Some(0),
            rate_limit_until: None,
            queue_paused: Some(false),
            destinations: Some(vec!["local".into()]),
            data_dir: Some("/d".into()),
            socket: Some("/s.sock".into()),
            quarantined: None,
            battery_percent: Some(-1.0),
            ..StatusDict::default()
        })
        .unwrap();
        assert_eq!(
            status.system.battery_percent, None,
            "-1: no charge reported"
        );
        let keys: Vec<&String> = status.counts.keys().collect();
        assert_eq!(keys, ["canceled", "queued"]);
        assert!(status_view(StatusDict::default()).is_err());
    }

    #[test]
    fn add_options_round_delays_up_and_skip_defaults() {
        let mut request = AddRequest {
            file: "/v/a.mp4".into(),
            ..AddRequest::default()
        };
        assert!(add_options(&request.options).is_empty());
        request.options.delay_ms = Some(1500);
        request.options.hold = true;
        request.options.priority = 3;
        request.options.metadata.title = Some("Trip".into());
        request
            .options
            .metadata
            .extra
            .insert("tag".into(), "sea".into());
        let options = add_options(&request.options);
        assert_eq!(options["delay"], Variant::from(2u64));
        assert_eq!(options["hold"], Variant::from(true));
        assert_eq!(options["priority"], Variant::from(3i32));
        assert_eq!(options["title"], Variant::from("Trip"));
        assert_eq!(options.len(), 5);
        request.options.delay_ms = Some(2000);
        assert_eq!(add_options(&request.options)["delay"], Variant::from(2u64));
    }
}
