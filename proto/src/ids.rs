//! Ids that more than one view names: a post's id, which its jobs carry and the post
//! view is keyed by.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A post's id: a positive number, written with a leading `p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PostId(pub u64);

impl fmt::Display for PostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

impl FromStr for PostId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix('p')
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|&n| n > 0)
            .map(PostId)
            .ok_or_else(|| format!("'{s}' is not a post id (p1, p2, …)"))
    }
}

impl Serialize for PostId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PostId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
