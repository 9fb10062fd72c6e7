//! upqd: flags, logging and signals; everything else is in the library.
//!
//! The only place that decides exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use upq_daemon::config::{Config, Paths, EXIT_CONFIG};
// The flags live in the protocol crate so that `upqctl man` writes upqd's page from them.
use upq_proto::cli::{LogFormat, UpqdArgs as Args};

/// A damaged queue database (sysexits' EX_DATAERR).
const EXIT_DATA: u8 = 65;
/// A data folder that cannot be created or written (sysexits' EX_CANTCREAT).
const EXIT_CANT_CREATE: u8 = 73;

/// The exit status for an error that stopped the daemon.
fn exit_code(error: &upq_daemon::DaemonError) -> u8 {
    use upq_daemon::store::StoreError;
    use upq_daemon::DaemonError;
    match error {
        DaemonError::Store(StoreError::Damaged { .. }) => EXIT_DATA,
        DaemonError::Store(StoreError::Unwritable { .. }) | DaemonError::DataDir { .. } => {
            EXIT_CANT_CREATE
        }
        // Found when the file was read, normally; a destination that still refuses is config.
        DaemonError::Destinations(_) => EXIT_CONFIG as u8,
        _ => 1,
    }
}

/// `upqd --check`: the report on stdout; never opens the live database for writing.
fn check(paths: &Paths) -> ExitCode {
    let report = upq_daemon::store::check(&paths.data_dir);
    for line in &report.lines {
        println!("{line}");
    }
    if report.is_clean() {
        println!("clean");
        ExitCode::SUCCESS
    } else {
        println!("{} problems", report.problems);
        ExitCode::FAILURE
    }
}

fn xdg_dir(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
            PathBuf::from(home).join(fallback)
        }
    }
}

fn resolve_paths(args: &Args) -> Paths {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    // Relative flags mean relative to where upqd was started, whatever it does later.
    let absolute = |path: PathBuf| std::path::absolute(&path).unwrap_or(path);
    Paths {
        config_file: Some(absolute(args.config.clone().unwrap_or_else(|| {
            xdg_dir("XDG_CONFIG_HOME", ".config")
                .join("upq")
                .join("config.toml")
        }))),
        data_dir: absolute(
            args.data_dir
                .clone()
                .unwrap_or_else(|| xdg_dir("XDG_DATA_HOME", ".local/share").join("upq")),
        ),
        socket: absolute(
            args.socket
                .clone()
                .unwrap_or_else(|| upq_proto::paths::socket_path_from_env(uid)),
        ),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// First SIGTERM/SIGINT: graceful shutdown. Second: exit at once (state is already durable).
/// SIGHUP: reload the configuration.
async fn handle_signals(shutdown: CancellationToken, reload: Arc<Notify>) {
    let mut signals = match signal_hook_tokio::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(signals) => signals,
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return;
        }
    };
    while let Some(signal) = signals.next().await {
        match signal {
            SIGHUP => {
                tracing::info!("SIGHUP: reloading the configuration");
                reload.notify_one();
            }
            _ if shutdown.is_cancelled() => {
                tracing::warn!("second signal: exiting now");
                std::process::exit(130);
            }
            _ => shutdown.cancel(),
        }
    }
}

/// Pieces are half a megabyte and come and go quickly; a fixed threshold keeps them in
/// reusable heap memory and stops glibc's adaptive one from letting larger blocks pile up.
fn bound_allocator_retention() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 2 * 1024 * 1024);
    }
}

fn main() -> ExitCode {
    bound_allocator_retention();
    let args = Args::parse();
    init_logging(args.log_format);
    let paths = resolve_paths(&args);
    if args.check {
        return check(&paths);
    }
    let mut config = match Config::load(paths) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("upqd: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    config.dbus = !args.no_dbus;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("upqd")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("upqd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let reload = Arc::new(Notify::new());
        tokio::spawn(handle_signals(shutdown.clone(), reload.clone()));
        upq_daemon::run(config, shutdown, reload, |ready| match &ready.web_url {
            Some(url) => println!(
                "upqd {} listening on {} (desk {url})",
                env!("CARGO_PKG_VERSION"),
                ready.socket.display()
            ),
            None => println!(
                "upqd {} listening on {}",
                env!("CARGO_PKG_VERSION"),
                ready.socket.display()
            ),
        })
        .await
    });
    // Blocking calls stuck on a hung mount must not keep the process from exiting.
    runtime.shutdown_timeout(std::time::Duration::from_millis(300));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upqd: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use upq_proto::cli::UPQD_VERSION;

    #[test]
    fn the_version_names_the_protocol_spoken() {
        assert!(
            UPQD_VERSION.ends_with(&format!(" (protocol {})", upq_proto::PROTOCOL_VERSION)),
            "{UPQD_VERSION}"
        );
    }

    #[test]
    fn every_flag_has_a_one_line_help() {
        Args::command().debug_assert();
        let mut command = Args::command();
        command.build();
        let missing: Vec<String> = command
            .get_arguments()
            .filter(|arg| {
                arg.get_help()
                    .map(|help| help.to_string())
                    .is_none_or(|help| help.trim().is_empty() || help.contains('\n'))
            })
            .map(|arg| arg.get_id().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "upqd flags without a one-line help: {missing:?}"
        );
    }

    /// The flags are defined in the protocol crate (for `upqctl man`); they parse here as before.
    #[test]
    fn flags_parse_as_upqd_takes_them() {
        let args = Args::try_parse_from([
            "upqd",
            "--data-dir",
            "/tmp/q",
            "--log-format",
            "json",
            "--no-dbus",
            "--check",
        ])
        .unwrap();
        assert_eq!(args.data_dir, Some(PathBuf::from("/tmp/q")));
        assert_eq!(args.log_format, LogFormat::Json);
        assert!(args.no_dbus && args.check);
        assert!(Args::try_parse_from(["upqd", "--log-format", "xml"]).is_err());
    }
}
