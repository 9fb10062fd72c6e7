//! Where a platform destination's access token comes from: a token the user manages
//! (`access_token`, or `access_token_file` read again before every call so a token refreshed by
//! another tool is used at once), or an account upq signs in and refreshes itself.
//!
//! Shared by the destinations that call an API with `Authorization: Bearer`.

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::header::HeaderValue;

use super::{DestError, ErrorClass};
use crate::accounts::tokens::Secret;
use crate::accounts::{Account, AuthError};

pub enum Bearer {
    /// `access_token` or `access_token_file`.
    Manual {
        token: Option<String>,
        file: Option<PathBuf>,
    },
    /// `client_key` / `client_id`: the account's token, refreshed when due.
    Account(Arc<Account>),
}

impl Bearer {
    pub fn account(&self) -> Option<&Arc<Account>> {
        match self {
            Bearer::Account(account) => Some(account),
            Bearer::Manual { .. } => None,
        }
    }

    /// The token for the next call. A file that is missing or empty for a moment (a refresher
    /// rewriting it) is a transient error.
    pub async fn token(&self, name: &str) -> Result<Secret, DestError> {
        let (token, file) = match self {
            Bearer::Account(account) => return account.access_token().await.map_err(auth_error),
            Bearer::Manual { token, file } => (token, file),
        };
        let text = match (token, file) {
            (Some(token), _) => token.trim().to_string(),
            (None, Some(path)) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| {
                    DestError::transient(
                        "token",
                        format!(
                            "destination '{name}': cannot read the access token file {}: {e}",
                            path.display()
                        ),
                    )
                })?
                .trim()
                .to_string(),
            (None, None) => String::new(),
        };
        if text.is_empty() {
            return Err(DestError::transient(
                "token",
                format!(
                    "destination '{name}': the access token in {} is empty",
                    self.origin()
                ),
            ));
        }
        Ok(Secret::new(text))
    }

    /// After the platform refused `token`: a fresh one from the account (refreshed once, or
    /// taken from a caller that already did), or `None` for a token the user manages.
    pub async fn after_refusal(&self, token: &Secret) -> Result<Option<Secret>, DestError> {
        match self {
            Bearer::Account(account) => account
                .after_rejection(token)
                .await
                .map(Some)
                .map_err(auth_error),
            Bearer::Manual { .. } => Ok(None),
        }
    }

    /// Where the token comes from, for messages.
    pub fn origin(&self) -> String {
        match self {
            Bearer::Account(account) => format!(
                "the account (`upqctl accounts`, `upqctl login {}`)",
                account.destination()
            ),
            Bearer::Manual {
                file: Some(path), ..
            } => path.display().to_string(),
            Bearer::Manual { .. } => "the access_token setting".to_string(),
        }
    }
}

/// `Authorization: Bearer <token>`, marked sensitive so it never shows in logs.
pub fn header(name: &str, token: &Secret) -> Result<HeaderValue, DestError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        DestError::permanent(
            "auth",
            format!("destination '{name}': the access token is not a valid header value"),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// What a missing token means for the job: wait for a person, or try again later.
pub fn auth_error(e: AuthError) -> DestError {
    match e {
        AuthError::SigninRequired(message) => DestError {
            class: ErrorClass::SigninRequired,
            kind: "signin_required",
            message,
        },
        AuthError::Transient(message) => DestError::transient("token", message),
    }
}
