//! The batch actions (pause, resume, cancel, retry, publish, recover, discard) and the
//! request each makes of a [`Selection`]. Vocabulary under both transports; no I/O.

use upq_proto::{Ids, Request, Selection};

/// A batch action is one of the user commands.
pub use upq_proto::Command as Action;

/// What upqctl says and asks for each action.
pub trait Batch {
    /// What happened to a job, as in "7 paused".
    fn verb(self) -> &'static str;
    /// Whether the job's new state is worth showing after the verb.
    fn shows_state(self) -> bool;
    /// The socket request; only pause and resume know `--all`, the others take the ids.
    fn request(self, selection: Selection) -> Request;
}

impl Batch for Action {
    fn verb(self) -> &'static str {
        match self {
            // The job is let go to its commit: "published" would claim too much.
            Action::Publish => "released",
            other => other.participle(),
        }
    }

    fn shows_state(self) -> bool {
        self != Action::Discard
    }

    fn request(self, selection: Selection) -> Request {
        match self {
            Action::Pause => Request::Pause(selection),
            Action::Resume => Request::Resume(selection),
            Action::Cancel => Request::Cancel(ids(selection)),
            Action::Retry => Request::Retry(ids(selection)),
            Action::Publish => Request::Publish(ids(selection)),
            Action::Recover => Request::Recover(ids(selection)),
            Action::Discard => Request::Discard(ids(selection)),
        }
    }
}

/// The jobs and posts of a selection, for the commands that take no `--all`.
fn ids(selection: Selection) -> Ids {
    Ids {
        ids: selection.ids,
        posts: selection.posts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upq_proto::encode_line;

    #[test]
    fn requests_carry_the_ids() {
        let target = Selection {
            ids: vec![3, 4],
            posts: vec![upq_proto::PostId(2)],
            all: false,
            now: false,
        };
        assert_eq!(
            Action::Cancel.request(target.clone()),
            Request::Cancel(Ids {
                ids: vec![3, 4],
                posts: vec![upq_proto::PostId(2)]
            })
        );
        let everything = Selection {
            ids: vec![],
            posts: vec![],
            all: true,
            now: false,
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
