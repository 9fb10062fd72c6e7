//! The daemon's configuration: TOML file, defaults, and the resolved paths.
//!
//! Parsing and validation only; errors name the file, line and key. Nothing here opens sockets or stores.

pub mod checks;
mod lines;
mod privacy;
mod settings;
mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
#[cfg(test)]
use std::time::Duration;

use serde::Deserialize;

use lines::KeyLines;
pub use privacy::Privacy;
use settings::default_dir_chunk_size;
pub use settings::{
    DaemonSettings, DestinationConfig, FileChangePolicy, RetrySettings, TiktokConfig, TiktokMode,
    WebSettings, YoutubeConfig,
};
pub use values::{expand_home, expand_placeholders, parse_duration, parse_size};

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
    pub web: WebSettings,
    pub dbus: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    daemon: DaemonSettings,
    #[serde(default)]
    destinations: BTreeMap<String, DestinationConfig>,
    #[serde(default)]
    web: WebSettings,
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
        checks::check(&config.destinations).map_err(|e| {
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
                })
                | DestinationConfig::Youtube(YoutubeConfig {
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
                rate_limit: 0,
            });
        Config {
            paths,
            daemon: file.daemon,
            destinations,
            web: file.web,
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
                    access_token,
                    client_secret,
                    ..
                })
                | DestinationConfig::Youtube(YoutubeConfig {
                    access_token,
                    client_secret,
                    ..
                }) => {
                    for (key, value) in [
                        ("access_token", access_token),
                        ("client_secret", client_secret),
                    ] {
                        if let Some(value) = value {
                            *value = expand_placeholders(value)
                                .map_err(|e| problem(format!("destinations.{name}.{key}"), e))?;
                        }
                    }
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
        self.web.validate()?;
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
                DestinationConfig::Dir {
                    path, chunk_size, ..
                } => {
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
                    if let Some(chunk_size) = chunk_size {
                        check_chunk_size(&key, *chunk_size)?;
                    }
                    if io_timeout.is_zero() {
                        return Err(problem(
                            format!("{key}.io_timeout"),
                            "must be longer than 0s",
                        ));
                    }
                }
                DestinationConfig::Tiktok(tiktok) => tiktok.validate(&key)?,
                DestinationConfig::Youtube(youtube) => youtube.validate(&key)?,
            }
        }
        Ok(())
    }
}

impl WebSettings {
    fn validate(&self) -> Result<(), KeyProblem> {
        if self.allow_remote {
            return Err(problem(
                "web.allow_remote",
                "the desk serves this machine only: serving others needs TLS, which upq does not offer",
            ));
        }
        if !self.bind.is_loopback() {
            return Err(problem(
                "web.bind",
                format!(
                    "'{}' is not a loopback address; the desk listens on 127.0.0.1 or ::1 only",
                    self.bind
                ),
            ));
        }
        if self.port == Some(0) {
            return Err(problem(
                "web.port",
                "must be 1 to 65535; leave it out and upq chooses one at the first start",
            ));
        }
        Ok(())
    }
}

impl TiktokConfig {
    fn validate(&self, key: &str) -> Result<(), KeyProblem> {
        if let Some(client_key) = &self.client_key {
            if self.access_token.is_some() || self.access_token_file.is_some() {
                return Err(problem(
                    format!("{key}.client_key"),
                    "give client_key (upq signs in and refreshes) or access_token / access_token_file (a token you manage), not both",
                ));
            }
            if client_key.trim().is_empty() {
                return Err(problem(
                    format!("{key}.client_key"),
                    "the client key is empty",
                ));
            }
            if self
                .client_secret
                .as_deref()
                .is_none_or(|s| s.trim().is_empty())
            {
                return Err(problem(
                    format!("{key}.client_secret"),
                    "TikTok needs the app's client secret to sign in, even for a desktop app: \
                     client_secret = \"${env:TIKTOK_CLIENT_SECRET}\"",
                ));
            }
            return self.validate_common(key);
        }
        match (&self.access_token_file, &self.access_token) {
            (None, None) => {
                return Err(problem(
                    format!("{key}.access_token_file"),
                    "a TikTok destination needs an account: client_key and client_secret \
                     (then `upqctl login`), or a token you manage: \
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
        self.validate_common(key)
    }

    fn validate_common(&self, key: &str) -> Result<(), KeyProblem> {
        let base = self.api_base.as_str();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(problem(
                format!("{key}.api_base"),
                format!("'{base}' must be an http or https URL"),
            ));
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

impl YoutubeConfig {
    fn validate(&self, key: &str) -> Result<(), KeyProblem> {
        let manual = self.access_token.is_some() || self.access_token_file.is_some();
        match (&self.client_id, manual) {
            (Some(_), true) => {
                return Err(problem(
                    format!("{key}.client_id"),
                    "give client_id (upq signs in and refreshes) or access_token / access_token_file (a token you manage), not both",
                ))
            }
            (Some(id), false) if id.trim().is_empty() => {
                return Err(problem(format!("{key}.client_id"), "the client id is empty"))
            }
            (Some(_), false) => {
                if self.client_secret.as_deref().is_none_or(|s| s.trim().is_empty()) {
                    return Err(problem(
                        format!("{key}.client_secret"),
                        "Google's desktop clients come with a client secret, and the token endpoint wants it: \
                         client_secret = \"${env:YT_CLIENT_SECRET}\"",
                    ));
                }
            }
            (None, false) => {
                return Err(problem(
                    format!("{key}.client_id"),
                    "a YouTube destination needs an account: client_id and client_secret (then `upqctl login`), \
                     or a token you manage: access_token = \"${env:YT_TOKEN}\" or access_token_file",
                ))
            }
            (None, true) => {
                if self.access_token.is_some() && self.access_token_file.is_some() {
                    return Err(problem(
                        format!("{key}.access_token"),
                        "give access_token_file or access_token, not both",
                    ));
                }
            }
        }
        if let Some(privacy) = &self.privacy {
            crate::destinations::youtube::resource::privacy(privacy)
                .map_err(|e| problem(format!("{key}.privacy"), e))?;
        }
        if self.io_timeout.is_zero() {
            return Err(problem(
                format!("{key}.io_timeout"),
                "must be longer than 0s",
            ));
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
    use settings::{default_connect_timeout, default_io_timeout};

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
                chunk_size: 64 * 1024 * 1024,
                rate_limit: 0,
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
            rate_limit = "512KiB"
        "#;
        let config = Config::from_toml(paths(), Path::new("c.toml"), text).unwrap();
        assert_eq!(config.daemon.max_active, 3);
        assert_eq!(
            config.daemon.rate_limit,
            crate::policy::Timetable::constant(4 * 1024 * 1024)
        );
        assert_eq!(config.daemon.publish_delay, Duration::from_secs(60));
        assert_eq!(config.daemon.retry.max_attempts, 4);
        assert_eq!(config.daemon.retry.max_delay, Duration::from_secs(300));
        assert_eq!(
            config.destinations["local"],
            DestinationConfig::Dir {
                path: PathBuf::from("/srv/outbox"),
                chunk_size: 4 * 1024 * 1024,
                rate_limit: 512 * 1024,
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
            chunk_size: Some(1 << 20),
            headers: [("Authorization".to_string(), "Bearer s3cret".to_string())].into(),
            rate_limit: 0,
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
