//! Where a platform destination's access token comes from: a token the user manages
//! (`access_token`, or `access_token_file` read again before every call so a token refreshed by
//! another tool is used at once), or an account upq signs in and refreshes itself.
//!
//! Shared by the destinations that call an API with `Authorization: Bearer`.

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::header::HeaderValue;
use reqwest::Url;

use super::{BuildError, DestError, ErrorClass};
use crate::accounts::provider::Provider;
use crate::accounts::tokens::Secret;
use crate::accounts::{Account, Accounts, AuthError, OAuthSettings};
use crate::config::checks::{parse_http_url, parse_redirect_uri};

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

/// The keys every destination that signs in shares (`client_key` or `client_id` and the
/// rest), borrowed from its configuration.
pub struct Keys<'a> {
    pub client_id: Option<&'a String>,
    pub client_secret: &'a Option<String>,
    pub redirect_uri: &'a str,
    pub auth_url: &'a Option<String>,
    pub token_url: &'a Option<String>,
    pub revoke_url: &'a Option<String>,
    pub access_token: &'a Option<String>,
    pub access_token_file: &'a Option<PathBuf>,
}

/// What a platform asks for at sign-in and needs to work.
pub struct Wants {
    pub provider: Provider,
    pub scopes: Vec<String>,
    pub needed: Vec<String>,
    pub identity: Option<(Url, &'static str)>,
}

impl Bearer {
    /// The account of destination `name` when it has a client id, else the configured token.
    pub fn from_keys(
        name: &str,
        keys: Keys<'_>,
        wants: Wants,
        accounts: &Accounts,
    ) -> Result<Bearer, BuildError> {
        let Some(client_id) = keys.client_id else {
            return Ok(Bearer::Manual {
                token: keys.access_token.clone(),
                file: keys.access_token_file.clone(),
            });
        };
        let provider = wants.provider;
        let url = |key: &str, given: &Option<String>, default: &str| {
            parse_http_url(
                format!("destinations.{name}.{key}"),
                given.as_deref().unwrap_or(default),
            )
        };
        parse_redirect_uri(name, keys.redirect_uri)?;
        let settings = OAuthSettings {
            provider,
            client_id: client_id.clone(),
            client_secret: keys.client_secret.clone().map(Secret::new),
            redirect_uri: keys.redirect_uri.to_string(),
            auth_url: url("auth_url", keys.auth_url, provider.auth_url)?,
            token_url: url("token_url", keys.token_url, provider.token_url)?,
            revoke_url: url("revoke_url", keys.revoke_url, provider.revoke_url)?,
            scopes: wants.scopes,
            needed: wants.needed,
            identity: wants.identity,
        };
        Ok(Bearer::Account(accounts.account(name, settings)))
    }
}
