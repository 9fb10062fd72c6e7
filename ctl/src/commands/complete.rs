//! `upqctl __complete WHAT [--socket PATH]`: what the shells' live completion offers (job ids,
//! post ids, drafts, destinations), one a line, from the running daemon within a second.
//! Never fails loudly: an unreachable or slow daemon means no candidates, no message, exit 0.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use upq_proto::{JobView, Reply, Request};

use crate::client::{Client, ClientError};
use crate::exit;

/// The first argument that asks for candidates instead of running a command.
pub const SUBCOMMAND: &str = "__complete";

/// How long a Tab may wait for the daemon.
const PATIENCE: Duration = Duration::from_millis(800);

/// Ids asked for at most: a completion menu longer than this helps nobody.
const MOST: u32 = 500;

/// What the shell asks to complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidates {
    /// Active jobs' ids (`edit`).
    Jobs,
    /// Active jobs' ids and the ids of their posts (`show`, `pause`, `cancel`, `wait`, …).
    Targets,
    /// Drafts' ids (`recover`, `discard`).
    Drafts,
    /// Destination names (`add --to`).
    Destinations,
}

impl Candidates {
    pub const NAMES: [&'static str; 4] = ["jobs", "targets", "drafts", "destinations"];

    fn parse(word: &str) -> Option<Candidates> {
        match word {
            "jobs" => Some(Candidates::Jobs),
            "targets" => Some(Candidates::Targets),
            "drafts" => Some(Candidates::Drafts),
            "destinations" => Some(Candidates::Destinations),
            _ => None,
        }
    }
}

/// What `upqctl __complete …` was asked.
#[derive(Debug, PartialEq, Eq)]
struct Question {
    what: Candidates,
    socket: Option<PathBuf>,
}

/// Reads `__complete WHAT [--socket PATH | --socket=PATH]` after the program's name;
/// `Ok(None)` when the first argument is not `__complete`.
fn question(args: &[OsString]) -> Result<Option<Question>, String> {
    if args.get(1).map(OsString::as_os_str) != Some(SUBCOMMAND.as_ref()) {
        return Ok(None);
    }
    let usage = || {
        format!(
            "usage: upqctl {SUBCOMMAND} {} [--socket PATH]",
            Candidates::NAMES.join("|")
        )
    };
    let what = args
        .get(2)
        .and_then(|word| word.to_str())
        .and_then(Candidates::parse)
        .ok_or_else(usage)?;
    let mut socket = None;
    let mut rest = args[3..].iter();
    while let Some(arg) = rest.next() {
        let text = arg.to_string_lossy();
        if text == "--socket" {
            socket = Some(PathBuf::from(rest.next().ok_or_else(usage)?));
        } else if let Some(path) = text.strip_prefix("--socket=") {
            socket = Some(PathBuf::from(path));
        } else {
            return Err(usage());
        }
    }
    Ok(Some(Question { what, socket }))
}

/// Answers `upqctl __complete …` and returns the exit code, or `None` for any other command
/// line. The socket is `--socket`, else `$UPQ_SOCKET`, else `default_socket()`.
pub fn answer(args: impl Iterator<Item = OsString>, default_socket: fn() -> PathBuf) -> Option<u8> {
    let args: Vec<OsString> = args.collect();
    let question = match question(&args) {
        Ok(None) => return None,
        Ok(Some(question)) => question,
        Err(usage) => {
            eprintln!("upqctl: {usage}");
            return Some(exit::USAGE);
        }
    };
    let socket = question
        .socket
        .or_else(|| {
            std::env::var_os("UPQ_SOCKET")
                .filter(|path| !path.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(default_socket);
    // Whatever went wrong, the shell simply offers nothing.
    if let Ok(words) = candidates(&socket, question.what, Instant::now() + PATIENCE) {
        for word in words {
            println!("{word}");
        }
    }
    Some(exit::SUCCESS)
}

/// The candidates from the daemon at `socket`, asked before `deadline`.
fn candidates(
    socket: &Path,
    what: Candidates,
    deadline: Instant,
) -> Result<Vec<String>, ClientError> {
    let mut client = Client::connect_until(socket, deadline)?;
    let mut ask = |request: Request| -> Result<Reply, ClientError> {
        Ok(client.call_until(request, deadline)?.reply)
    };
    let active = Request::List {
        all: false,
        after: None,
        limit: Some(MOST),
    };
    let drafts = Request::Drafts {
        after: None,
        limit: Some(MOST),
    };
    Ok(
        match (
            what,
            ask(match what {
                Candidates::Jobs | Candidates::Targets => active,
                Candidates::Drafts => drafts,
                Candidates::Destinations => Request::Status,
            })?,
        ) {
            (Candidates::Destinations, Reply::Status(status)) => status.destinations,
            (Candidates::Targets, Reply::Jobs(jobs)) => ids_and_posts(&jobs),
            (_, Reply::Jobs(jobs)) => jobs.iter().map(|job| job.id.to_string()).collect(),
            (_, other) => return Err(crate::client::unexpected("jobs or status", &other)),
        },
    )
}

/// The jobs' ids, then the ids of their posts, each once.
fn ids_and_posts(jobs: &[JobView]) -> Vec<String> {
    let mut words: Vec<String> = jobs.iter().map(|job| job.id.to_string()).collect();
    let mut posts: Vec<String> = Vec::new();
    for post in jobs.iter().filter_map(|job| job.post) {
        let post = post.to_string();
        if !posts.contains(&post) {
            posts.push(post);
        }
    }
    words.extend(posts);
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn only_a_first_argument_of_complete_is_a_question() {
        assert_eq!(question(&args(&["upqctl", "list"])), Ok(None));
        assert_eq!(question(&args(&["upqctl"])), Ok(None));
        assert_eq!(
            question(&args(&["upqctl", "--socket", "/s", "__complete", "jobs"])),
            Ok(None),
            "global flags go after it"
        );
        assert_eq!(
            question(&args(&["upqctl", "__complete", "targets"])),
            Ok(Some(Question {
                what: Candidates::Targets,
                socket: None
            }))
        );
        assert_eq!(
            question(&args(&["upqctl", "__complete", "drafts", "--socket", "/s"])),
            Ok(Some(Question {
                what: Candidates::Drafts,
                socket: Some(PathBuf::from("/s"))
            }))
        );
        assert_eq!(
            question(&args(&[
                "upqctl",
                "__complete",
                "destinations",
                "--socket=/t"
            ]))
            .unwrap()
            .unwrap()
            .socket,
            Some(PathBuf::from("/t"))
        );
        for bad in [
            &["upqctl", "__complete"][..],
            &["upqctl", "__complete", "files"],
            &["upqctl", "__complete", "jobs", "--socket"],
            &["upqctl", "__complete", "jobs", "--json"],
        ] {
            assert!(question(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn targets_are_the_jobs_then_their_posts() {
        let job = |id: u64, post: Option<&str>| -> JobView {
            serde_json::from_value(serde_json::json!({
                "id": id, "file": "/v/a.mp4", "destination": "local", "state": "queued",
                "size": 10, "bytes_sent": 0, "attempts": 0, "last_error": null,
                "next_attempt_at": null, "publish_at": null,
                "created_at": "2026-12-01T11:00:00Z", "updated_at": "2026-12-01T11:00:00Z",
                "metadata": {}, "post": post
            }))
            .unwrap()
        };
        let jobs = [
            job(3, Some("p1")),
            job(4, Some("p1")),
            job(7, None),
            job(9, Some("p2")),
        ];
        assert_eq!(ids_and_posts(&jobs), ["3", "4", "7", "9", "p1", "p2"]);
        assert!(ids_and_posts(&[]).is_empty());
    }

    #[test]
    fn no_daemon_means_no_candidates_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let result = candidates(
            &dir.path().join("none.sock"),
            Candidates::Targets,
            started + PATIENCE,
        );
        assert!(
            matches!(result, Err(ClientError::NotRunning { .. })),
            "{result:?}"
        );
        assert!(started.elapsed() < PATIENCE);
    }
}
