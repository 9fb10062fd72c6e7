//! Conversions between the service's views and typed D-Bus values: job dictionaries, `ListJobs`
//! entries, `Add`'s options, batch answers. Pure: no bus connection, no service calls.

use std::collections::HashMap;

use upq_proto::dbus::job_path;
use upq_proto::{AddOptions, BatchItem, JobView, Metadata};
use zbus::{OwnedObjectPath, OwnedVariant, Variant};

use crate::service::ServiceError;

use super::BusError;

/// One entry of `ListJobs`: id, file, destination, state, bytes sent, size, title, object.
pub(super) type JobSummary = upq_proto::dbus::JobSummary<OwnedObjectPath>;

pub(super) fn summary(job: &JobView) -> JobSummary {
    (
        job.id,
        job.file.clone(),
        job.destination.clone(),
        job.state.to_string(),
        job.bytes_sent,
        job.size,
        job.metadata.title.clone().unwrap_or_default(),
        OwnedObjectPath::try_from(job_path(job.id)).expect("job paths are valid object paths"),
    )
}

/// Builds an `a{sv}`.
pub(super) struct Dict(pub(super) HashMap<String, OwnedVariant>);

impl Dict {
    pub(super) fn new() -> Dict {
        Dict(HashMap::new())
    }

    pub(super) fn put<'a>(&mut self, key: &str, value: impl Into<Variant<'a>>) {
        if let Ok(value) = OwnedVariant::try_from(value.into()) {
            self.0.insert(key.to_string(), value);
        }
    }
}

fn time_or_empty(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map(|at| at.to_rfc3339()).unwrap_or_default()
}

/// A job as `a{sv}`: the socket's job object field by field, optional ones as "" or 0.
pub(super) fn job_dict(job: &JobView) -> HashMap<String, OwnedVariant> {
    let mut dict = Dict::new();
    dict.put("id", job.id);
    dict.put("file", job.file.as_str());
    dict.put("destination", job.destination.as_str());
    dict.put("state", job.state.as_str());
    dict.put("size", job.size);
    dict.put("bytes_sent", job.bytes_sent);
    dict.put("bytes_transferred", job.bytes_transferred);
    dict.put("attempts", job.attempts);
    dict.put("stalls", job.stalls);
    let (kind, message) = job
        .last_error
        .as_ref()
        .map(|e| (e.kind.as_str(), e.message.as_str()))
        .unwrap_or_default();
    dict.put("last_error_kind", kind);
    dict.put("last_error_message", message);
    dict.put("next_attempt_at", time_or_empty(job.next_attempt_at));
    dict.put("publish_at", time_or_empty(job.publish_at));
    dict.put("hold", job.hold);
    dict.put("priority", job.priority);
    dict.put("created_at", job.created_at.to_rfc3339());
    dict.put("updated_at", job.updated_at.to_rfc3339());
    dict.put("title", job.metadata.title.as_deref().unwrap_or_default());
    dict.put(
        "caption",
        job.metadata.caption.as_deref().unwrap_or_default(),
    );
    dict.put(
        "privacy",
        job.metadata.privacy.as_deref().unwrap_or_default(),
    );
    dict.put(
        "meta",
        job.metadata
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<String, String>>(),
    );
    dict.put("remote", job.remote.as_deref().unwrap_or_default());
    dict.put("upload_url", job.upload_url.as_deref().unwrap_or_default());
    dict.put(
        "content_hash",
        job.content_hash.as_deref().unwrap_or_default(),
    );
    dict.put("speed", job.speed.unwrap_or_default());
    dict.put("bytes_in_flight", job.bytes_in_flight.unwrap_or_default());
    dict.put("warning", job.warning.as_deref().unwrap_or_default());
    dict.put("review_url", job.review_url.as_deref().unwrap_or_default());
    dict.put("waiting", job.waiting.as_deref().unwrap_or_default());
    dict.put("ignore_policies", job.ignore_policies);
    dict.put("actions", job.actions.clone());
    if let Some(progress) = job.processing_progress {
        dict.put("processing_parts_processed", progress.parts_processed);
        dict.put("processing_parts_total", progress.parts_total);
        if let Some(ms) = progress.time_left_ms {
            dict.put("processing_time_left_ms", ms);
        }
    }
    if let Some(history) = &job.history {
        let entries: Vec<(String, String, String, String)> = history
            .iter()
            .map(|entry| {
                (
                    entry.at.to_rfc3339(),
                    entry
                        .from
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    entry.to.as_str().to_string(),
                    entry.reason.clone(),
                )
            })
            .collect();
        dict.put("history", entries);
    }
    dict.0
}

/// A post as `a{sv}`: the socket's post object without its jobs' views (`jobs` is their
/// ids); absent times are "".
pub(super) fn post_dict(post: &upq_proto::PostView) -> HashMap<String, OwnedVariant> {
    let mut dict = Dict::new();
    dict.put("id", post.id.to_string());
    dict.put("state", post.state.to_string());
    dict.put("file", post.file.as_str());
    dict.put("title", post.title.as_deref().unwrap_or_default());
    dict.put("all_or_nothing", post.all_or_nothing);
    dict.put("created_at", post.created_at.to_rfc3339());
    dict.put("released_at", time_or_empty(post.released_at));
    dict.put("release_after", time_or_empty(post.release_after));
    dict.put(
        "jobs",
        post.jobs.iter().map(|job| job.id).collect::<Vec<u64>>(),
    );
    dict.0
}

/// A single-id batch answer as a D-Bus result.
pub(super) fn single(mut items: Vec<BatchItem>) -> Result<(), BusError> {
    match items.pop() {
        Some(BatchItem {
            error: Some(error), ..
        }) => Err(ServiceError::new(error.code, error.message).into()),
        Some(_) => Ok(()),
        None => Err(BusError::Failed("no answer".into())),
    }
}

fn string_option(
    options: &HashMap<String, OwnedVariant>,
    key: &str,
) -> Result<Option<String>, BusError> {
    match options.get(key) {
        None => Ok(None),
        Some(value) => String::try_from(value.clone())
            .map(Some)
            .map_err(|_| BusError::BadRequest(format!("option '{key}' must be a string (s)"))),
    }
}

/// Takes the post's own options out of `AddPost`'s `a{sv}`: what differs by destination
/// (`title_for`, `caption_for`: a{ss}; `meta_for`: a{sa{ss}}) and `all_or_nothing` (b).
pub(super) fn post_options(
    options: &mut HashMap<String, OwnedVariant>,
) -> Result<(upq_proto::Overrides, bool), BusError> {
    let mut overrides = upq_proto::Overrides::new();
    let by_destination = |key: &str, value: OwnedVariant| {
        HashMap::<String, String>::try_from(value)
            .map_err(|_| BusError::BadRequest(format!("option '{key}' must be a{{ss}}")))
    };
    if let Some(value) = options.remove("title_for") {
        for (destination, title) in by_destination("title_for", value)? {
            overrides.entry(destination).or_default().title = Some(title);
        }
    }
    if let Some(value) = options.remove("caption_for") {
        for (destination, caption) in by_destination("caption_for", value)? {
            overrides.entry(destination).or_default().caption = Some(caption);
        }
    }
    if let Some(value) = options.remove("meta_for") {
        let meta = HashMap::<String, HashMap<String, String>>::try_from(value)
            .map_err(|_| BusError::BadRequest("option 'meta_for' must be a{sa{ss}}".into()))?;
        for (destination, fields) in meta {
            overrides
                .entry(destination)
                .or_default()
                .extra
                .extend(fields);
        }
    }
    let all_or_nothing = match options.remove("all_or_nothing") {
        None => false,
        Some(value) => bool::try_from(value).map_err(|_| {
            BusError::BadRequest("option 'all_or_nothing' must be a boolean (b)".into())
        })?,
    };
    Ok((overrides, all_or_nothing))
}

/// Turns the `a{sv}` options of `Add` and `AddMany` into the socket's.
pub(super) fn add_options(options: HashMap<String, OwnedVariant>) -> Result<AddOptions, BusError> {
    const KNOWN: &[&str] = &[
        "destination",
        "title",
        "caption",
        "privacy",
        "hold",
        "delay",
        "at",
        "priority",
        "meta",
        "now",
    ];
    if let Some(unknown) = options.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(BusError::BadRequest(format!(
            "unknown option '{unknown}' (known: {})",
            KNOWN.join(", ")
        )));
    }
    let hold = match options.get("hold") {
        None => false,
        Some(value) => bool::try_from(value.clone())
            .map_err(|_| BusError::BadRequest("option 'hold' must be a boolean (b)".into()))?,
    };
    let now = match options.get("now") {
        None => false,
        Some(value) => bool::try_from(value.clone())
            .map_err(|_| BusError::BadRequest("option 'now' must be a boolean (b)".into()))?,
    };
    let delay_ms = match options.get("delay") {
        None => None,
        Some(value) => Some(
            u64::try_from(value.clone())
                .map(|seconds| seconds.saturating_mul(1000))
                .map_err(|_| BusError::BadRequest("option 'delay' must be seconds (t)".into()))?,
        ),
    };
    let at = match string_option(&options, "at")? {
        None => None,
        Some(text) => Some(
            chrono::DateTime::parse_from_rfc3339(&text)
                .map(|at| at.with_timezone(&chrono::Utc))
                .map_err(|e| BusError::BadRequest(format!("option 'at' is not RFC 3339: {e}")))?,
        ),
    };
    let priority = match options.get("priority") {
        None => 0,
        Some(value) => i32::try_from(value.clone())
            .map_err(|_| BusError::BadRequest("option 'priority' must be an int32 (i)".into()))?,
    };
    let extra = match options.get("meta") {
        None => Default::default(),
        Some(value) => HashMap::<String, String>::try_from(value.clone())
            .map(|map| map.into_iter().collect())
            .map_err(|_| BusError::BadRequest("option 'meta' must be a{ss}".into()))?,
    };
    Ok(AddOptions {
        destination: string_option(&options, "destination")?,
        metadata: Metadata {
            title: string_option(&options, "title")?,
            caption: string_option(&options, "caption")?,
            privacy: string_option(&options, "privacy")?,
            extra,
        },
        hold,
        delay_ms,
        at,
        priority,
        now,
    })
}

/// `EditJob`'s `a{sv}`: `title`, `caption`, `privacy` (s; "" clears one).
pub(super) fn edit_request(
    id: u64,
    changes: HashMap<String, OwnedVariant>,
) -> Result<upq_proto::EditRequest, BusError> {
    const KNOWN: &[&str] = &["title", "caption", "privacy"];
    if let Some(unknown) = changes.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(BusError::BadRequest(format!(
            "unknown field '{unknown}' (known: {})",
            KNOWN.join(", ")
        )));
    }
    Ok(upq_proto::EditRequest {
        id,
        title: string_option(&changes, "title")?,
        caption: string_option(&changes, "caption")?,
        privacy: string_option(&changes, "privacy")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: Vec<(&str, Variant<'static>)>) -> HashMap<String, OwnedVariant> {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), OwnedVariant::try_from(v).unwrap()))
            .collect()
    }

    #[test]
    fn add_options_become_the_sockets() {
        let request = add_options(options(vec![
            ("title", Variant::from("Trip")),
            ("hold", Variant::from(true)),
            ("delay", Variant::from(60u64)),
            ("priority", Variant::from(3i32)),
        ]))
        .unwrap();
        assert_eq!(request.metadata.title.as_deref(), Some("Trip"));
        assert!(request.hold);
        assert_eq!(request.delay_ms, Some(60_000));
        assert_eq!(request.priority, 3);
    }

    #[test]
    fn bad_options_are_named() {
        let err = add_options(options(vec![("colour", Variant::from("red"))])).unwrap_err();
        assert!(
            matches!(err, BusError::BadRequest(ref m) if m.contains("colour")),
            "{err:?}"
        );
        let err = add_options(options(vec![("hold", Variant::from("yes"))])).unwrap_err();
        assert!(
            matches!(err, BusError::BadRequest(ref m) if m.contains("hold")),
            "{err:?}"
        );
    }
}
