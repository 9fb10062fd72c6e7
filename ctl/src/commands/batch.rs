//! The multi-id commands: pause, resume, cancel, retry, publish, recover, discard.
//! One line per id (successes on stdout, failures on stderr); `--json` prints the batch items.

use clap::Args;
use upq_proto::Selection;

use super::{split_targets, Ctx, Target};
use crate::action::{Action, Batch};
use crate::exit;
use crate::render::{batch_line, print_json};

/// Job ids, or `--all`.
#[derive(Debug, Args)]
pub struct SelectionArgs {
    /// Job ids, as `upqctl list` shows them, or post ids (p1) for all of a post's jobs
    #[arg(
        required_unless_present = "all",
        conflicts_with = "all",
        value_name = "ID",
        value_parser = super::parse_target
    )]
    pub ids: Vec<Target>,
    /// Every job, and the queue itself: new jobs stay queued until `resume --all`
    #[arg(long)]
    pub all: bool,
}

/// One or more job ids.
#[derive(Debug, Args)]
pub struct IdsArgs {
    /// Job ids, as `upqctl list` shows them, or post ids (p1) for all of a post's jobs
    #[arg(required = true, value_name = "ID", value_parser = super::parse_target)]
    pub ids: Vec<Target>,
}

impl From<SelectionArgs> for Selection {
    fn from(args: SelectionArgs) -> Self {
        let (ids, posts) = split_targets(args.ids);
        Selection {
            ids,
            posts,
            all: args.all,
            now: false,
        }
    }
}

impl From<IdsArgs> for Selection {
    fn from(args: IdsArgs) -> Self {
        let (ids, posts) = split_targets(args.ids);
        Selection {
            ids,
            posts,
            all: false,
            now: false,
        }
    }
}

pub fn run(ctx: &Ctx, action: Action, target: Selection) -> anyhow::Result<u8> {
    let all = target.all;
    let (items, data) = ctx.backend.batch(action, target)?;
    if ctx.json {
        print_json(&data)?;
    } else {
        for item in &items {
            match batch_line(item, action.verb(), action.shows_state()) {
                Ok(line) => println!("{line}"),
                Err(line) => eprintln!("{line}"),
            }
        }
        match (action, all) {
            (Action::Pause, true) => {
                println!("queue paused: new jobs stay queued until `upqctl resume --all`")
            }
            (Action::Resume, true) => println!("queue resumed"),
            _ => {}
        }
    }
    Ok(exit::for_batch(&items))
}
