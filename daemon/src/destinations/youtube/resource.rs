//! The video resource a job becomes (`snippet` and `status`), with YouTube's rules on it
//! checked before anything is queued: a title of at most 100 characters, a description of at
//! most 5,000 bytes, neither with `<` or `>`, tags of at most 500 characters in all.
//!
//! Pure: metadata in, JSON or a refusal out.

use serde_json::{json, Map, Value};
use upq_proto::Metadata;

pub const MAX_TITLE_CHARS: usize = 100;
pub const MAX_DESCRIPTION_BYTES: usize = 5000;
pub const MAX_TAGS_CHARS: usize = 500;
/// "People & Blogs", YouTube's own default for uploads.
pub const DEFAULT_CATEGORY: &str = "22";

/// A privacy status YouTube knows.
pub fn privacy(text: &str) -> Result<&'static str, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "private" => Ok("private"),
        "unlisted" => Ok("unlisted"),
        "public" => Ok("public"),
        other => Err(format!(
            "'{other}' is not a YouTube privacy status (private, unlisted or public)"
        )),
    }
}

/// What the video is sent as, and what `add` should warn about.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoResource {
    pub body: Value,
    /// `notifySubscribers` on the insert request, when the job says.
    pub notify_subscribers: Option<bool>,
    pub warnings: Vec<String>,
}

/// Tags as YouTube counts them: the commas between them, and quotes around a tag with a space.
fn tags_length(tags: &[&str]) -> usize {
    let quoted: usize = tags
        .iter()
        .map(|t| t.chars().count() + if t.contains(' ') { 2 } else { 0 })
        .sum();
    quoted + tags.len().saturating_sub(1)
}

fn flag(metadata: &Metadata, key: &str) -> Result<Option<bool>, String> {
    metadata
        .extra
        .get(key)
        .map(|v| match v.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(true),
            "false" | "no" | "0" => Ok(false),
            other => Err(format!("--meta {key}={other}: say true or false")),
        })
        .transpose()
}

/// Builds the resource for a file called `file_name`. `privacy_status` is what it is uploaded
/// as; `publish_at` (RFC 3339) is YouTube's own scheduled release, only for private uploads.
pub fn build(
    metadata: &Metadata,
    file_name: &str,
    privacy_status: &str,
    publish_at: Option<&str>,
) -> Result<VideoResource, String> {
    let mut warnings = Vec::new();
    let title = match metadata.title.as_deref().map(str::trim) {
        Some(title) if !title.is_empty() => title.to_string(),
        _ => {
            let stem = file_name
                .rsplit_once('.')
                .map_or(file_name, |(stem, _)| stem);
            warnings.push(format!("no title given: the video is called '{stem}'"));
            stem.chars().take(MAX_TITLE_CHARS).collect()
        }
    };
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(format!(
            "the title has {} characters; YouTube takes at most {MAX_TITLE_CHARS}",
            title.chars().count()
        ));
    }
    if title.contains(['<', '>']) {
        return Err("YouTube does not take '<' or '>' in a title".to_string());
    }
    let description = metadata.caption.clone().unwrap_or_default();
    if description.len() > MAX_DESCRIPTION_BYTES {
        return Err(format!(
            "the description (caption) is {} bytes; YouTube takes at most {MAX_DESCRIPTION_BYTES}",
            description.len()
        ));
    }
    if description.contains(['<', '>']) {
        return Err("YouTube does not take '<' or '>' in a description".to_string());
    }
    let mut snippet = Map::new();
    snippet.insert("title".into(), json!(title));
    snippet.insert("description".into(), json!(description));
    if let Some(tags) = metadata.extra.get("tags") {
        let tags: Vec<&str> = tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if tags.iter().any(|t| t.contains(['<', '>'])) {
            return Err("YouTube does not take '<' or '>' in a tag".to_string());
        }
        let length = tags_length(&tags);
        if length > MAX_TAGS_CHARS {
            return Err(format!(
                "the tags come to {length} characters as YouTube counts them; it takes at most {MAX_TAGS_CHARS}"
            ));
        }
        snippet.insert("tags".into(), json!(tags));
    }
    let category = metadata
        .extra
        .get("category_id")
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|| DEFAULT_CATEGORY.to_string());
    if category.is_empty() || !category.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "--meta category_id={category}: YouTube's categories are numbers (22 is People & Blogs)"
        ));
    }
    snippet.insert("categoryId".into(), json!(category));
    if let Some(language) = metadata.extra.get("default_language") {
        snippet.insert("defaultLanguage".into(), json!(language.trim()));
    }
    let mut status = Map::new();
    status.insert("privacyStatus".into(), json!(privacy_status));
    if let Some(at) = publish_at {
        status.insert("publishAt".into(), json!(at));
    }
    match flag(metadata, "made_for_kids")? {
        Some(kids) => {
            status.insert("selfDeclaredMadeForKids".into(), json!(kids));
        }
        None => warnings.push(
            "YouTube asks every creator to declare whether a video is made for kids: \
             --meta made_for_kids=false (or true)"
                .to_string(),
        ),
    }
    if let Some(license) = metadata.extra.get("license") {
        let license = license.trim();
        if !matches!(license, "youtube" | "creativeCommon") {
            return Err(format!(
                "--meta license={license}: YouTube's licenses are youtube and creativeCommon"
            ));
        }
        status.insert("license".into(), json!(license));
    }
    Ok(VideoResource {
        body: json!({ "snippet": snippet, "status": status }),
        notify_subscribers: flag(metadata, "notify_subscribers")?,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(title: Option<&str>, extra: &[(&str, &str)]) -> Metadata {
        Metadata {
            title: title.map(str::to_string),
            caption: Some("A day out".into()),
            privacy: None,
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_job_becomes_a_snippet_and_a_status() {
        let built = build(
            &meta(
                Some("Trip"),
                &[("tags", "travel, sea"), ("made_for_kids", "false")],
            ),
            "trip.mp4",
            "private",
            Some("2026-12-24T18:00:00Z"),
        )
        .unwrap();
        assert_eq!(built.body["snippet"]["title"], "Trip");
        assert_eq!(built.body["snippet"]["description"], "A day out");
        assert_eq!(built.body["snippet"]["tags"], json!(["travel", "sea"]));
        assert_eq!(built.body["snippet"]["categoryId"], "22");
        assert_eq!(built.body["status"]["privacyStatus"], "private");
        assert_eq!(built.body["status"]["publishAt"], "2026-12-24T18:00:00Z");
        assert_eq!(built.body["status"]["selfDeclaredMadeForKids"], false);
        assert!(built.warnings.is_empty(), "{:?}", built.warnings);
    }

    #[test]
    fn the_file_name_is_the_default_title_and_kids_must_be_declared() {
        let built = build(&meta(None, &[]), "holiday clip.mov", "public", None).unwrap();
        assert_eq!(built.body["snippet"]["title"], "holiday clip");
        assert_eq!(built.warnings.len(), 2, "{:?}", built.warnings);
        assert!(built.warnings[1].contains("made_for_kids"));
    }

    #[test]
    fn youtube_s_limits_refuse_before_anything_moves() {
        let long = "x".repeat(101);
        assert!(build(&meta(Some(&long), &[]), "a.mp4", "private", None).is_err());
        assert!(build(&meta(Some("a <b>"), &[]), "a.mp4", "private", None).is_err());
        let mut big = meta(Some("t"), &[]);
        big.caption = Some("é".repeat(2501));
        assert!(build(&big, "a.mp4", "private", None)
            .unwrap_err()
            .contains("5000"));
        let tags = vec!["abcdefghij"; 46].join(",");
        assert!(build(
            &meta(Some("t"), &[("tags", &tags)]),
            "a.mp4",
            "private",
            None
        )
        .is_err());
        assert!(build(
            &meta(Some("t"), &[("category_id", "music")]),
            "a.mp4",
            "private",
            None
        )
        .is_err());
        assert!(privacy("secret").is_err());
        assert_eq!(privacy("Unlisted").unwrap(), "unlisted");
    }
}
