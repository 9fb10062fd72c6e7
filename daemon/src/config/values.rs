//! The value syntaxes of the configuration: durations, sizes, `~` paths and secret placeholders.
//! Pure text to value; it knows no key and reads no config file (only a `${file:PATH}` secret).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Expands `${env:NAME}` and `${file:PATH}` in a configured secret.
pub fn expand_placeholders(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed '${{' in {:?}", redacted_shape(text)))?;
        let placeholder = &after[..end];
        let value = match placeholder.split_once(':') {
            Some(("env", name)) => std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?,
            Some(("file", path)) => {
                let path = expand_home(Path::new(path));
                std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string()
            }
            _ => {
                return Err(format!(
                    "unknown placeholder '${{{placeholder}}}' (use ${{env:NAME}} or ${{file:PATH}})"
                ))
            }
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The text with everything but placeholders hidden, for error messages about secrets.
fn redacted_shape(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_alphanumeric() { '*' } else { c })
        .collect()
}

pub(super) fn de_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

pub(super) fn de_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum SizeValue {
        Number(u64),
        Text(String),
    }
    match SizeValue::deserialize(deserializer)? {
        SizeValue::Number(n) => Ok(n),
        SizeValue::Text(text) => parse_size(&text).map_err(serde::de::Error::custom),
    }
}

/// A size that may be left out (`None`), as [`de_size`] reads it when present.
pub(super) fn de_opt_size<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    de_size(deserializer).map(Some)
}

/// "30s", "5m", "1h 30m"; "0" is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("'{text}' is not a duration like \"30s\" or \"5m\": {e}"))
}

/// "8MiB", "500 KiB", "10MB", "0", "none" (= 0).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") || text == "0" {
        return Ok(0);
    }
    text.parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| format!("'{text}' is not a size like \"8MiB\" or \"500KB\""))
}

/// `~/x` becomes `$HOME/x`; other paths are left alone.
pub fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

/// A rate, or a timetable of rates (`"08:00,2MiB 23:00,off"`).
pub(super) fn de_rates<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<crate::policy::Timetable<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum RateValue {
        Number(u64),
        Text(String),
    }
    match RateValue::deserialize(deserializer)? {
        RateValue::Number(n) => Ok(crate::policy::Timetable::constant(n)),
        RateValue::Text(text) => crate::policy::Timetable::parse_rates(&text, parse_size)
            .map_err(serde::de::Error::custom),
    }
}

/// Upload hours (`"22:00-07:00"`), when given.
pub(super) fn de_opt_hours<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<crate::policy::Timetable<bool>>, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::policy::Timetable::parse_hours(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `"pause"`, `"limit:256KiB"` or `"ignore"`.
pub(super) fn de_reaction<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<crate::policy::Reaction, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::policy::Reaction::parse(&text, parse_size).map_err(serde::de::Error::custom)
}

/// A percentage, `"20%"` or `20`, from 1 to 100, when given.
pub(super) fn de_opt_percent<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u8>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum PercentValue {
        Number(i64),
        Text(String),
    }
    let (number, shown) = match PercentValue::deserialize(deserializer)? {
        PercentValue::Number(n) => (Some(n), n.to_string()),
        PercentValue::Text(text) => (
            text.trim().trim_end_matches('%').trim().parse::<i64>().ok(),
            text,
        ),
    };
    match number {
        Some(n @ 1..=100) => Ok(Some(n as u8)),
        _ => Err(serde::de::Error::custom(format!(
            "'{shown}' is not a percentage from 1% to 100% like \"20%\""
        ))),
    }
}
