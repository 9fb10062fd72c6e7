//! upqd's command line (feature `cli`): parsed by `upqd`, and read by `upqctl man` to write
//! `upqd.1`, so the manual page cannot drift from the flags. Definitions only; no behaviour.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// `upqd --version`: the version and the control protocol it speaks.
pub const UPQD_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (protocol 1)");

/// How `upqd` writes its log on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The upq daemon: a persistent queue of video uploads.
#[derive(Debug, Parser)]
#[command(name = "upqd", version = UPQD_VERSION)]
pub struct UpqdArgs {
    /// Config file [default: $XDG_CONFIG_HOME/upq/config.toml]
    #[arg(long, env = "UPQ_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Folder for the queue database [default: $XDG_DATA_HOME/upq]
    #[arg(long, env = "UPQ_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Control socket [default: $XDG_RUNTIME_DIR/upq/upqd.sock]
    #[arg(long, env = "UPQ_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Log format on stderr; RUST_LOG sets the level
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Do not use D-Bus
    #[arg(long)]
    pub no_dbus: bool,
    /// Verify the queue database without changing it, print a report and exit:
    /// 0 when clean, 1 otherwise
    #[arg(long)]
    pub check: bool,
}
