//! Who may see a post: the privacy levels a user can ask for, by their API names or plain words.
//! A typed value the config deserializes and the destinations read; it knows no destination's requests.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A post's audience, in TikTok's words (the only destination with privacy levels today).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privacy {
    PublicToEveryone,
    MutualFollowFriends,
    FollowerOfCreator,
    SelfOnly,
}

impl Privacy {
    pub const ALL: [Privacy; 4] = [
        Privacy::PublicToEveryone,
        Privacy::MutualFollowFriends,
        Privacy::FollowerOfCreator,
        Privacy::SelfOnly,
    ];

    /// The level for what a user typed: the API's names in any case, or
    /// `public`, `friends`, `followers`, `private`.
    pub fn parse(text: &str) -> Option<Privacy> {
        let upper = text.trim().to_ascii_uppercase().replace(['-', ' '], "_");
        if let Some(level) = Privacy::ALL.into_iter().find(|l| l.api_name() == upper) {
            return Some(level);
        }
        match upper.as_str() {
            "PUBLIC" | "EVERYONE" => Some(Privacy::PublicToEveryone),
            "FRIENDS" | "MUTUAL" | "MUTUAL_FRIENDS" => Some(Privacy::MutualFollowFriends),
            "FOLLOWERS" => Some(Privacy::FollowerOfCreator),
            "PRIVATE" | "SELF" | "ONLY_ME" => Some(Privacy::SelfOnly),
            _ => None,
        }
    }

    /// Like [`Privacy::parse`], with the message that lists the levels when the text is none.
    pub fn parse_or_explain(text: &str) -> Result<Privacy, String> {
        Privacy::parse(text).ok_or_else(|| {
            format!(
                "'{text}' is not a TikTok privacy level \
                 (PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, FOLLOWER_OF_CREATOR, SELF_ONLY)"
            )
        })
    }

    /// The name the API sends and expects (`privacy_level`, `privacy_level_options`).
    pub fn api_name(self) -> &'static str {
        match self {
            Privacy::PublicToEveryone => "PUBLIC_TO_EVERYONE",
            Privacy::MutualFollowFriends => "MUTUAL_FOLLOW_FRIENDS",
            Privacy::FollowerOfCreator => "FOLLOWER_OF_CREATOR",
            Privacy::SelfOnly => "SELF_ONLY",
        }
    }
}

impl fmt::Display for Privacy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.api_name())
    }
}

impl<'de> Deserialize<'de> for Privacy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Privacy::parse_or_explain(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_plain_words() {
        let level = |text| Privacy::parse(text).map(Privacy::api_name);
        assert_eq!(level("SELF_ONLY"), Some("SELF_ONLY"));
        assert_eq!(level("self_only"), Some("SELF_ONLY"));
        assert_eq!(level("private"), Some("SELF_ONLY"));
        assert_eq!(level("public"), Some("PUBLIC_TO_EVERYONE"));
        assert_eq!(level("friends"), Some("MUTUAL_FOLLOW_FRIENDS"));
        assert_eq!(level("followers"), Some("FOLLOWER_OF_CREATOR"));
        assert_eq!(level("unlisted"), None);
    }

    #[test]
    fn the_config_refuses_an_unknown_level_when_it_parses() {
        #[derive(Deserialize)]
        struct Doc {
            privacy: Privacy,
        }
        let err = toml::from_str::<Doc>("privacy = \"unlisted\"")
            .err()
            .expect("unlisted is no level")
            .to_string();
        assert!(
            err.contains("'unlisted' is not a TikTok privacy level"),
            "{err}"
        );
        let doc: Doc = toml::from_str("privacy = \"followers\"").unwrap();
        assert_eq!(doc.privacy, Privacy::FollowerOfCreator);
    }
}
