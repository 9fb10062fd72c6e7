//! A signed-in account's tokens and what is known about it, as stored.
//!
//! Token strings live in `Secret`, whose `Debug` and `Display` never show them; the only way
//! to the text is `expose()`, which the HTTP calls and the stores use.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A token. Serializes as its text (for the stores); prints as `<redacted>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Overwrite the text before the allocator reuses it.
        // SAFETY: zero bytes are valid UTF-8.
        unsafe { self.0.as_mut_vec() }.fill(0);
    }
}

/// One account's tokens, as the token endpoint last gave them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: Secret,
    pub access_expires_at: Option<DateTime<Utc>>,
    /// Absent when the provider gave none (then the account lasts as long as the access token).
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    #[serde(default)]
    pub refresh_expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The provider's id for the person (TikTok's `open_id`).
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// When the access token was issued: with its expiry, how long it lives.
    pub obtained_at: DateTime<Utc>,
}

impl TokenSet {
    /// True when the access token should be refreshed now: it has expired or will within the
    /// margin, a tenth of its life capped at five minutes (so a two-hour token is refreshed
    /// five minutes early and a two-second test token 0.2 s early).
    pub fn access_due(&self, now: DateTime<Utc>) -> bool {
        let Some(expires) = self.access_expires_at else {
            return false;
        };
        let life = expires - self.obtained_at;
        let margin = (life / 10).min(chrono::Duration::minutes(5));
        now >= expires - margin
    }

    /// True when the refresh token is known to have expired.
    pub fn refresh_expired(&self, now: DateTime<Utc>) -> bool {
        self.refresh_expires_at.is_some_and(|at| now >= at)
    }

    /// The scopes of `needed` that were not granted.
    pub fn missing<'a>(&self, needed: &[&'a str]) -> Vec<&'a str> {
        needed
            .iter()
            .copied()
            .filter(|scope| !self.scopes.iter().any(|granted| granted == scope))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(obtained: DateTime<Utc>, life_secs: i64) -> TokenSet {
        TokenSet {
            access_token: Secret::new("act.secret-value"),
            access_expires_at: Some(obtained + chrono::Duration::seconds(life_secs)),
            refresh_token: Some(Secret::new("rft.secret-value")),
            refresh_expires_at: None,
            scopes: vec!["video.publish".into()],
            account_id: Some("open-1".into()),
            display_name: None,
            obtained_at: obtained,
        }
    }

    #[test]
    fn tokens_never_print() {
        let tokens = set(Utc::now(), 60);
        let printed = format!("{tokens:?}");
        assert!(!printed.contains("secret-value"), "{printed}");
        assert!(printed.contains("<redacted>"));
        // The stores need the text.
        let json = serde_json::to_string(&tokens).unwrap();
        assert!(json.contains("act.secret-value"));
    }

    #[test]
    fn refresh_is_due_a_tenth_of_the_life_early_capped_at_five_minutes() {
        let t0 = Utc::now();
        let two_hours = set(t0, 7200);
        assert!(!two_hours.access_due(t0 + chrono::Duration::seconds(7200 - 301)));
        assert!(two_hours.access_due(t0 + chrono::Duration::seconds(7200 - 300)));
        let short = set(t0, 2);
        assert!(!short.access_due(t0 + chrono::Duration::milliseconds(1700)));
        assert!(short.access_due(t0 + chrono::Duration::milliseconds(1800)));
    }

    #[test]
    fn missing_scopes_are_named() {
        let tokens = set(Utc::now(), 60);
        assert_eq!(
            tokens.missing(&["video.publish", "video.upload"]),
            ["video.upload"]
        );
    }
}
