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
