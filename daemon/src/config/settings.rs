//! The shape of the configuration: the daemon's settings and each destination's keys, with defaults.
//! Types and defaults only; checking values that parsed is `config`'s job, using them the destinations'.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values::{
    de_duration, de_opt_hours, de_opt_percent, de_opt_size, de_rates, de_reaction, de_size,
};
use super::{Privacy, DEFAULT_DESTINATION};
use crate::policy::{Reaction, Reactions, Timetable};

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
    /// A rate, or a timetable of rates by time of day (and day of the week).
    #[serde(deserialize_with = "de_rates")]
    pub rate_limit: Timetable<u64>,
    /// Uploads start only inside these hours, and pause outside them.
    #[serde(deserialize_with = "de_opt_hours")]
    pub upload_hours: Option<Timetable<bool>>,
    /// What a metered connection does to uploads.
    #[serde(deserialize_with = "de_reaction")]
    pub on_metered: Reaction,
    /// What running on battery does to uploads.
    #[serde(deserialize_with = "de_reaction")]
    pub on_battery: Reaction,
    /// `on_battery` acts only below this charge (percent), when given.
    #[serde(deserialize_with = "de_opt_percent")]
    pub on_battery_below: Option<u8>,
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
            rate_limit: Timetable::constant(0),
            upload_hours: None,
            on_metered: Reaction::Ignore,
            on_battery: Reaction::Ignore,
            on_battery_below: None,
            publish_delay: Duration::ZERO,
            notify: vec!["stalled".into(), "failed".into()],
            default_destination: DEFAULT_DESTINATION.into(),
            on_file_change: FileChangePolicy::Fail,
            retry: RetrySettings::default(),
        }
    }
}

impl DaemonSettings {
    /// The keys that react to what the system bus says.
    pub fn reactions(&self) -> Reactions {
        Reactions {
            on_metered: self.on_metered,
            on_battery: self.on_battery,
            on_battery_below: self.on_battery_below,
        }
    }
}

/// `[web]`: the desk, the daemon's own web page.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSettings {
    pub enabled: bool,
    /// The port on the loopback address; chosen at the first start and kept when absent.
    pub port: Option<u16>,
    /// Where it listens: a loopback address only.
    pub bind: std::net::IpAddr,
    /// Serving other machines needs TLS, which the desk does not have; refused.
    pub allow_remote: bool,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            enabled: true,
            port: None,
            bind: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            allow_remote: false,
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
        /// At most this many bytes per second to this destination, under `[daemon] rate_limit`.
        #[serde(default, deserialize_with = "de_size")]
        rate_limit: u64,
    },
    /// A tus 1.0 server.
    Tus {
        endpoint: String,
        /// Fixed chunks, for servers that need them; left out, each attempt sends the
        /// file in one PATCH and its final piece, the commit point, in another.
        #[serde(default, deserialize_with = "de_opt_size")]
        chunk_size: Option<u64>,
        /// Sent with every request; `${env:NAME}` and `${file:PATH}` are expanded at load.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// At most this many bytes per second to this destination, under `[daemon] rate_limit`.
        #[serde(default, deserialize_with = "de_size")]
        rate_limit: u64,
        #[serde(default = "default_connect_timeout", deserialize_with = "de_duration")]
        connect_timeout: Duration,
        /// A request that moves no byte either way for this long is aborted.
        #[serde(default = "default_io_timeout", deserialize_with = "de_duration")]
        io_timeout: Duration,
    },
    /// TikTok's Content Posting API.
    Tiktok(TiktokConfig),
    /// YouTube Data API v3 resumable uploads.
    Youtube(YoutubeConfig),
}

/// One YouTube destination as configured.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YoutubeConfig {
    /// Both `/upload/youtube/v3/…` and `/youtube/v3/…` live under it.
    #[serde(default = "default_youtube_base")]
    pub api_base: String,
    /// At most this many bytes per second to this destination, under `[daemon] rate_limit`.
    #[serde(default, deserialize_with = "de_size")]
    pub rate_limit: u64,
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    #[serde(default)]
    pub access_token: Option<String>,
    /// The OAuth client (type "Desktop app") of the user's Google Cloud project.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default = "default_redirect_uri")]
    pub redirect_uri: String,
    #[serde(default)]
    pub auth_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub revoke_url: Option<String>,
    /// Privacy of jobs that name none: private, unlisted or public (private when unset).
    #[serde(default)]
    pub privacy: Option<String>,
    /// Fixed chunks, rounded down to a multiple of 256 KiB; left out, each attempt sends the
    /// rest of the file in one request.
    #[serde(default, deserialize_with = "de_opt_size")]
    pub chunk_size: Option<u64>,
    #[serde(default = "default_connect_timeout", deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    #[serde(default = "default_io_timeout", deserialize_with = "de_duration")]
    pub io_timeout: Duration,
}

// Tokens and the client secret are secrets: Debug shows where they come from, never their values.
impl fmt::Debug for YoutubeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Youtube")
            .field("api_base", &self.api_base)
            .field("access_token_file", &self.access_token_file)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "<redacted>"),
            )
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("privacy", &self.privacy)
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

fn default_youtube_base() -> String {
    "https://www.googleapis.com".into()
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
    /// At most this many bytes per second to this destination, under `[daemon] rate_limit`.
    #[serde(default, deserialize_with = "de_size")]
    pub rate_limit: u64,
    /// Read again before every API call, so a refreshed token is used at once.
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    /// The token itself, usually `${env:NAME}`; expanded at load.
    #[serde(default)]
    pub access_token: Option<String>,
    /// The app's client key: with it, upq signs in (`upqctl login`) and refreshes by itself.
    #[serde(default)]
    pub client_key: Option<String>,
    /// The app's client secret, usually `${env:NAME}` or `${file:PATH}`; expanded at load.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Where the browser returns after the sign-in; port 0 takes any free port.
    #[serde(default = "default_redirect_uri")]
    pub redirect_uri: String,
    /// The provider's endpoints, overridable for test servers.
    #[serde(default)]
    pub auth_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub revoke_url: Option<String>,
    #[serde(default = "default_tiktok_mode")]
    pub mode: TiktokMode,
    /// Preferred chunk size; the plan adjusts it to TikTok's rules.
    #[serde(default = "default_tiktok_chunk_size", deserialize_with = "de_size")]
    pub chunk_size: u64,
    /// Privacy of direct posts when a job names none (`SELF_ONLY` when unset).
    #[serde(default)]
    pub privacy: Option<Privacy>,
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
            .field("client_key", &self.client_key)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("redirect_uri", &self.redirect_uri)
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
            DestinationConfig::Youtube { .. } => "youtube",
        }
    }

    /// The destination's own `rate_limit` (0: none).
    pub fn rate_limit(&self) -> u64 {
        match self {
            DestinationConfig::Dir { rate_limit, .. }
            | DestinationConfig::Tus { rate_limit, .. } => *rate_limit,
            DestinationConfig::Tiktok(tiktok) => tiktok.rate_limit,
            DestinationConfig::Youtube(youtube) => youtube.rate_limit,
        }
    }
}

// Headers and tokens are secrets: Debug shows their names, never their values.
impl fmt::Debug for DestinationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestinationConfig::Dir {
                path,
                chunk_size,
                rate_limit,
            } => f
                .debug_struct("Dir")
                .field("path", path)
                .field("chunk_size", chunk_size)
                .field("rate_limit", rate_limit)
                .finish(),
            DestinationConfig::Tus {
                endpoint,
                chunk_size,
                headers,
                rate_limit: _,
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
            DestinationConfig::Youtube(youtube) => youtube.fmt(f),
        }
    }
}

/// A folder's chunk is fsynced before it counts: larger chunks mean fewer syncs, and a
/// crash costs at most one chunk of local copying. Memory does not grow with it.
pub(super) fn default_dir_chunk_size() -> u64 {
    64 * 1024 * 1024
}

pub(super) fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

pub(super) fn default_io_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_tiktok_base() -> String {
    "https://open.tiktokapis.com".into()
}

/// Any free port on the loopback address (RFC 8252 §7.3).
pub(super) fn default_redirect_uri() -> String {
    "http://127.0.0.1:0/callback/".into()
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
