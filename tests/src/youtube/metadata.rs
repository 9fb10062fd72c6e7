//! The video resource's rules: which fields exist, which a client may set, and the limits on
//! `snippet` and `status`, as the `videos` resource reference states them. Pure; touches
//! nothing but the values it is given.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::answer::Answer;
use super::limits::*;

/// Every part of a video resource (`part` may name only these).
pub(super) const PARTS: [&str; 14] = [
    "contentDetails",
    "fileDetails",
    "id",
    "liveStreamingDetails",
    "localizations",
    "paidProductPlacementDetails",
    "player",
    "processingDetails",
    "recordingDetails",
    "snippet",
    "statistics",
    "status",
    "suggestions",
    "topicDetails",
];

/// Top-level properties of the video resource besides its parts.
const RESOURCE_FIELDS: [&str; 3] = ["kind", "etag", "id"];

const SNIPPET_SETTABLE: [&str; 6] = [
    "title",
    "description",
    "tags",
    "categoryId",
    "defaultLanguage",
    "defaultAudioLanguage",
];
/// Sent back by some clients, ignored on writes.
const SNIPPET_READ_ONLY: [&str; 6] = [
    "publishedAt",
    "channelId",
    "channelTitle",
    "thumbnails",
    "liveBroadcastContent",
    "localized",
];
const STATUS_SETTABLE: [&str; 7] = [
    "privacyStatus",
    "publishAt",
    "license",
    "embeddable",
    "publicStatsViewable",
    "selfDeclaredMadeForKids",
    "containsSyntheticMedia",
];
const STATUS_READ_ONLY: [&str; 4] = [
    "uploadStatus",
    "failureReason",
    "rejectionReason",
    "madeForKids",
];

pub(super) const PRIVACY_STATUSES: [&str; 3] = ["private", "public", "unlisted"];
const LICENSES: [&str; 2] = ["youtube", "creativeCommon"];

/// `part` as a list: present, every name known, none repeated.
pub(super) fn parse_parts(part: Option<&str>) -> Result<Vec<String>, Answer> {
    let Some(part) = part else {
        return Err(Answer::error(
            400,
            "youtube.parameter",
            "missingRequiredParameter",
            "No filter selected. Expected one of: part",
        )
        .at("part", "parameter"));
    };
    let mut parts: Vec<String> = Vec::new();
    for name in part.split(',').map(str::trim) {
        if !PARTS.contains(&name) {
            return Err(
                Answer::error(400, "youtube.part", "unknownPart", format!("'{name}'"))
                    .at("part", "parameter"),
            );
        }
        if !parts.iter().any(|p| p == name) {
            parts.push(name.to_string());
        }
    }
    Ok(parts)
}

fn invalid_json(what: &str, why: String) -> Answer {
    Answer::bad_request(format!("Invalid JSON payload received. {why}")).at(what, "other")
}

/// The request body as a video resource object, every top-level name known.
pub(super) fn resource(body: &[u8]) -> Result<Map<String, Value>, Answer> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| invalid_json("body", format!("{e}")))?;
    let Value::Object(map) = value else {
        return Err(invalid_json(
            "body",
            "The body is not a JSON object.".to_string(),
        ));
    };
    if let Some(unknown) = map
        .keys()
        .find(|key| !PARTS.contains(&key.as_str()) && !RESOURCE_FIELDS.contains(&key.as_str()))
    {
        return Err(invalid_json(
            "body",
            format!("Unknown name \"{unknown}\": Cannot find field."),
        ));
    }
    Ok(map)
}

/// The object at `key` of a resource, every name known (`settable` or `read_only`).
fn object<'a>(
    value: &'a Value,
    what: &str,
    settable: &[&str],
    read_only: &[&str],
) -> Result<&'a Map<String, Value>, Answer> {
    let map = value
        .as_object()
        .ok_or_else(|| invalid_json(what, format!("{what} is not an object.")))?;
    if let Some(unknown) = map
        .keys()
        .find(|key| !settable.contains(&key.as_str()) && !read_only.contains(&key.as_str()))
    {
        return Err(invalid_json(
            what,
            format!("Unknown name \"{unknown}\" at '{what}': Cannot find field."),
        ));
    }
    Ok(map)
}

fn string<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<&'a str>, Answer> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.as_str())),
        Some(other) => Err(invalid_json(
            &format!("{what}.{key}"),
            format!("Invalid value at '{what}.{key}' (TYPE_STRING), {other}"),
        )),
    }
}

fn boolean(map: &Map<String, Value>, key: &str, what: &str) -> Result<Option<bool>, Answer> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(other) => Err(invalid_json(
            &format!("{what}.{key}"),
            format!("Invalid value at '{what}.{key}' (TYPE_BOOL), {other}"),
        )),
    }
}

fn video_error(reason: &str, message: &str, location: &str) -> Answer {
    Answer::error(400, "youtube.video", reason, message).at(location, "other")
}

/// How the docs count `snippet.tags` against its limit: commas between tags count, and a tag
/// with a space counts as if it were in quotation marks.
pub(super) fn tags_length(tags: &[&str]) -> usize {
    let quoted: usize = tags
        .iter()
        .map(|tag| tag.chars().count() + if tag.contains(' ') { 2 } else { 0 })
        .sum();
    quoted + tags.len().saturating_sub(1)
}

/// Checks a snippet for `videos.insert` or `videos.update` and returns what is stored: its
/// settable properties. An update must carry `categoryId` too.
pub(super) fn snippet(value: Option<&Value>, update: bool) -> Result<Value, Answer> {
    let invalid_title = |note: &str| {
        video_error(
            "invalidTitle",
            "The request metadata specifies an invalid or empty video title.",
            "body.snippet.title",
        )
        .note(note)
    };
    let Some(value) = value else {
        return Err(invalid_title("the request has no snippet"));
    };
    let map = object(value, "snippet", &SNIPPET_SETTABLE, &SNIPPET_READ_ONLY)?;
    let title = string(map, "title", "snippet")?.unwrap_or("");
    if title.trim().is_empty() {
        return Err(invalid_title("snippet.title is empty"));
    }
    let title_chars = title.chars().count();
    if title_chars > MAX_TITLE_CHARS {
        return Err(invalid_title(&format!(
            "snippet.title is {title_chars} characters, over {MAX_TITLE_CHARS}"
        )));
    }
    if title.contains(['<', '>']) {
        return Err(invalid_title("snippet.title may not contain < or >"));
    }
    let description = string(map, "description", "snippet")?;
    if let Some(description) = description {
        let why = if description.len() > MAX_DESCRIPTION_BYTES {
            Some(format!(
                "snippet.description is {} bytes, over {MAX_DESCRIPTION_BYTES}",
                description.len()
            ))
        } else if description.contains(['<', '>']) {
            Some("snippet.description may not contain < or >".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            return Err(video_error(
                "invalidDescription",
                "The request metadata specifies an invalid video description.",
                "body.snippet.description",
            )
            .note(why));
        }
    }
    let mut tags: Vec<&str> = Vec::new();
    match map.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item.as_str() {
                    Some(tag) => tags.push(tag),
                    None => {
                        return Err(invalid_json(
                            "snippet.tags",
                            format!("Invalid value at 'snippet.tags' (TYPE_STRING), {item}"),
                        ))
                    }
                }
            }
        }
        Some(other) => {
            return Err(invalid_json(
                "snippet.tags",
                format!("Invalid value at 'snippet.tags', {other}: a list of strings"),
            ))
        }
    }
    let length = tags_length(&tags);
    if length > MAX_TAGS_CHARS || tags.iter().any(|tag| tag.contains(['<', '>'])) {
        return Err(video_error(
            "invalidTags",
            "The request metadata specifies invalid video keywords.",
            "body.snippet.tags",
        )
        .note(format!(
            "the tags count {length} characters (at most {MAX_TAGS_CHARS}), or one holds < or >"
        )));
    }
    let category = string(map, "categoryId", "snippet")?;
    let invalid_category = |note: String| {
        video_error(
            "invalidCategoryId",
            "The snippet.categoryId property specifies an invalid category ID.",
            "body.snippet.categoryId",
        )
        .note(note)
    };
    match category {
        None if update => {
            return Err(invalid_category(
                "an update of the snippet must set snippet.categoryId".to_string(),
            ))
        }
        Some(id) if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(invalid_category(format!("{id:?} is not a category id")))
        }
        _ => {}
    }
    let mut stored = Map::new();
    stored.insert("title".into(), json!(title));
    stored.insert("description".into(), json!(description.unwrap_or("")));
    if !tags.is_empty() {
        stored.insert("tags".into(), json!(tags));
    }
    stored.insert("categoryId".into(), json!(category.unwrap_or("22")));
    for key in ["defaultLanguage", "defaultAudioLanguage"] {
        if let Some(language) = string(map, key, "snippet")? {
            stored.insert(key.into(), json!(language));
        }
    }
    Ok(Value::Object(stored))
}

/// `publishAt` as stored and shown.
pub(super) fn format_instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What the video is now, for the rules of a status write.
pub(super) struct Current<'a> {
    pub(super) status: &'a Value,
    pub(super) ever_public: bool,
}

/// Checks a status for `videos.insert` (`current` None) or `videos.update` and returns the
/// status to store (without `uploadStatus` and the reasons, which the server keeps) and the
/// `publishAt`, if any.
pub(super) fn status(
    value: Option<&Value>,
    current: Option<Current<'_>>,
) -> Result<(Value, Option<DateTime<Utc>>), Answer> {
    let empty = json!({});
    let map = object(
        value.unwrap_or(&empty),
        "status",
        &STATUS_SETTABLE,
        &STATUS_READ_ONLY,
    )?;
    let invalid_metadata = |note: String| {
        video_error(
            "invalidVideoMetadata",
            "The request metadata is invalid.",
            "body.status",
        )
        .note(note)
    };
    let asked_privacy = string(map, "privacyStatus", "status")?;
    if let Some(privacy) = asked_privacy {
        if !PRIVACY_STATUSES.contains(&privacy) {
            return Err(invalid_metadata(format!(
                "status.privacyStatus {privacy:?} is not one of {PRIVACY_STATUSES:?}"
            )));
        }
    }
    let privacy = match (asked_privacy, &current) {
        (Some(privacy), _) => privacy.to_string(),
        (None, Some(current)) => current.status["privacyStatus"]
            .as_str()
            .unwrap_or("public")
            .to_string(),
        // "If you don't specify a value ... the privacy status defaults to public."
        (None, None) => "public".to_string(),
    };
    let invalid_publish_at = |note: String| {
        video_error(
            "invalidPublishAt",
            "The request metadata specifies an invalid scheduled publishing time.",
            "body.status.publishAt",
        )
        .note(note)
    };
    let publish_at = match string(map, "publishAt", "status")? {
        None => None,
        Some(text) => {
            let at = DateTime::parse_from_rfc3339(text)
                .map_err(|e| {
                    invalid_publish_at(format!("{text:?} is not an ISO 8601 instant: {e}"))
                })?
                .with_timezone(&Utc);
            if asked_privacy != Some("private") {
                return Err(invalid_publish_at(
                    "publishAt may be set only with status.privacyStatus \"private\" in the \
                     same request"
                        .to_string(),
                ));
            }
            if current.as_ref().is_some_and(|current| current.ever_public) {
                return Err(invalid_publish_at(
                    "publishAt may be set only on a video that was never published".to_string(),
                ));
            }
            Some(at)
        }
    };
    let license = string(map, "license", "status")?.unwrap_or("youtube");
    if !LICENSES.contains(&license) {
        return Err(invalid_metadata(format!(
            "status.license {license:?} is not one of {LICENSES:?}"
        )));
    }
    let mut stored = Map::new();
    stored.insert("privacyStatus".into(), json!(privacy));
    if let Some(at) = publish_at {
        stored.insert("publishAt".into(), json!(format_instant(at)));
    }
    stored.insert("license".into(), json!(license));
    for (key, default) in [("embeddable", true), ("publicStatsViewable", true)] {
        stored.insert(
            key.into(),
            json!(boolean(map, key, "status")?.unwrap_or(default)),
        );
    }
    for key in ["selfDeclaredMadeForKids", "containsSyntheticMedia"] {
        let kept = current
            .as_ref()
            .and_then(|current| current.status.get(key))
            .and_then(Value::as_bool);
        if let Some(flag) = boolean(map, key, "status")?.or(kept) {
            stored.insert(key.into(), json!(flag));
        }
    }
    if let Some(made_for_kids) = stored.get("selfDeclaredMadeForKids").cloned() {
        stored.insert("madeForKids".into(), made_for_kids);
    }
    Ok((Value::Object(stored), publish_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_count_as_the_docs_say() {
        assert_eq!(tags_length(&["Foo-Baz"]), 7);
        assert_eq!(tags_length(&["Foo Baz"]), 9);
        assert_eq!(tags_length(&["a", "b c"]), 1 + 1 + 5);
        assert_eq!(tags_length(&[]), 0);
    }

    #[test]
    fn snippets() {
        let ok = snippet(Some(&json!({"title": "t", "tags": ["a"]})), false).unwrap();
        assert_eq!(ok["categoryId"], "22");
        assert_eq!(ok["description"], "");
        for bad in [
            json!({"title": ""}),
            json!({"title": "x".repeat(101)}),
            json!({"title": "a<b"}),
            json!({"title": "t", "description": "é".repeat(2501)}),
            json!({"title": "t", "tags": ["x".repeat(501)]}),
            json!({"title": "t", "categoryId": "music"}),
            json!({"title": "t", "colour": "red"}),
        ] {
            assert!(snippet(Some(&bad), false).is_err(), "{bad}");
        }
        assert!(snippet(Some(&json!({"title": "é".repeat(100)})), false).is_ok());
        assert!(snippet(Some(&json!({"title": "t"})), true).is_err());
    }

    #[test]
    fn statuses() {
        let (stored, at) = status(None, None).unwrap();
        assert_eq!(stored["privacyStatus"], "public");
        assert!(at.is_none());
        let (stored, at) = status(
            Some(&json!({"privacyStatus": "private", "publishAt": "2030-01-01T10:00:00+01:00"})),
            None,
        )
        .unwrap();
        assert_eq!(stored["publishAt"], "2030-01-01T09:00:00Z");
        assert!(at.is_some());
        for bad in [
            json!({"privacyStatus": "secret"}),
            json!({"privacyStatus": "public", "publishAt": "2030-01-01T00:00:00Z"}),
            json!({"publishAt": "2030-01-01T00:00:00Z"}),
            json!({"privacyStatus": "private", "publishAt": "tomorrow"}),
            json!({"selfDeclaredMadeForKids": "no"}),
        ] {
            assert!(status(Some(&bad), None).is_err(), "{bad}");
        }
        let current = json!({"privacyStatus": "unlisted", "selfDeclaredMadeForKids": false});
        let (stored, _) = status(
            Some(&json!({"embeddable": false})),
            Some(Current {
                status: &current,
                ever_public: false,
            }),
        )
        .unwrap();
        assert_eq!(stored["privacyStatus"], "unlisted");
        assert_eq!(stored["selfDeclaredMadeForKids"], false);
        assert_eq!(stored["embeddable"], false);
        let was_public = status(
            Some(&json!({"privacyStatus": "private", "publishAt": "2030-01-01T00:00:00Z"})),
            Some(Current {
                status: &current,
                ever_public: true,
            }),
        );
        assert!(was_public.is_err());
    }

    #[test]
    fn parts() {
        assert_eq!(
            parse_parts(Some("snippet,status")).unwrap(),
            ["snippet", "status"]
        );
        assert!(parse_parts(Some("snippet,colour")).is_err());
        assert!(parse_parts(None).is_err());
    }
}
