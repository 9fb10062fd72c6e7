//! The daemon's configuration: TOML file, defaults, and the resolved paths.
//!
//! Parsing and validation only; errors name the file, line and key. Nothing here opens sockets or stores.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Exit code for a configuration error (EX_CONFIG).
pub const EXIT_CONFIG: i32 = 78;

/// Name of the destination that exists without any configuration.
pub const DEFAULT_DESTINATION: &str = "local";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// A value that parsed but cannot be used; `line` is where its key (or its table) is.
    #[error("config file {path}{}: key '{key}': {problem}", line_suffix(*.line))]
    Key {
        path: PathBuf,
        line: Option<usize>,
        key: String,
        problem: String,
    },
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|line| format!(", line {line}"))
        .unwrap_or_default()
}

/// A problem with one key's value, before it is placed in a file.
#[derive(Debug)]
struct KeyProblem {
    key: String,
    problem: String,
}

fn problem(key: impl Into<String>, problem: impl Into<String>) -> KeyProblem {
    KeyProblem {
        key: key.into(),
        problem: problem.into(),
    }
}

/// Where each dotted key of a TOML document is written (1-based lines).
#[derive(Debug, Default)]
struct KeyLines(BTreeMap<String, usize>);

impl KeyLines {
    fn index(text: &str) -> KeyLines {
        let mut lines = KeyLines::default();
        if let Ok(document) = toml::de::DeTable::parse(text) {
            lines.walk(text, "", document.get_ref());
        }
        lines
    }

    fn walk(&mut self, text: &str, prefix: &str, table: &toml::de::DeTable<'_>) {
        for (key, value) in table.iter() {
            let dotted = format!("{prefix}{}", key.get_ref());
            let start = key.span().start.min(text.len());
            let line = text[..start].matches('\n').count() + 1;
            self.0.entry(dotted.clone()).or_insert(line);
            if let toml::de::DeValue::Table(inner) = value.get_ref() {
                self.walk(text, &format!("{dotted}."), inner);
            }
        }
    }

    /// The line of `key`, or of the closest enclosing table written in the file.
    fn line_of(&self, key: &str) -> Option<usize> {
        let mut key = key;
        loop {
            if let Some(line) = self.0.get(key) {
                return Some(*line);
            }
            key = &key[..key.rfind('.')?];
        }
    }
}

/// Where the daemon keeps things, resolved from flags, environment and XDG defaults.
#[derive(Debug, Clone)]
pub struct Paths {
    pub config_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub socket: PathBuf,
}

/// The whole configuration the daemon runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub paths: Paths,
    pub daemon: DaemonSettings,
    pub destinations: BTreeMap<String, DestinationConfig>,
    pub dbus: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSettings {
    pub max_active: u32,
    #[serde(deserialize_with = "de_duration")]
    pub stall_timeout: Duration,
    #[serde(deserialize_with = "de_size")]
    pub min_speed: u64,
    /// Stalled attempts in a row, without any progress, before the job fails.
    pub stall_retries: u32,
    #[serde(deserialize_with = "de_duration")]
    pub processing_timeout: Duration,
    #[serde(deserialize_with = "de_size")]
    pub rate_limit: u64,
    #[serde(deserialize_with = "de_duration")]
    pub publish_delay: Duration,
    pub notify: Vec<String>,
    pub default_destination: String,
    /// What to do when the source file changes under a job: "fail" or "restart".
    pub on_file_change: FileChangePolicy,
    pub retry: RetrySettings,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            max_active: 2,
            stall_timeout: Duration::from_secs(30),
            min_speed: 0,
            stall_retries: 5,
            processing_timeout: Duration::from_secs(30 * 60),
            rate_limit: 0,
            publish_delay: Duration::ZERO,
            notify: vec!["stalled".into(), "failed".into()],
            default_destination: DEFAULT_DESTINATION.into(),
            on_file_change: FileChangePolicy::Fail,
            retry: RetrySettings::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileChangePolicy {
    /// Fail the job with an error that names the file.
    Fail,
    /// Throw away the partial upload and start again with the new content.
    Restart,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    pub max_attempts: u32,
    #[serde(deserialize_with = "de_duration")]
    pub base_delay: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub max_delay: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_attempts: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
        }
    }
}

/// One destination as configured.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DestinationConfig {
    /// A local folder that behaves like a remote: staged, verified, renamed into place.
    Dir {
        path: PathBuf,
        #[serde(default = "default_dir_chunk_size", deserialize_with = "de_size")]
        chunk_size: u64,
    },
    /// A tus 1.0 server.
    Tus {
        endpoint: String,
        #[serde(default = "default_chunk_size", deserialize_with = "de_size")]
        chunk_size: u64,
        /// Sent with every request; `${env:NAME}` and `${file:PATH}` are expanded at load.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default = "default_connect_timeout", deserialize_with = "de_duration")]
        connect_timeout: Duration,
        /// A request that moves no byte either way for this long is aborted.
        #[serde(default = "default_io_timeout", deserialize_with = "de_duration")]
        io_timeout: Duration,
    },
    /// TikTok's Content Posting API.
    Tiktok(TiktokConfig),
}

/// How a TikTok destination posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TiktokMode {
    /// Direct post (`/v2/post/publish/video/init/`, scope `video.publish`).
    Direct,
    /// Upload to the creator's inbox, finished in the TikTok app
    /// (`/v2/post/publish/inbox/video/init/`, scope `video.upload`).
    Inbox,
}

/// One TikTok destination as configured.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TiktokConfig {
    #[serde(default = "default_tiktok_base")]
    pub api_base: String,
    /// Read again before every API call, so a refreshed token is used at once.
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    /// The token itself, usually `${env:NAME}`; expanded at load.
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default = "default_tiktok_mode")]
    pub mode: TiktokMode,
    /// Preferred chunk size; the plan adjusts it to TikTok's rules.
    #[serde(default = "default_tiktok_chunk_size", deserialize_with = "de_size")]
    pub chunk_size: u64,
    /// Privacy of direct posts when a job names none (`SELF_ONLY` when unset).
    #[serde(default)]
    pub privacy: Option<String>,
    /// Interactions allowed on direct posts unless a job says otherwise (`--meta allow_comment=true`).
    #[serde(default)]
    pub allow_comment: bool,
    #[serde(default)]
    pub allow_duet: bool,
    #[serde(default)]
    pub allow_stitch: bool,
    #[serde(default = "default_connect_timeout", deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    #[serde(default = "default_io_timeout", deserialize_with = "de_duration")]
    pub io_timeout: Duration,
    /// The window TikTok counts its per-token rate limits over (one minute).
    #[serde(default = "default_rate_window", deserialize_with = "de_duration")]
    pub rate_window: Duration,
    /// How long an `upload_url` lives (one hour).
    #[serde(
        default = "default_upload_url_lifetime",
        deserialize_with = "de_duration"
    )]
    pub upload_url_lifetime: Duration,
}

// The token is a secret: Debug shows where it comes from, never its value.
impl fmt::Debug for TiktokConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tiktok")
            .field("api_base", &self.api_base)
            .field("access_token_file", &self.access_token_file)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "<redacted>"),
            )
            .field("mode", &self.mode)
            .field("chunk_size", &self.chunk_size)
            .field("privacy", &self.privacy)
            .field("rate_window", &self.rate_window)
            .field("upload_url_lifetime", &self.upload_url_lifetime)
            .finish_non_exhaustive()
    }
}

impl DestinationConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            DestinationConfig::Dir { .. } => "dir",
            DestinationConfig::Tus { .. } => "tus",
            DestinationConfig::Tiktok { .. } => "tiktok",
        }
    }
}

// Headers and tokens are secrets: Debug shows their names, never their values.
impl fmt::Debug for DestinationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestinationConfig::Dir { path, chunk_size } => f
                .debug_struct("Dir")
                .field("path", path)
                .field("chunk_size", chunk_size)
                .finish(),
            DestinationConfig::Tus {
                endpoint,
                chunk_size,
                headers,
                connect_timeout,
                io_timeout,
            } => f
                .debug_struct("Tus")
                .field("endpoint", endpoint)
                .field("chunk_size", chunk_size)
                .field("headers", &headers.keys().collect::<Vec<_>>())
                .field("connect_timeout", connect_timeout)
                .field("io_timeout", io_timeout)
                .finish(),
            DestinationConfig::Tiktok(tiktok) => tiktok.fmt(f),
        }
    }
}

/// A folder's chunk is fsynced before it counts: larger chunks mean fewer syncs, and a
/// crash costs at most one chunk of local copying. Memory does not grow with it.
fn default_dir_chunk_size() -> u64 {
    64 * 1024 * 1024
}

fn default_chunk_size() -> u64 {
    8 * 1024 * 1024
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_io_timeout() -> Duration {
    Duration::from_secs(30)
}

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

fn default_tiktok_base() -> String {
    "https://open.tiktokapis.com".into()
}

fn default_tiktok_mode() -> TiktokMode {
    TiktokMode::Direct
}

fn default_tiktok_chunk_size() -> u64 {
    10_000_000
}

fn default_rate_window() -> Duration {
    Duration::from_secs(60)
}

fn default_upload_url_lifetime() -> Duration {
    Duration::from_secs(3600)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    daemon: DaemonSettings,
    #[serde(default)]
    destinations: BTreeMap<String, DestinationConfig>,
}

fn de_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn de_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
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

impl Config {
    /// Loads the config file (if any) and fills in defaults.
    pub fn load(paths: Paths) -> Result<Config, ConfigError> {
        let file = match &paths.config_file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => Some((path.clone(), text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => {
                    return Err(ConfigError::Read {
                        path: path.clone(),
                        source,
                    })
                }
            },
            None => None,
        };
        match file {
            Some((path, text)) => Config::from_toml(paths, &path, &text),
            None => Ok(Config::with_settings(paths, FileConfig::default())),
        }
    }

    /// Parses config text; `origin` names the file in errors.
    pub fn from_toml(paths: Paths, origin: &Path, text: &str) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: origin.to_path_buf(),
            message,
        };
        let file: FileConfig = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut config = Config::with_settings(paths, file);
        let placed = |found: KeyProblem| ConfigError::Key {
            path: origin.to_path_buf(),
            line: KeyLines::index(text).line_of(&found.key),
            key: found.key,
            problem: found.problem,
        };
        config.expand_secrets().map_err(placed)?;
        config.validate().map_err(placed)?;
        // What the destinations themselves would refuse, found now so it has a line.
        crate::destinations::check(&config.destinations).map_err(|e| {
            placed(KeyProblem {
                key: e.key,
                problem: e.problem.to_string(),
            })
        })?;
        Ok(config)
    }

    fn with_settings(paths: Paths, file: FileConfig) -> Config {
        let mut destinations = file.destinations;
        for destination in destinations.values_mut() {
            match destination {
                DestinationConfig::Dir { path, .. } => *path = expand_home(path),
                DestinationConfig::Tiktok(TiktokConfig {
                    access_token_file: Some(path),
                    ..
                }) => *path = expand_home(path),
                _ => {}
            }
        }
        destinations
            .entry(DEFAULT_DESTINATION.to_string())
            .or_insert_with(|| DestinationConfig::Dir {
                path: paths.data_dir.join("outbox"),
                chunk_size: default_dir_chunk_size(),
            });
        Config {
            paths,
            daemon: file.daemon,
            destinations,
            dbus: true,
        }
    }

    fn expand_secrets(&mut self) -> Result<(), KeyProblem> {
        for (name, destination) in self.destinations.iter_mut() {
            match destination {
                DestinationConfig::Tus { headers, .. } => {
                    for (header, value) in headers.iter_mut() {
                        *value = expand_placeholders(value).map_err(|e| {
                            problem(format!("destinations.{name}.headers.{header}"), e)
                        })?;
                    }
                }
                DestinationConfig::Tiktok(TiktokConfig {
                    access_token: Some(token),
                    ..
                }) => {
                    *token = expand_placeholders(token)
                        .map_err(|e| problem(format!("destinations.{name}.access_token"), e))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), KeyProblem> {
        let daemon = &self.daemon;
        if daemon.max_active == 0 {
            return Err(problem("daemon.max_active", "must be at least 1"));
        }
        if daemon.retry.max_attempts == 0 {
            return Err(problem("daemon.retry.max_attempts", "must be at least 1"));
        }
        if daemon.stall_timeout.is_zero() {
            return Err(problem("daemon.stall_timeout", "must be longer than 0s"));
        }
        if !self.destinations.contains_key(&daemon.default_destination) {
            return Err(problem(
                "daemon.default_destination",
                format!(
                    "no destination named '{}' (known: {})",
                    daemon.default_destination,
                    self.destinations
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        for notify in &daemon.notify {
            if !matches!(
                notify.as_str(),
                "stalled" | "failed" | "published" | "held" | "processing"
            ) {
                return Err(problem(
                    "daemon.notify",
                    format!("unknown event '{notify}' (known: stalled, failed, published, held, processing)"),
                ));
            }
        }
        for (name, destination) in &self.destinations {
            let key = format!("destinations.{name}");
            match destination {
                DestinationConfig::Dir { path, chunk_size } => {
                    if !path.is_absolute() {
                        return Err(problem(
                            format!("{key}.path"),
                            format!("'{}' must be an absolute path", path.display()),
                        ));
                    }
                    check_chunk_size(&key, *chunk_size)?;
                }
                DestinationConfig::Tus {
                    chunk_size,
                    io_timeout,
                    ..
                } => {
                    check_chunk_size(&key, *chunk_size)?;
                    if io_timeout.is_zero() {
                        return Err(problem(
                            format!("{key}.io_timeout"),
                            "must be longer than 0s",
                        ));
                    }
                }
                DestinationConfig::Tiktok(tiktok) => tiktok.validate(&key)?,
            }
        }
        Ok(())
    }
}

impl TiktokConfig {
    fn validate(&self, key: &str) -> Result<(), KeyProblem> {
        match (&self.access_token_file, &self.access_token) {
            (None, None) => {
                return Err(problem(
                    format!("{key}.access_token_file"),
                    "a TikTok destination needs a token: \
                     access_token_file = \"~/.config/upq/tiktok.token\" or access_token = \"${env:TIKTOK_TOKEN}\"",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(problem(
                    format!("{key}.access_token"),
                    "give access_token_file or access_token, not both",
                ))
            }
            (Some(path), None) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    problem(
                        format!("{key}.access_token_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                if text.trim().is_empty() {
                    return Err(problem(
                        format!("{key}.access_token_file"),
                        format!("{} is empty", path.display()),
                    ));
                }
            }
            (None, Some(token)) => {
                if token.trim().is_empty() {
                    return Err(problem(format!("{key}.access_token"), "the token is empty"));
                }
            }
        }
        let base = self.api_base.as_str();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(problem(
                format!("{key}.api_base"),
                format!("'{base}' must be an http or https URL"),
            ));
        }
        if let Some(privacy) = &self.privacy {
            if crate::destinations::tiktok::privacy_level(privacy).is_none() {
                return Err(problem(
                    format!("{key}.privacy"),
                    format!(
                        "'{privacy}' is not a TikTok privacy level \
                         (PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, FOLLOWER_OF_CREATOR, SELF_ONLY)"
                    ),
                ));
            }
        }
        for (name, value) in [
            ("rate_window", self.rate_window),
            ("upload_url_lifetime", self.upload_url_lifetime),
            ("io_timeout", self.io_timeout),
        ] {
            if value.is_zero() {
                return Err(problem(format!("{key}.{name}"), "must be longer than 0s"));
            }
        }
        Ok(())
    }
}

fn check_chunk_size(key: &str, chunk_size: u64) -> Result<(), KeyProblem> {
    const MIN: u64 = 64 * 1024;
    const MAX: u64 = 1024 * 1024 * 1024;
    if !(MIN..=MAX).contains(&chunk_size) {
        return Err(problem(
            format!("{key}.chunk_size"),
            format!("{chunk_size} bytes is outside 64KiB..1GiB"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> Paths {
        Paths {
            config_file: None,
            data_dir: PathBuf::from("/data/upq"),
            socket: PathBuf::from("/run/upq/upqd.sock"),
        }
    }

    #[test]
    fn no_file_means_the_local_destination_only() {
        let config = Config::load(paths()).unwrap();
        assert_eq!(config.destinations.len(), 1);
        assert_eq!(
            config.destinations[DEFAULT_DESTINATION],
            DestinationConfig::Dir {
                path: PathBuf::from("/data/upq/outbox"),
                chunk_size: 64 * 1024 * 1024
            }
        );
        assert_eq!(config.daemon.max_active, 2);
        assert_eq!(config.daemon.stall_timeout, Duration::from_secs(30));
    }

    #[test]
    fn parses_the_documented_keys() {
        let text = r#"
            [daemon]
            max_active = 3
            stall_timeout = "10s"
            rate_limit = "4MiB"
            publish_delay = "1m"
            [daemon.retry]
            max_attempts = 4
            base_delay = "2s"
            [destinations.local]
            kind = "dir"
            path = "/srv/outbox"
            chunk_size = "4MiB"
        "#;
        let config = Config::from_toml(paths(), Path::new("c.toml"), text).unwrap();
        assert_eq!(config.daemon.max_active, 3);
        assert_eq!(config.daemon.rate_limit, 4 * 1024 * 1024);
        assert_eq!(config.daemon.publish_delay, Duration::from_secs(60));
        assert_eq!(config.daemon.retry.max_attempts, 4);
        assert_eq!(config.daemon.retry.max_delay, Duration::from_secs(300));
        assert_eq!(
            config.destinations["local"],
            DestinationConfig::Dir {
                path: PathBuf::from("/srv/outbox"),
                chunk_size: 4 * 1024 * 1024
            }
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let text = "[daemon]\nmax_active = 2\nstall_timeout = \"soon\"\n";
        let err = Config::from_toml(paths(), Path::new("/etc/c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/etc/c.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("stall_timeout"), "{err}");

        let err = Config::from_toml(paths(), Path::new("c.toml"), "[daemon]\nmax_actve = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_actve"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn refusals_found_after_parsing_name_their_line() {
        let cases = [
            ("[daemon]\nstall_timeout = \"5s\"\nmax_active = 0\n", 3, "daemon.max_active"),
            (
                "[destinations.v]\nkind = \"tus\"\nendpoint = \"not a url\"\n",
                3,
                "destinations.v.endpoint",
            ),
            (
                "[destinations.v]\nkind = \"tus\"\nendpoint = \"ftp://h/files/\"\n",
                3,
                "destinations.v.endpoint",
            ),
            (
                "[destinations.v]\nkind = \"tus\"\nendpoint = \"http://h/files/\"\n\n[destinations.v.headers]\nX-Ok = \"1\"\n\"Bad Name\" = \"1\"\n",
                7,
                "destinations.v.headers.Bad Name",
            ),
            (
                "[destinations.v]\nkind = \"tus\"\nendpoint = \"http://h/files/\"\nheaders = { Authorization = \"Bearer s3cret\\n\" }\n",
                4,
                "destinations.v.headers.Authorization",
            ),
            (
                "\n[destinations.t]\nkind = \"tiktok\"\naccess_token = \"x\"\napi_base = \"http://exa mple.com\"\n",
                5,
                "destinations.t.api_base",
            ),
            // A key that is missing is placed at its table.
            ("\n\n[destinations.t]\nkind = \"tiktok\"\n", 3, "destinations.t.access_token_file"),
        ];
        for (text, line, key) in cases {
            let err = Config::from_toml(paths(), Path::new("/etc/c.toml"), text).unwrap_err();
            match &err {
                ConfigError::Key {
                    line: found_line,
                    key: found_key,
                    ..
                } => {
                    assert_eq!(*found_line, Some(line), "{err}");
                    assert_eq!(found_key, key, "{err}");
                }
                other => panic!("expected a key error for {text:?}, got {other}"),
            }
            let shown = err.to_string();
            assert!(
                shown.starts_with(&format!(
                    "config file /etc/c.toml, line {line}: key '{key}': "
                )),
                "{shown}"
            );
            assert!(!shown.contains("s3cret"), "{shown}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let destination = DestinationConfig::Tus {
            endpoint: "https://x/files/".into(),
            chunk_size: 1 << 20,
            headers: [("Authorization".to_string(), "Bearer s3cret".to_string())].into(),
            connect_timeout: default_connect_timeout(),
            io_timeout: default_io_timeout(),
        };
        let shown = format!("{destination:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("Authorization"), "{shown}");
    }

    #[test]
    fn placeholders_expand_from_env_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "t0ken\n").unwrap();
        let text = format!("Bearer ${{file:{}}}", token.display());
        assert_eq!(expand_placeholders(&text).unwrap(), "Bearer t0ken");
        assert_eq!(
            expand_placeholders("x ${env:PATH} y").unwrap(),
            format!("x {} y", std::env::var("PATH").unwrap())
        );
        let err = expand_placeholders("Bearer ${env:UPQ_SURELY_UNSET_42}").unwrap_err();
        assert!(err.contains("UPQ_SURELY_UNSET_42"), "{err}");
        assert!(expand_placeholders("${vault:x}").is_err());
        assert!(expand_placeholders("Bearer ${env:OPEN").is_err());

        let config = "[destinations.v]\nkind = \"tus\"\nendpoint = \"http://127.0.0.1:1/files/\"\nheaders = { Authorization = \"Bearer ${env:UPQ_SURELY_UNSET_42}\" }\n";
        let err = Config::from_toml(paths(), Path::new("c.toml"), config)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("destinations.v.headers.Authorization"),
            "{err}"
        );
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("8MiB").unwrap(), 8 << 20);
        assert_eq!(parse_size("500 KiB").unwrap(), 500 << 10);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("none").unwrap(), 0);
        assert!(parse_size("fast").is_err());
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("5 parsecs").is_err());
    }
}
