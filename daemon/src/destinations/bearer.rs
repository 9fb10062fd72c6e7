//! Where a platform destination's access token comes from: a token the user manages
//! (`access_token`, or `access_token_file` read again before every call so a token refreshed by
//! another tool is used at once), or an account upq signs in and refreshes itself.
//!
//! Shared by the destinations that call an API with `Authorization: Bearer`.

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::header::HeaderValue;
use reqwest::Url;
use upq_proto::CheckView;

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

/// How a time reads in `doctor`'s findings.
fn when(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A sign-in that ends within this long gets a warning, so the user signs in again in time.
const ENDS_SOON: chrono::TimeDelta = chrono::TimeDelta::days(7);

impl Bearer {
    /// `doctor`'s look at the sign-in of destination `name`: the account's state, scopes and
    /// expiry, after a read-only call that proves the platform still takes its token (where
    /// the platform has one); for a configured token, that it can be read.
    pub async fn check(&self, name: &str) -> CheckView {
        let account = match self {
            Bearer::Account(account) => account,
            Bearer::Manual { .. } => {
                return match self.token(name).await {
                    Ok(_) => CheckView::ok(
                        "account",
                        format!(
                            "an access token from {}; upq cannot renew it, the platform's own \
                             answer to the next call tells whether it still works",
                            self.origin()
                        ),
                    ),
                    Err(e) => CheckView::problem(
                        "account",
                        e.message,
                        format!("put a valid access token in {}", self.origin()),
                    ),
                };
            }
        };
        let login = format!("sign in: `upqctl login {name}` (or the desk's Accounts page)");
        let before = account.view().await;
        if before.state == "signed_out" {
            return CheckView::problem(
                "account",
                format!("not signed in to {}", before.provider),
                login,
            );
        }
        if before.state == "signin_required" {
            let why = before
                .message
                .unwrap_or_else(|| format!("the {} sign-in has ended", before.provider));
            return CheckView::problem("account", why, login);
        }
        let who = match account.verify().await {
            Ok(who) => who,
            Err(AuthError::SigninRequired(why)) => {
                return CheckView::problem("account", why, login)
            }
            Err(AuthError::Transient(why)) => {
                return CheckView::problem(
                    "account",
                    format!("the sign-in could not be checked: {why}"),
                    "check the network connection, then run `upqctl doctor` again",
                )
            }
        };
        // Read again: the check may have renewed the access token.
        let view = account.view().await;
        let who = who
            .or(view.display_name.clone())
            .or(view.account_id.clone())
            .map(|who| format!(" as {who}"))
            .unwrap_or_default();
        let scopes = if view.scopes.is_empty() {
            "no scopes listed".to_string()
        } else {
            format!("grants {} (all it needs)", view.scopes.join(", "))
        };
        let access = view
            .access_expires_at
            .map(|at| format!("; access token until {}, renewed when due", when(at)))
            .unwrap_or_default();
        let message = format!("signed in to {}{who}; {scopes}{access}", view.provider);
        match view.refresh_expires_at {
            Some(end) if end - chrono::Utc::now() < ENDS_SOON => CheckView::warning(
                "account",
                format!("{message}; the sign-in itself ends {}", when(end)),
                format!("sign in again before then: `upqctl login {name}`"),
            ),
            Some(end) => CheckView::ok(
                "account",
                format!("{message}; sign-in valid until {}", when(end)),
            ),
            None => CheckView::ok("account", message),
        }
    }
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
