//! `upqctl`: the command line of upq; parses arguments and hands each command to its module.
//! Owns the process edge: exit codes and the one place where errors are printed.

mod action;
mod backend;
mod bus;
mod client;
mod commands;
mod exit;
mod parse;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::action::Action;
use crate::backend::Backend;
use crate::commands::batch::{IdsArgs, SelectionArgs};
use crate::commands::Ctx;

/// `upqctl --version`: the version and the protocol it speaks.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (protocol 1)");

#[derive(Debug, Parser)]
#[command(
    name = "upqctl",
    version = VERSION,
    about = "Control upqd, the background upload queue",
    propagate_version = true
)]
struct Cli {
    /// The daemon's control socket [default: $XDG_RUNTIME_DIR/upq/upqd.sock]
    #[arg(long, global = true, env = "UPQ_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print one JSON document on stdout instead of text
    #[arg(long, global = true)]
    json: bool,
    /// Talk to the daemon over the session D-Bus instead of the socket (--socket is then unused)
    #[arg(long, global = true)]
    bus: bool,
    /// When to colour the output: auto (a terminal, unless NO_COLOR is set), always, never
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "WHEN",
        default_value = "auto",
        hide_possible_values = true
    )]
    color: render::ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Queue a file for upload; prints the job id
    Add(Box<commands::add::AddArgs>),
    /// List active jobs
    List {
        /// Include published, failed and canceled jobs
        #[arg(long)]
        all: bool,
        /// List posts, each with its jobs (`--json`: an array of post views)
        #[arg(long)]
        posts: bool,
    },
    /// Show one job with its history
    Show {
        /// The job id, as `upqctl list` shows it, or a post id (p1)
        #[arg(value_name = "ID", value_parser = commands::parse_target)]
        id: commands::Target,
    },
    /// Change a job's title, caption or privacy while its destination still allows it
    Edit {
        /// The job id, as `upqctl list` shows it
        #[arg(value_name = "ID")]
        id: u64,
        /// The new title ("" clears it)
        #[arg(long)]
        title: Option<String>,
        /// The new caption ("" clears it)
        #[arg(long)]
        caption: Option<String>,
        /// The new privacy (the destination's words: public, private, unlisted, ...)
        #[arg(long)]
        privacy: Option<String>,
    },
    /// Pause jobs (keeps their upload session); --all also pauses the queue
    Pause(SelectionArgs),
    /// Resume paused jobs; --all also resumes the queue
    Resume {
        #[command(flatten)]
        selection: SelectionArgs,
        /// From now on these jobs ignore the upload policies (hours, metered, battery)
        #[arg(long)]
        now: bool,
    },
    /// Cancel jobs; each becomes a draft with its metadata
    Cancel(IdsArgs),
    /// Re-queue failed jobs now, or retry waiting ones without delay
    Retry(IdsArgs),
    /// Release held jobs now
    Publish(IdsArgs),
    /// List drafts (canceled jobs)
    Drafts,
    /// Put drafts back in the queue
    Recover(IdsArgs),
    /// Forget drafts (the files stay)
    Discard(IdsArgs),
    /// Block until the jobs end; exit 0 if all were published, 1 if not, 124 on timeout
    Wait {
        /// Job ids to wait for, or post ids (p1) for all of a post's jobs
        #[arg(required = true, value_name = "ID", value_parser = commands::parse_target)]
        ids: Vec<commands::Target>,
        /// Give up after this long (e.g. 90s, 10m)
        #[arg(long, value_name = "DUR", value_parser = parse::parse_duration)]
        timeout: Option<Duration>,
    },
    /// Live progress of every active job, or of the named ones until they end
    Watch {
        /// Follow only these jobs (or every job of these posts, p1), until they end
        /// [default: every active job]
        #[arg(value_name = "ID", value_parser = commands::parse_target)]
        ids: Vec<commands::Target>,
    },
    /// Daemon version, uptime, job counts and limits
    Status,
    /// Change the global upload rate limit (e.g. 4MiB, 500KiB, none) until the rate_limit
    /// timetable's next change
    Limit {
        /// Bytes per second with a unit (4MiB, 500KiB) or "none" for no limit
        #[arg(value_name = "RATE", value_parser = parse::parse_rate)]
        rate: u64,
        /// Hold it this long instead (30m, 2h), then go back to the configured rate
        #[arg(long, value_name = "DUR", value_parser = parse::parse_duration)]
        until: Option<std::time::Duration>,
    },
    /// Sign a destination in (TikTok, YouTube) in the browser; exit 0 signed in, 1 refused, 124 timeout
    Login {
        /// The destination's name in the config
        destination: String,
        /// Print the sign-in address as the first line of stdout instead of opening a browser
        #[arg(long)]
        no_browser: bool,
        /// Give up after this long (e.g. 90s, 10m)
        #[arg(long, value_name = "DUR", value_parser = parse::parse_duration, default_value = "5m")]
        timeout: Duration,
    },
    /// Open the desk (upqd's web page) in the browser, signed in with a one-time address
    Open {
        /// Print the one-time sign-in address on stdout instead of opening a browser
        #[arg(long)]
        no_browser: bool,
    },
    /// Print the completion script for a shell (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Print a manual page (upqctl's, upqd's or a subcommand's), or write them all into a folder
    Man {
        /// The page to print: upqctl, upqd, or upqctl-SUBCOMMAND (upqctl-pause)
        #[arg(value_name = "PAGE", default_value = "upqctl", conflicts_with = "dir")]
        page: String,
        /// Write every page (upqctl.1, upqctl-add.1, …, upqd.1) into this folder
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Check everything upq depends on, one line each with a fix; exit 1 on any problem
    Doctor {
        /// Give each check this long (e.g. 5s, 500ms)
        #[arg(long, value_name = "DUR", value_parser = parse::parse_duration, default_value = "5s")]
        timeout: Duration,
    },
    /// The destinations' accounts: who is signed in, scopes, expiry, where tokens are kept
    Accounts,
    /// Revoke a destination's sign-in at the platform and forget its tokens
    Logout {
        /// The destination's name in the config
        destination: String,
    },
}

fn default_socket() -> PathBuf {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    upq_proto::paths::socket_path_from_env(uid)
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    use clap::CommandFactory;
    // These two need no daemon, nor a bus to reach one.
    match cli.command {
        Command::Completions { shell } => {
            return commands::docs::completions(Cli::command(), shell)
        }
        Command::Man { page, dir } => {
            return commands::docs::man(Cli::command(), &page, dir.as_deref())
        }
        // It reports a daemon that does not answer instead of failing on it.
        Command::Doctor { timeout } => {
            return commands::doctor::run(commands::doctor::Options {
                socket: cli.socket.unwrap_or_else(default_socket),
                bus: cli.bus,
                json: cli.json,
                timeout,
                paint: if cli.json {
                    render::Paint::OFF
                } else {
                    render::Paint::for_stdout(cli.color)
                },
            })
        }
        _ => {}
    }
    let backend = if cli.bus {
        Backend::bus()?
    } else {
        Backend::socket(cli.socket.unwrap_or_else(default_socket))
    };
    let ctx = Ctx {
        backend,
        json: cli.json,
        // One JSON document on stdout, and nothing in it that is not JSON.
        paint: if cli.json {
            render::Paint::OFF
        } else {
            render::Paint::for_stdout(cli.color)
        },
    };
    match cli.command {
        Command::Add(args) => commands::add::run(&ctx, *args),
        Command::Login {
            destination,
            no_browser,
            timeout,
        } => commands::accounts::login(&ctx, &destination, no_browser, timeout),
        Command::Accounts => commands::accounts::accounts(&ctx),
        Command::Open { no_browser } => commands::accounts::open(&ctx, no_browser),
        Command::Completions { .. } | Command::Man { .. } | Command::Doctor { .. } => {
            unreachable!("answered above")
        }
        Command::Logout { destination } => commands::accounts::logout(&ctx, &destination),
        Command::List { all, posts } => commands::list::list(&ctx, all, posts),
        Command::Show { id } => commands::show::run(&ctx, id),
        Command::Edit {
            id,
            title,
            caption,
            privacy,
        } => commands::show::edit(
            &ctx,
            upq_proto::EditRequest {
                id,
                title,
                caption,
                privacy,
            },
        ),
        Command::Pause(selection) => commands::batch::run(&ctx, Action::Pause, selection.into()),
        Command::Resume { selection, now } => {
            let mut selection: upq_proto::Selection = selection.into();
            selection.now = now;
            commands::batch::run(&ctx, Action::Resume, selection)
        }
        Command::Cancel(ids) => commands::batch::run(&ctx, Action::Cancel, ids.into()),
        Command::Retry(ids) => commands::batch::run(&ctx, Action::Retry, ids.into()),
        Command::Publish(ids) => commands::batch::run(&ctx, Action::Publish, ids.into()),
        Command::Drafts => commands::list::drafts(&ctx),
        Command::Recover(ids) => commands::batch::run(&ctx, Action::Recover, ids.into()),
        Command::Discard(ids) => commands::batch::run(&ctx, Action::Discard, ids.into()),
        Command::Wait { ids, timeout } => {
            let ids = commands::job_ids_of(&ctx, ids)?;
            commands::wait::run(&ctx, ids, timeout)
        }
        Command::Watch { ids } => {
            let ids = commands::job_ids_of(&ctx, ids)?;
            commands::watch::run(&ctx, ids)
        }
        Command::Status => commands::status::status(&ctx),
        Command::Limit { rate, until } => commands::status::limit(&ctx, rate, until),
    }
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`upqctl list | head -1`) instead of panicking in println!.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // The shells' live completion (`upqctl __complete WHAT`) is answered before clap parses,
    // so that it stays out of the help, the manual pages and the completion scripts.
    if let Some(code) = commands::complete::answer(std::env::args_os(), default_socket) {
        return ExitCode::from(code);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("upqctl: {error:#}");
            ExitCode::from(exit::for_error(&error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_version_names_the_protocol_spoken() {
        assert!(
            VERSION.ends_with(&format!(" (protocol {})", upq_proto::PROTOCOL_VERSION)),
            "{VERSION}"
        );
    }

    /// Every argument of `command` and its subcommands without a one-line help, as `cmd --arg`.
    fn arguments_without_help(command: &mut clap::Command, path: &str) -> Vec<String> {
        command.build();
        let path = format!("{path} {}", command.get_name()).trim().to_string();
        let mut missing: Vec<String> = command
            .get_arguments()
            .filter(|arg| {
                arg.get_help()
                    .map(|help| help.to_string())
                    .is_none_or(|help| help.trim().is_empty() || help.contains('\n'))
            })
            .map(|arg| format!("{path} {}", arg.get_id()))
            .collect();
        for sub in command.get_subcommands_mut() {
            missing.extend(arguments_without_help(sub, &path));
        }
        missing
    }

    #[test]
    fn every_flag_and_argument_has_a_one_line_help() {
        let mut command = Cli::command();
        let missing = arguments_without_help(&mut command, "");
        assert!(
            missing.is_empty(),
            "no help (or more than one line): {missing:?}"
        );
        // Subcommands say what they do too.
        for sub in command.get_subcommands() {
            assert!(
                sub.get_about().is_some(),
                "`{}` has no description",
                sub.get_name()
            );
        }
    }

    #[test]
    fn delay_and_at_conflict() {
        let parsed = Cli::try_parse_from([
            "upqctl",
            "add",
            "a.mp4",
            "--delay",
            "10m",
            "--at",
            "2026-12-01 18:00",
        ]);
        assert!(parsed.is_err());
    }

    #[test]
    fn pause_needs_ids_or_all_but_not_both() {
        assert!(Cli::try_parse_from(["upqctl", "pause"]).is_err());
        assert!(Cli::try_parse_from(["upqctl", "pause", "3", "--all"]).is_err());
        assert!(Cli::try_parse_from(["upqctl", "pause", "--all"]).is_ok());
        assert!(Cli::try_parse_from(["upqctl", "resume", "3", "4"]).is_ok());
        assert!(Cli::try_parse_from(["upqctl", "cancel"]).is_err());
        assert!(Cli::try_parse_from(["upqctl", "cancel", "0"]).is_err());
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli =
            Cli::try_parse_from(["upqctl", "list", "--json", "--socket", "/tmp/s.sock"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.socket, Some(PathBuf::from("/tmp/s.sock")));
    }

    #[test]
    fn colour_is_a_global_choice() {
        let cli = Cli::try_parse_from(["upqctl", "list"]).unwrap();
        assert_eq!(cli.color, render::ColorChoice::Auto);
        let cli = Cli::try_parse_from(["upqctl", "list", "--color", "never"]).unwrap();
        assert_eq!(cli.color, render::ColorChoice::Never);
        let cli = Cli::try_parse_from(["upqctl", "--color=always", "show", "3"]).unwrap();
        assert_eq!(cli.color, render::ColorChoice::Always);
        assert!(Cli::try_parse_from(["upqctl", "list", "--color", "sometimes"]).is_err());
    }

    #[test]
    fn man_names_a_page_or_a_folder() {
        let cli = Cli::try_parse_from(["upqctl", "man"]).unwrap();
        assert!(matches!(cli.command, Command::Man { ref page, dir: None } if page == "upqctl"));
        let cli = Cli::try_parse_from(["upqctl", "man", "upqd"]).unwrap();
        assert!(matches!(cli.command, Command::Man { ref page, .. } if page == "upqd"));
        assert!(Cli::try_parse_from(["upqctl", "man", "upqd", "--dir", "/tmp/m"]).is_err());
    }

    #[test]
    fn negative_priorities_parse() {
        let cli = Cli::try_parse_from(["upqctl", "add", "a.mp4", "--priority", "-5"]).unwrap();
        match cli.command {
            Command::Add(args) => assert_eq!(args.priority, -5),
            other => panic!("parsed as {other:?}"),
        }
    }
}
