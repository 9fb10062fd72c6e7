//! `upqctl add`: checks each file locally, then queues them.
//! Refuses missing, directory and unreadable files before the daemon sees them.
//!
//! One file is one `add`; several (or `-`, paths on stdin) are one `add_many`, which the
//! daemon stores in one transaction. Each file is queued or refused alone: the ids of
//! those queued go to stdout in the order given, each refusal to stderr, and the exit
//! code is 1 when any was refused.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use upq_proto::{
    AddManyRequest, AddOptions, AddPostRequest, AddRequest, AddedItem, ErrorBody, ErrorCode,
    Metadata, Overrides,
};

use super::Ctx;
use crate::exit;
use crate::parse::{duration_to_ms, parse_at, parse_duration, parse_meta};
use crate::render::print_json;

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The video files to upload; `-` reads paths from stdin, one a line
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Destination name from the config [default: the daemon's default]; give it more
    /// than once to post the file to several places at once (a post, id p1, p2, …)
    #[arg(long, value_name = "DEST")]
    pub to: Vec<String>,
    /// In a post: the title for one destination
    #[arg(long = "title-for", value_name = "DEST=TEXT", value_parser = parse_meta)]
    pub title_for: Vec<(String, String)>,
    /// In a post: the caption for one destination
    #[arg(long = "caption-for", value_name = "DEST=TEXT", value_parser = parse_meta)]
    pub caption_for: Vec<(String, String)>,
    /// In a post: a destination-specific field for one destination
    #[arg(long = "meta-for", num_args = 2, value_names = ["DEST", "KEY=VALUE"])]
    pub meta_for: Vec<String>,
    /// In a post: a destination that fails before the release keeps the others held
    #[arg(long = "all-or-nothing")]
    pub all_or_nothing: bool,
    /// The video's title, as the destination shows it
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    /// The video's description or post text, as the destination shows it
    #[arg(long, value_name = "TEXT")]
    pub caption: Option<String>,
    /// Who may see it, e.g. public, unlisted, private (the destination decides what it accepts)
    #[arg(long)]
    pub privacy: Option<String>,
    /// A destination-specific field; repeat for more
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_meta)]
    pub meta: Vec<(String, String)>,
    /// Upload everything but hold the commit until `upqctl publish ID`
    #[arg(long)]
    pub hold: bool,
    /// Commit no earlier than this long after queueing (e.g. 10m)
    #[arg(long, value_name = "DUR", value_parser = parse_duration, conflicts_with = "at")]
    pub delay: Option<Duration>,
    /// Commit no earlier than this time (RFC 3339, or "YYYY-MM-DD HH:MM" local)
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    pub at: Option<DateTime<Utc>>,
    /// Queue order: a higher priority starts first (negative numbers allowed)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub priority: i32,
    /// Upload whatever the upload policies say (hours, metered connection, battery)
    #[arg(long)]
    pub now: bool,
}

/// The absolute path of a regular file this user can read, as the daemon wants it.
pub fn checked_file(path: &Path) -> anyhow::Result<String> {
    let shown = path.display();
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            bail!("{shown}: no such file")
        }
        Err(error) => bail!("{shown}: {error}"),
    };
    if metadata.is_dir() {
        bail!("{shown} is a directory; give a video file");
    }
    if !metadata.is_file() {
        bail!("{shown} is not a regular file");
    }
    File::open(path).map_err(|error| anyhow!("{shown} cannot be read: {error}"))?;
    let absolute = fs::canonicalize(path).map_err(|error| anyhow!("{shown}: {error}"))?;
    absolute
        .into_os_string()
        .into_string()
        .map_err(|_| anyhow!("{shown}: the path is not valid UTF-8; rename the file"))
}

fn options(args: AddArgs) -> AddOptions {
    AddOptions {
        destination: args.to.into_iter().next(),
        metadata: Metadata {
            title: args.title,
            caption: args.caption,
            privacy: args.privacy,
            extra: args.meta.into_iter().collect::<BTreeMap<_, _>>(),
        },
        hold: args.hold,
        delay_ms: args.delay.map(duration_to_ms),
        at: args.at,
        priority: args.priority,
        now: args.now,
    }
}

/// The paths named, with each `-` replaced by the lines of stdin (blank ones skipped).
fn named_paths(files: &[PathBuf], stdin: impl BufRead) -> anyhow::Result<Vec<PathBuf>> {
    let mut stdin = Some(stdin);
    let mut paths = Vec::new();
    for file in files {
        if file.as_os_str() != "-" {
            paths.push(file.clone());
            continue;
        }
        let Some(lines) = stdin.take() else {
            bail!("'-' (paths on stdin) may be given once");
        };
        for line in lines.lines() {
            let line = line.map_err(|e| anyhow!("cannot read paths from stdin: {e}"))?;
            if !line.trim().is_empty() {
                paths.push(PathBuf::from(line));
            }
        }
    }
    Ok(paths)
}

pub fn run(ctx: &Ctx, args: AddArgs) -> anyhow::Result<u8> {
    let for_one = !args.title_for.is_empty()
        || !args.caption_for.is_empty()
        || !args.meta_for.is_empty()
        || args.all_or_nothing;
    if args.to.len() > 1 {
        return run_post(ctx, args);
    }
    if for_one {
        bail!(
            "--title-for, --caption-for, --meta-for and --all-or-nothing are for posts: give --to \
             once for each destination"
        );
    }
    if let [one] = args.files.as_slice() {
        if one.as_os_str() != "-" {
            let file = checked_file(one)?;
            return run_one(
                ctx,
                AddRequest {
                    file,
                    options: options(args),
                },
            );
        }
    }
    let paths = named_paths(&args.files, io::stdin().lock())?;
    if paths.is_empty() {
        bail!("no files to add (stdin named none)");
    }
    run_many(ctx, paths, options(args))
}

fn run_many(ctx: &Ctx, paths: Vec<PathBuf>, options: AddOptions) -> anyhow::Result<u8> {
    // Files refused here never reach the daemon; their place in the answer is kept.
    let checked: Vec<(String, Result<String, String>)> = paths
        .iter()
        .map(|path| {
            let shown = path.display().to_string();
            (shown, checked_file(path).map_err(|e| e.to_string()))
        })
        .collect();
    let files: Vec<String> = checked
        .iter()
        .filter_map(|(_, file)| file.as_ref().ok().cloned())
        .collect();
    let mut answered = Vec::with_capacity(files.len());
    for batch in batches(files) {
        let request = AddManyRequest {
            files: batch,
            options: options.clone(),
        };
        answered.extend(ctx.backend.add_many(request)?.0);
    }
    let mut answered = answered.into_iter();
    let items: Vec<AddedItem> = checked
        .into_iter()
        .map(|(shown, file)| match file {
            Ok(_) => answered
                .next()
                .ok_or_else(|| anyhow!("the daemon answered fewer files than it was sent")),
            Err(message) => Ok(AddedItem {
                file: shown,
                job: None,
                error: Some(ErrorBody {
                    code: ErrorCode::File,
                    message,
                }),
            }),
        })
        .collect::<anyhow::Result<_>>()?;
    for item in &items {
        if let Some(warning) = item.job.as_ref().and_then(|job| job.warning.as_ref()) {
            eprintln!("warning: {}: {warning}", item.file);
        }
    }
    if ctx.json {
        print_json(&serde_json::to_value(&items)?)?;
    }
    let mut refused = false;
    for item in &items {
        match (&item.job, &item.error) {
            (Some(job), _) if !ctx.json => println!("{}", job.id),
            (None, Some(error)) => {
                refused = true;
                if !ctx.json {
                    eprintln!("upqctl: {}", error.message);
                }
            }
            _ => {}
        }
    }
    Ok(if refused { exit::FAILED } else { exit::SUCCESS })
}

/// Paths in requests that stay well under the protocol's line cap: a thousand files or
/// 256 KiB of paths, whichever comes first. Each request is one transaction.
fn batches(files: Vec<String>) -> Vec<Vec<String>> {
    const MAX_FILES: usize = 1000;
    const MAX_BYTES: usize = 256 * 1024;
    let mut batches: Vec<Vec<String>> = Vec::new();
    let mut bytes = 0;
    for file in files {
        let full = batches
            .last()
            .is_none_or(|batch| batch.len() >= MAX_FILES || bytes + file.len() > MAX_BYTES);
        if full {
            batches.push(Vec::new());
            bytes = 0;
        }
        bytes += file.len() + 4;
        batches
            .last_mut()
            .expect("a batch was just made")
            .push(file);
    }
    batches
}

/// The request for a post: one file, several destinations, what differs for each.
fn post_request(args: AddArgs) -> anyhow::Result<AddPostRequest> {
    let [file] = args.files.as_slice() else {
        bail!("a post is one file sent to several destinations: give one file with several --to");
    };
    if file.as_os_str() == "-" {
        bail!("a post is one file: '-' (paths on stdin) cannot be posted");
    }
    let file = checked_file(file)?;
    let mut overrides: Overrides = BTreeMap::new();
    let known = |destination: &str| -> anyhow::Result<String> {
        if !args.to.iter().any(|to| to == destination) {
            bail!(
                "'{destination}' is not one of the post's destinations ({})",
                args.to.join(", ")
            );
        }
        Ok(destination.to_string())
    };
    for (destination, title) in &args.title_for {
        overrides.entry(known(destination)?).or_default().title = Some(title.clone());
    }
    for (destination, caption) in &args.caption_for {
        overrides.entry(known(destination)?).or_default().caption = Some(caption.clone());
    }
    for pair in args.meta_for.chunks(2) {
        let [destination, field] = pair else {
            bail!("--meta-for takes a destination and KEY=VALUE");
        };
        let (key, value) =
            parse_meta(field).map_err(|e| anyhow!("--meta-for {destination}: {e}"))?;
        overrides
            .entry(known(destination)?)
            .or_default()
            .extra
            .insert(key, value);
    }
    let destinations = args.to.clone();
    let all_or_nothing = args.all_or_nothing;
    Ok(AddPostRequest {
        file,
        destinations,
        options: AddOptions {
            destination: None,
            ..options(args)
        },
        overrides,
        all_or_nothing,
    })
}

fn run_post(ctx: &Ctx, args: AddArgs) -> anyhow::Result<u8> {
    let (post, data) = ctx.backend.add_post(post_request(args)?)?;
    for job in &post.jobs {
        if let Some(warning) = &job.warning {
            eprintln!("warning: {}: {warning}", job.destination);
        }
    }
    if ctx.json {
        print_json(&data)?;
    } else {
        println!("{}", post.id);
    }
    Ok(exit::SUCCESS)
}

fn run_one(ctx: &Ctx, request: AddRequest) -> anyhow::Result<u8> {
    let (job, data) = ctx.backend.add(request)?;
    // Warnings go to stderr in both forms, so stdout stays the id or the JSON document.
    if let Some(warning) = &job.warning {
        eprintln!("warning: {warning}");
    }
    if ctx.json {
        print_json(&data)?;
    } else {
        println!("{}", job.id);
    }
    Ok(exit::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_readable_file_becomes_an_absolute_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.mp4");
        File::create(&path).unwrap().write_all(b"video").unwrap();
        let checked = checked_file(&path).unwrap();
        assert!(Path::new(&checked).is_absolute());
        assert!(checked.ends_with("/clip.mp4"), "{checked}");
    }

    #[test]
    fn missing_files_and_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = checked_file(&dir.path().join("nope.mp4")).unwrap_err();
        assert!(
            missing.to_string().ends_with("nope.mp4: no such file"),
            "{missing}"
        );
        let directory = checked_file(dir.path()).unwrap_err();
        assert!(
            directory.to_string().contains("is a directory"),
            "{directory}"
        );
        let device = checked_file(Path::new("/dev/null")).unwrap_err();
        assert!(
            device.to_string().contains("not a regular file"),
            "{device}"
        );
    }

    #[test]
    fn a_dash_reads_paths_from_stdin_in_place() {
        let files = [
            PathBuf::from("first.mp4"),
            PathBuf::from("-"),
            PathBuf::from("last.mp4"),
        ];
        let stdin = io::Cursor::new("a.mp4\n\n  \nsub dir/b c.mp4\n");
        let paths = named_paths(&files, stdin).unwrap();
        let names: Vec<&str> = paths.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(names, ["first.mp4", "a.mp4", "sub dir/b c.mp4", "last.mp4"]);
        let twice = [PathBuf::from("-"), PathBuf::from("-")];
        let error = named_paths(&twice, io::Cursor::new("a.mp4\n")).unwrap_err();
        assert!(error.to_string().contains("once"), "{error}");
    }

    #[test]
    fn many_files_go_in_requests_under_the_line_cap() {
        let files: Vec<String> = (0..2500).map(|i| format!("/v/{i:04}.mp4")).collect();
        let sizes: Vec<usize> = batches(files.clone()).iter().map(Vec::len).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        let long: Vec<String> = (0..300)
            .map(|i| format!("/{}/{i}", "d".repeat(2000)))
            .collect();
        let cut = batches(long.clone());
        assert!(cut.len() > 2, "{} batches", cut.len());
        assert!(cut
            .iter()
            .all(|b| b.iter().map(|f| f.len() + 4).sum::<usize>() <= 256 * 1024));
        assert_eq!(cut.concat(), long, "every path, in order");
    }

    #[test]
    fn arguments_become_the_request() {
        let args = AddArgs {
            files: vec![PathBuf::from("a.mp4")],
            to: vec!["vimeo".into()],
            title: Some("Trip".into()),
            caption: None,
            privacy: Some("private".into()),
            meta: vec![("category".into(), "travel".into())],
            hold: true,
            delay: Some(Duration::from_secs(600)),
            at: None,
            priority: -2,
            now: false,
            title_for: vec![],
            caption_for: vec![],
            meta_for: vec![],
            all_or_nothing: false,
        };
        let sent = options(args);
        assert_eq!(sent.destination.as_deref(), Some("vimeo"));
        assert_eq!(sent.metadata.title.as_deref(), Some("Trip"));
        assert_eq!(sent.metadata.extra["category"], "travel");
        assert!(sent.hold);
        assert_eq!(sent.delay_ms, Some(600_000));
        assert_eq!(sent.priority, -2);
    }
}
