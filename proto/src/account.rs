//! The public view of a destination's account, as `accounts` lists it. It never carries a
//! token: who signed in, what was granted, when things expire, and where the tokens are kept.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One destination's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub destination: String,
    /// The platform ("TikTok", "Google").
    pub provider: String,
    /// `signed_in`, `signin_required`, `signed_out`, or `manual` (a configured token).
    pub state: String,
    /// The platform's id for the person (TikTok's `open_id`).
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Needed by the destination but not granted.
    #[serde(default)]
    pub missing_scopes: Vec<String>,
    #[serde(default)]
    pub access_expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub refresh_expires_at: Option<DateTime<Utc>>,
    /// `secret_service`, `file`, or `config` for a configured token.
    pub store: String,
    /// What to do, when a person has to act.
    #[serde(default)]
    pub message: Option<String>,
}

/// The end of a sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResult {
    pub destination: String,
    pub ok: bool,
    /// Nobody finished the sign-in within its time.
    #[serde(default)]
    pub timed_out: bool,
    pub message: String,
}
