//! One module per subcommand (or small group); each turns its arguments into requests
//! and the replies into output. Connection details live in `client`, formatting in `render`.

pub mod add;
pub mod batch;
pub mod list;
pub mod show;
pub mod status;
pub mod wait;
pub mod watch;

use std::path::PathBuf;

use upq_proto::Request;

use crate::client::{Answer, Client, ClientError};

/// What every command needs: where the daemon is and how to print.
#[derive(Debug)]
pub struct Ctx {
    pub socket: PathBuf,
    pub json: bool,
}

impl Ctx {
    pub fn connect(&self) -> Result<Client, ClientError> {
        Client::connect(&self.socket)
    }

    /// One request on a fresh connection.
    pub fn call(&self, request: Request) -> Result<Answer, ClientError> {
        self.connect()?.call(request)
    }
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
    fn repeated_ids_are_dropped() {
        assert_eq!(unique_ids(vec![3, 1, 3, 2, 1]), vec![3, 1, 2]);
        assert!(unique_ids(vec![]).is_empty());
    }
}
