//! What the destinations refuse in their settings, checked where the file is read so every
//! refusal names its line; the destinations' constructors parse with the same functions.
//!
//! Pure parsing of configured values: no network, no file system.

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;

use super::DestinationConfig;

/// What a destination refuses in its settings: the dotted key and the problem.
#[derive(Debug, thiserror::Error)]
#[error("key '{key}': {problem}")]
pub struct SettingError {
    pub key: String,
    pub problem: SettingProblem,
}

/// Why a destination setting cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingProblem {
    #[error("'{value}' is not a URL: {reason}")]
    NotUrl { value: String, reason: String },
    #[error("'{value}' is not an http or https URL")]
    NotHttp { value: String },
    #[error("'{name}' is not a header name")]
    HeaderName { name: String },
    // The value is a secret: the message never repeats it.
    #[error("the value is not a valid header value (control characters or a line break?)")]
    HeaderValue,
    #[error("'{value}' is not a loopback address: the browser must come back to http://127.0.0.1, http://[::1] or http://localhost (RFC 8252)")]
    NotLoopback { value: String },
}

/// The URL configured under `key`, which must be http or https.
pub fn parse_http_url(key: String, value: &str) -> Result<Url, SettingError> {
    let url = Url::parse(value).map_err(|e| SettingError {
        key: key.clone(),
        problem: SettingProblem::NotUrl {
            value: value.to_string(),
            reason: e.to_string(),
        },
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SettingError {
            key,
            problem: SettingProblem::NotHttp {
                value: value.to_string(),
            },
        });
    }
    Ok(url)
}

/// The creation URL, which must be http or https.
pub fn parse_endpoint(name: &str, endpoint: &str) -> Result<Url, SettingError> {
    parse_http_url(format!("destinations.{name}.endpoint"), endpoint)
}

/// The configured headers; every value is marked sensitive so it never shows in logs.
pub fn parse_headers<'a>(
    name: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<HeaderMap, SettingError> {
    let mut map = HeaderMap::new();
    for (header, value) in headers {
        let key = format!("destinations.{name}.headers.{header}");
        let header_name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| SettingError {
            key: key.clone(),
            problem: SettingProblem::HeaderName {
                name: header.to_string(),
            },
        })?;
        let mut value = HeaderValue::from_str(value).map_err(|_| SettingError {
            key,
            problem: SettingProblem::HeaderValue,
        })?;
        value.set_sensitive(true);
        map.insert(header_name, value);
    }
    Ok(map)
}

/// The sign-in's endpoints (auth, token, revoke), when given, and its return address.
fn check_sign_in(
    name: &str,
    [auth_url, token_url, revoke_url]: [&Option<String>; 3],
    redirect_uri: &str,
) -> Result<(), SettingError> {
    for (key, value) in [
        ("auth_url", auth_url),
        ("token_url", token_url),
        ("revoke_url", revoke_url),
    ] {
        if let Some(value) = value {
            parse_http_url(format!("destinations.{name}.{key}"), value)?;
        }
    }
    parse_redirect_uri(name, redirect_uri)?;
    Ok(())
}

/// The sign-in's return address, which must be http on the loopback interface.
pub fn parse_redirect_uri(name: &str, value: &str) -> Result<Url, SettingError> {
    let key = format!("destinations.{name}.redirect_uri");
    let url = parse_http_url(key.clone(), value)?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    if url.scheme() != "http" || !loopback {
        return Err(SettingError {
            key,
            problem: SettingProblem::NotLoopback {
                value: value.to_string(),
            },
        });
    }
    Ok(url)
}

/// The API's base URL, which must be http or https.
pub fn parse_api_base(name: &str, api_base: &str) -> Result<Url, SettingError> {
    parse_http_url(format!("destinations.{name}.api_base"), api_base)
}

/// Checks every destination's settings the way its constructor would, without building
/// anything, so the configuration can be refused where it is read.
pub fn check(configs: &BTreeMap<String, DestinationConfig>) -> Result<(), SettingError> {
    for (name, config) in configs {
        match config {
            DestinationConfig::Dir { .. } => {}
            DestinationConfig::Tus {
                endpoint, headers, ..
            } => {
                parse_endpoint(name, endpoint)?;
                parse_headers(name, headers.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
            }
            DestinationConfig::Tiktok(settings) => {
                parse_api_base(name, &settings.api_base)?;
                check_sign_in(
                    name,
                    [
                        &settings.auth_url,
                        &settings.token_url,
                        &settings.revoke_url,
                    ],
                    &settings.redirect_uri,
                )?;
            }
            DestinationConfig::Youtube(settings) => {
                parse_api_base(name, &settings.api_base)?;
                check_sign_in(
                    name,
                    [
                        &settings.auth_url,
                        &settings.token_url,
                        &settings.revoke_url,
                    ],
                    &settings.redirect_uri,
                )?;
            }
        }
    }
    Ok(())
}
