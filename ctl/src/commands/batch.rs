//! The multi-id commands: pause, resume, cancel, retry, publish, recover, discard.
//! One line per id (successes on stdout, failures on stderr); `--json` prints the batch items.

use clap::Args;
use upq_proto::{Ids, Request, Selection};

use super::{unique_ids, Ctx};
use crate::exit;
use crate::render::{batch_line, print_json};

/// Job ids, or `--all`.
#[derive(Debug, Args)]
pub struct SelectionArgs {
    /// Job ids, as `upqctl list` shows them
    #[arg(
        required_unless_present = "all",
        conflicts_with = "all",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub ids: Vec<u64>,
    /// Every job, and the queue itself: new jobs stay queued until `resume --all`
    #[arg(long)]
    pub all: bool,
}

/// One or more job ids.
#[derive(Debug, Args)]
pub struct IdsArgs {
    /// Job ids, as `upqctl list` shows them
    #[arg(required = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub ids: Vec<u64>,
}

/// Which jobs a batch command is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub ids: Vec<u64>,
    pub all: bool,
}

impl From<SelectionArgs> for Target {
    fn from(args: SelectionArgs) -> Self {
        Target {
            ids: unique_ids(args.ids),
            all: args.all,
        }
    }
}

impl From<IdsArgs> for Target {
    fn from(args: IdsArgs) -> Self {
        Target {
            ids: unique_ids(args.ids),
            all: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Cancel,
    Retry,
    Publish,
    Recover,
    Discard,
}

impl Action {
    /// What happened to a job, as in "7 paused".
    pub fn verb(self) -> &'static str {
        match self {
            Action::Pause => "paused",
            Action::Resume => "resumed",
            Action::Cancel => "canceled",
            Action::Retry => "retried",
            Action::Publish => "released",
            Action::Recover => "recovered",
            Action::Discard => "discarded",
        }
    }

    /// Whether the job's new state is worth showing after the verb.
    fn shows_state(self) -> bool {
        self != Action::Discard
    }

    pub fn request(self, target: Target) -> Request {
        let selection = Selection {
            ids: target.ids.clone(),
            all: target.all,
        };
        let ids = Ids { ids: target.ids };
        match self {
            Action::Pause => Request::Pause(selection),
            Action::Resume => Request::Resume(selection),
            Action::Cancel => Request::Cancel(ids),
            Action::Retry => Request::Retry(ids),
            Action::Publish => Request::Publish(ids),
            Action::Recover => Request::Recover(ids),
            Action::Discard => Request::Discard(ids),
        }
    }
}

pub fn run(ctx: &Ctx, action: Action, target: Target) -> anyhow::Result<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use upq_proto::encode_line;

    #[test]
    fn requests_carry_the_ids() {
        let target = Target {
            ids: vec![3, 4],
            all: false,
        };
        assert_eq!(
            Action::Cancel.request(target.clone()),
            Request::Cancel(Ids { ids: vec![3, 4] })
        );
        let everything = Target {
            ids: vec![],
            all: true,
        };
        let line = encode_line(&upq_proto::RequestEnvelope {
            id: 5,
            request: Action::Pause.request(everything),
        });
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"id\":5,\"method\":\"pause\",\"params\":{\"ids\":[],\"all\":true}}\n"
        );
    }
}
