//! One module per subcommand (or small group); each turns its arguments into requests
//! and the replies into output. Transports live in `backend` (`client`, `bus`), formatting in `render`.

pub mod accounts;
pub mod add;
pub mod batch;
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
