//! One module per subcommand (or small group); each turns its arguments into requests
//! and the replies into output. Transports live in `backend` (`client`, `bus`), formatting in `render`.

pub mod accounts;
pub mod add;
pub mod batch;
pub mod complete;
pub mod docs;
pub mod doctor;
pub mod list;
pub mod show;
pub mod status;
pub mod wait;
pub mod watch;

use crate::backend::Backend;

/// What every command needs: how to reach the daemon and how to print.
pub struct Ctx {
    pub backend: Backend,
    pub json: bool,
    /// Whether to colour text output (`--color`, `NO_COLOR`); always off with `--json`.
    pub paint: crate::render::Paint,
}

/// What a command names: a job, or a post (all of its jobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Job(u64),
    Post(upq_proto::PostId),
}

/// A job id (`7`) or a post id (`p2`).
pub fn parse_target(text: &str) -> Result<Target, String> {
    if text.starts_with('p') {
        return text.parse().map(Target::Post);
    }
    match text.parse::<u64>() {
        Ok(id) if id > 0 => Ok(Target::Job(id)),
        _ => Err(format!(
            "'{text}' is neither a job id (1, 2, …) nor a post id (p1, p2, …)"
        )),
    }
}

/// The job ids and the post ids named, each without repeats, in the order given.
pub fn split_targets(targets: Vec<Target>) -> (Vec<u64>, Vec<upq_proto::PostId>) {
    let mut ids = Vec::new();
    let mut posts = Vec::new();
    for target in targets {
        match target {
            Target::Job(id) => ids.push(id),
            Target::Post(post) if !posts.contains(&post) => posts.push(post),
            Target::Post(_) => {}
        }
    }
    (unique_ids(ids), posts)
}

/// The jobs named, and every job of the posts named, without repeats, in the order given.
pub fn job_ids_of(ctx: &Ctx, targets: Vec<Target>) -> anyhow::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for target in targets {
        match target {
            Target::Job(id) => ids.push(id),
            Target::Post(post) => {
                let (view, _) = ctx.backend.show_post(post)?;
                ids.extend(view.jobs.iter().map(|job| job.id));
            }
        }
    }
    Ok(unique_ids(ids))
}

/// `ids` without repeats, in the order given.
pub fn unique_ids(ids: Vec<u64>) -> Vec<u64> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_jobs_or_posts() {
        assert_eq!(parse_target("7"), Ok(Target::Job(7)));
        assert_eq!(parse_target("p2"), Ok(Target::Post(upq_proto::PostId(2))));
        for bad in ["0", "p0", "x", "-1", "p"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
        let (ids, posts) = split_targets(vec![
            Target::Job(3),
            Target::Post(upq_proto::PostId(1)),
            Target::Job(3),
            Target::Post(upq_proto::PostId(1)),
        ]);
        assert_eq!((ids, posts), (vec![3], vec![upq_proto::PostId(1)]));
    }

    #[test]
    fn repeated_ids_are_dropped() {
        assert_eq!(unique_ids(vec![3, 1, 3, 2, 1]), vec![3, 1, 2]);
        assert!(unique_ids(vec![]).is_empty());
    }
}
