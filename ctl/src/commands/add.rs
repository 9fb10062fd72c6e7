//! `upqctl add`: checks the file locally, then queues it.
//! Refuses missing, directory and unreadable files before the daemon sees them.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use upq_proto::{AddRequest, Metadata};

use super::Ctx;
use crate::exit;
use crate::parse::{duration_to_ms, parse_at, parse_duration, parse_meta};
use crate::render::print_json;

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The video file to upload
    pub file: PathBuf,
    /// Destination name from the config [default: the daemon's default]
    #[arg(long, value_name = "DEST")]
    pub to: Option<String>,
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

fn request(args: AddArgs, file: String) -> AddRequest {
    AddRequest {
        file,
        destination: args.to,
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
    }
}

pub fn run(ctx: &Ctx, args: AddArgs) -> anyhow::Result<u8> {
    let file = checked_file(&args.file)?;
    let (job, data) = ctx.backend.add(request(args, file))?;
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
    fn arguments_become_the_request() {
        let args = AddArgs {
            file: PathBuf::from("a.mp4"),
            to: Some("vimeo".into()),
            title: Some("Trip".into()),
            caption: None,
            privacy: Some("private".into()),
            meta: vec![("category".into(), "travel".into())],
            hold: true,
            delay: Some(Duration::from_secs(600)),
            at: None,
            priority: -2,
        };
        let sent = request(args, "/v/a.mp4".into());
        assert_eq!(sent.file, "/v/a.mp4");
        assert_eq!(sent.destination.as_deref(), Some("vimeo"));
        assert_eq!(sent.metadata.title.as_deref(), Some("Trip"));
        assert_eq!(sent.metadata.extra["category"], "travel");
        assert!(sent.hold);
        assert_eq!(sent.delay_ms, Some(600_000));
        assert_eq!(sent.priority, -2);
    }
}
