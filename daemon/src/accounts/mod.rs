//! Accounts: signing in once (OAuth 2.0 authorization code with PKCE and a loopback
//! redirect) and staying signed in (refresh before expiry, rotation stored durably before use).
//!
//! The daemon owns every account; clients only start a sign-in and show its result. One
//! `Account` per destination that signs in; its lock makes the refresh single-flight, so
//! many jobs needing a fresh token at once cause one request to the provider.
//!
//! A refresh is: ask (old refresh token) → store the answer durably → hand out the new access
//! token. A crash before the provider answers leaves the old refresh token, still good; a crash
//! after the store leaves the new one. Only a crash in the instant between the provider's
//! answer and the store can leave a refresh token the provider already replaced; the next
//! refresh is then refused, and the jobs wait for a sign-in instead of failing.

pub mod exchange;
mod flow;
pub mod keyring;
pub mod provider;
pub mod store;
pub mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Url;
use tokio::sync::{broadcast, OnceCell};
use upq_proto::AccountView;

use exchange::ExchangeError;
pub use flow::LoginStarted;
use provider::Provider;
use store::TokenStore;
use tokens::{Secret, TokenSet};

use crate::crash_point;

/// How one destination signs in, from its configuration.
#[derive(Clone, PartialEq)]
pub struct OAuthSettings {
    pub provider: Provider,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// Where the browser is sent back to; port 0 means any free port.
    pub redirect_uri: String,
    pub auth_url: Url,
    pub token_url: Url,
    pub revoke_url: Url,
    /// Asked for at sign-in.
    pub scopes: Vec<String>,
    /// Without these the destination's jobs cannot run.
    pub needed: Vec<String>,
    /// A read-only call that says who signed in: its URL and the JSON pointer of the name.
    pub identity: Option<(Url, &'static str)>,
}

impl std::fmt::Debug for OAuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthSettings")
            .field("provider", &self.provider.display)
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// Why no access token can be had now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// A person has to sign in (or fix the client's settings); the message says how.
    SigninRequired(String),
    /// Worth trying again later (the provider or the network is down).
    Transient(String),
}

/// The end of a sign-in, as `LoginFinished` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOutcome {
    pub destination: String,
    pub attempt: u64,
    pub ok: bool,
    /// Ended because nobody finished it in time.
    pub timed_out: bool,
    pub message: String,
}

/// What an account holds in memory.
#[derive(Default)]
struct Slot {
    loaded: bool,
    tokens: Option<TokenSet>,
    /// Why the stored tokens cannot be used, once that is known.
    refused: Option<String>,
}

/// One destination's account.
pub struct Account {
    destination: String,
    settings: Mutex<Arc<OAuthSettings>>,
    shared: Arc<Shared>,
    slot: tokio::sync::Mutex<Slot>,
    /// The running sign-in, if any, and the number of the last one started.
    login: Mutex<flow::LoginSlot>,
}

struct Shared {
    dir: std::path::PathBuf,
    store: OnceCell<TokenStore>,
    http: reqwest::Client,
    finished: broadcast::Sender<LoginOutcome>,
    clock: Arc<dyn crate::clock::Clock>,
}

/// Every account of the daemon; cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    shared: Arc<Shared>,
    accounts: Arc<Mutex<HashMap<String, Arc<Account>>>>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

impl Accounts {
    /// Accounts whose tokens go to the Secret Service, or to files in `dir` when none answers.
    pub fn new(dir: std::path::PathBuf) -> Accounts {
        Accounts::with_store(dir, None)
    }

    /// Accounts kept in files in `dir` only (tests).
    pub fn in_files(dir: std::path::PathBuf) -> Accounts {
        let store = TokenStore::files(dir.clone());
        Accounts::with_store(dir, Some(store))
    }

    fn with_store(dir: std::path::PathBuf, store: Option<TokenStore>) -> Accounts {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("upq/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot set up the sign-in's HTTP client with its timeouts; using one without");
                reqwest::Client::new()
            });
        Accounts {
            shared: Arc::new(Shared {
                dir,
                store: store
                    .map(|s| OnceCell::new_with(Some(s)))
                    .unwrap_or_default(),
                http,
                finished: broadcast::channel(16).0,
                clock: crate::clock::system(),
            }),
            accounts: Arc::default(),
        }
    }

    /// The account of `destination`, made or updated with `settings`.
    pub fn account(&self, destination: &str, settings: OAuthSettings) -> Arc<Account> {
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(account) = accounts.get(destination) {
            let mut current = account.settings.lock().unwrap_or_else(|p| p.into_inner());
            if **current != settings {
                *current = Arc::new(settings);
            }
            return account.clone();
        }
        let account = Arc::new(Account {
            destination: destination.to_string(),
            settings: Mutex::new(Arc::new(settings)),
            shared: self.shared.clone(),
            slot: tokio::sync::Mutex::default(),
            login: Mutex::default(),
        });
        accounts.insert(destination.to_string(), account.clone());
        account
    }

    /// The account of `destination`, if it signs in.
    pub fn get(&self, destination: &str) -> Option<Arc<Account>> {
        self.accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(destination)
            .cloned()
    }

    /// Forgets accounts whose destination is gone from the config.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| keep(name));
    }

    /// Every sign-in's end, as it happens.
    pub fn finished(&self) -> broadcast::Receiver<LoginOutcome> {
        self.shared.finished.subscribe()
    }

    /// The store's name, opening it if needed.
    pub async fn store_name(&self) -> &'static str {
        self.shared.store().await.name()
    }
}

impl Shared {
    async fn store(&self) -> &TokenStore {
        self.store
            .get_or_init(|| TokenStore::open(self.dir.clone()))
            .await
    }
}

impl Account {
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The platform's name ("TikTok").
    pub fn provider_name(&self) -> &'static str {
        self.settings().provider.display
    }

    fn settings(&self) -> Arc<OAuthSettings> {
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The token endpoint, with this account's client.
    fn token_client<'a>(&'a self, settings: &'a OAuthSettings) -> exchange::Client<'a> {
        exchange::Client {
            http: &self.shared.http,
            provider: &settings.provider,
            client_id: &settings.client_id,
            client_secret: settings.client_secret.as_ref(),
            token_url: &settings.token_url,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.shared.clock.now()
    }

    fn login_command(&self) -> String {
        format!("upqctl login {}", self.destination)
    }

    fn signin_message(&self, why: &str) -> String {
        format!(
            "destination '{}' needs a sign-in to {} ({why}): run `{}`",
            self.destination,
            self.settings().provider.display,
            self.login_command()
        )
    }

    async fn load(&self, slot: &mut Slot) -> Result<(), AuthError> {
        if slot.loaded {
            return Ok(());
        }
        match self.shared.store().await.load(&self.destination).await {
            Ok(tokens) => {
                slot.tokens = tokens;
                slot.loaded = true;
                Ok(())
            }
            Err(store::StoreError::Damaged { .. }) => {
                slot.loaded = true;
                slot.refused = Some("the stored tokens are damaged".to_string());
                Ok(())
            }
            Err(e) => Err(AuthError::Transient(format!(
                "cannot read the account of '{}': {e}",
                self.destination
            ))),
        }
    }

    /// A usable access token: the stored one, or a fresh one when it is due. One refresh at a
    /// time: callers that wait meanwhile get its result.
    pub async fn access_token(&self) -> Result<Secret, AuthError> {
        let mut slot = self.slot.lock().await;
        self.load(&mut slot).await?;
        self.usable(&mut slot, None).await
    }

    /// After the provider refused `rejected`: a fresh token, unless another caller already
    /// replaced it (then that one). At most one refresh per refused token.
    pub async fn after_rejection(&self, rejected: &Secret) -> Result<Secret, AuthError> {
        let mut slot = self.slot.lock().await;
        self.load(&mut slot).await?;
        self.usable(&mut slot, Some(rejected)).await
    }

    async fn usable(
        &self,
        slot: &mut Slot,
        rejected: Option<&Secret>,
    ) -> Result<Secret, AuthError> {
        if let Some(why) = &slot.refused {
            return Err(AuthError::SigninRequired(self.signin_message(why)));
        }
        let now = self.now();
        let Some(tokens) = slot.tokens.clone() else {
            return Err(AuthError::SigninRequired(
                self.signin_message("not signed in yet"),
            ));
        };
        let settings = self.settings();
        let needed: Vec<&str> = settings.needed.iter().map(String::as_str).collect();
        let missing = tokens.missing(&needed);
        if !missing.is_empty() {
            return Err(AuthError::SigninRequired(self.signin_message(&format!(
                "the sign-in did not grant {}",
                missing.join(", ")
            ))));
        }
        let was_rejected = rejected.is_some_and(|r| *r == tokens.access_token);
        if !was_rejected && !tokens.access_due(now) {
            return Ok(tokens.access_token.clone());
        }
        self.refresh(slot, tokens, now).await
    }

    async fn refresh(
        &self,
        slot: &mut Slot,
        tokens: TokenSet,
        now: DateTime<Utc>,
    ) -> Result<Secret, AuthError> {
        let Some(refresh_token) = tokens.refresh_token.clone() else {
            return Err(self
                .refused(
                    slot,
                    "the access token expired and there is no refresh token",
                )
                .await);
        };
        if tokens.refresh_expired(now) {
            return Err(self.refused(slot, "the refresh token expired").await);
        }
        let settings = self.settings();
        let client = self.token_client(&settings);
        crash_point("refresh-before-request");
        let answer = client.refresh(&tokens, &refresh_token, now).await;
        crash_point("refresh-after-response");
        match answer {
            Ok(fresh) => {
                // Durable before use: the provider has already let go of the old refresh token.
                if let Err(e) = self
                    .shared
                    .store()
                    .await
                    .save(&self.destination, &fresh)
                    .await
                {
                    // Keep the new set in memory so this run goes on; say loudly that a
                    // restart would need a sign-in.
                    tracing::error!(destination = %self.destination, error = %e, "the refreshed tokens could not be stored; after a restart this account needs a sign-in");
                }
                crash_point("refresh-after-store");
                tracing::info!(destination = %self.destination, "access token refreshed");
                let access = fresh.access_token.clone();
                slot.tokens = Some(fresh);
                Ok(access)
            }
            Err(ExchangeError::Refused { code, description }) => {
                let why = if description.is_empty() {
                    format!("{} refused the refresh: {code}", settings.provider.display)
                } else {
                    format!(
                        "{} refused the refresh: {code}: {description}",
                        settings.provider.display
                    )
                };
                Err(self.refused(slot, &why).await)
            }
            Err(ExchangeError::Transient(message)) => Err(AuthError::Transient(format!(
                "destination '{}': cannot refresh the access token now: {message}",
                self.destination
            ))),
        }
    }

    /// Records that the stored tokens cannot be used until a person signs in. The dead
    /// refresh token is dropped from the store so it is never sent again.
    async fn refused(&self, slot: &mut Slot, why: &str) -> AuthError {
        tracing::warn!(destination = %self.destination, why, "a sign-in is needed");
        slot.refused = Some(why.to_string());
        if let Some(tokens) = slot.tokens.as_mut() {
            tokens.refresh_token = None;
            tokens.access_expires_at = Some(self.now());
            let tokens = tokens.clone();
            if let Err(e) = self
                .shared
                .store()
                .await
                .save(&self.destination, &tokens)
                .await
            {
                tracing::warn!(destination = %self.destination, error = %e, "cannot record the refused sign-in");
            }
        }
        AuthError::SigninRequired(self.signin_message(why))
    }

    /// Whether a sign-in is needed now, and why, without asking the provider.
    pub async fn needs_signin(&self) -> Option<String> {
        let mut slot = self.slot.lock().await;
        if let Err(AuthError::Transient(_)) = self.load(&mut slot).await {
            return None;
        }
        if let Some(why) = &slot.refused {
            return Some(self.signin_message(why));
        }
        match &slot.tokens {
            None => Some(self.signin_message("not signed in yet")),
            Some(tokens) => {
                let settings = self.settings();
                let needed: Vec<&str> = settings.needed.iter().map(String::as_str).collect();
                let missing = tokens.missing(&needed);
                if !missing.is_empty() {
                    Some(self.signin_message(&format!(
                        "the sign-in did not grant {}",
                        missing.join(", ")
                    )))
                } else if tokens.refresh_token.is_none() && tokens.access_due(self.now()) {
                    Some(self.signin_message("the access token expired"))
                } else {
                    None
                }
            }
        }
    }

    /// The account as `accounts` shows it.
    pub async fn view(&self) -> AccountView {
        let store = self.shared.store().await.name().to_string();
        let why = self.needs_signin().await;
        let slot = self.slot.lock().await;
        let settings = self.settings();
        let needed: Vec<&str> = settings.needed.iter().map(String::as_str).collect();
        let tokens = slot.tokens.as_ref();
        AccountView {
            destination: self.destination.clone(),
            provider: settings.provider.display.to_string(),
            state: match (tokens, &why) {
                (None, _) => "signed_out",
                (Some(_), Some(_)) => "signin_required",
                (Some(_), None) => "signed_in",
            }
            .to_string(),
            account_id: tokens.and_then(|t| t.account_id.clone()),
            display_name: tokens.and_then(|t| t.display_name.clone()),
            scopes: tokens.map(|t| t.scopes.clone()).unwrap_or_default(),
            missing_scopes: tokens
                .map(|t| t.missing(&needed).iter().map(|s| s.to_string()).collect())
                .unwrap_or_default(),
            access_expires_at: tokens.and_then(|t| t.access_expires_at),
            refresh_expires_at: tokens.and_then(|t| t.refresh_expires_at),
            store,
            message: why,
        }
    }

    /// The account's id at the provider (TikTok's `open_id`), when signed in.
    pub async fn account_id(&self) -> Option<String> {
        let mut slot = self.slot.lock().await;
        self.load(&mut slot).await.ok()?;
        slot.tokens.as_ref()?.account_id.clone()
    }

    /// Revokes the grant at the provider, then forgets the tokens here. The local copy is
    /// forgotten even when the provider cannot be reached; the message says so.
    pub async fn logout(&self) -> Result<String, String> {
        let mut slot = self.slot.lock().await;
        self.load(&mut slot).await.map_err(|e| match e {
            AuthError::SigninRequired(m) | AuthError::Transient(m) => m,
        })?;
        let settings = self.settings();
        let revoked = match slot.tokens.as_ref() {
            None => None,
            Some(tokens) => {
                let token = tokens
                    .refresh_token
                    .as_ref()
                    .filter(|_| !settings.provider.revoke_with_client)
                    .unwrap_or(&tokens.access_token);
                Some(
                    exchange::revoke(
                        &self.shared.http,
                        &settings.provider,
                        &settings.revoke_url,
                        &settings.client_id,
                        settings.client_secret.as_ref(),
                        token,
                    )
                    .await,
                )
            }
        };
        self.shared
            .store()
            .await
            .forget(&self.destination)
            .await
            .map_err(|e| format!("cannot forget the account of '{}': {e}", self.destination))?;
        slot.tokens = None;
        slot.refused = None;
        Ok(match revoked {
            None => format!("destination '{}' was not signed in", self.destination),
            Some(Ok(())) => format!(
                "signed out of {} for destination '{}': the grant is revoked and the tokens forgotten",
                settings.provider.display, self.destination
            ),
            Some(Err(e)) => format!(
                "the tokens of destination '{}' are forgotten, but {} could not revoke the grant ({e}); remove the app's access in your {} account settings",
                self.destination, settings.provider.display, settings.provider.display
            ),
        })
    }

    /// Stores the tokens of a finished sign-in and makes them the account's.
    async fn signed_in(&self, mut tokens: TokenSet) -> Result<(), String> {
        let settings = self.settings();
        if let Some((url, pointer)) = &settings.identity {
            tokens.display_name = self.who(url, pointer, &tokens.access_token).await;
        }
        let mut slot = self.slot.lock().await;
        self.shared
            .store()
            .await
            .save(&self.destination, &tokens)
            .await
            .map_err(|e| format!("the sign-in worked but its tokens could not be stored: {e}"))?;
        slot.loaded = true;
        slot.tokens = Some(tokens);
        slot.refused = None;
        Ok(())
    }

    /// Proves the sign-in still works, for `doctor`: takes a usable access token (renewed when
    /// due) and, where the provider has a read-only identity call, makes it, renewing the token
    /// once if the provider refuses it. A grant revoked at the provider then shows here as
    /// `SigninRequired`, as it would on the next upload. Returns the name the provider gives
    /// the person, when it has such a call.
    pub async fn verify(&self) -> Result<Option<String>, AuthError> {
        let mut token = self.access_token().await?;
        let settings = self.settings();
        let Some((url, pointer)) = &settings.identity else {
            return Ok(None);
        };
        let provider = settings.provider.display;
        let mut renewed = false;
        loop {
            let request = self.identity_request(url, &token).ok_or_else(|| {
                AuthError::SigninRequired(self.signin_message("the stored token is unusable"))
            })?;
            let response = request
                .send()
                .await
                .map_err(|e| AuthError::Transient(format!("{provider} did not answer: {e}")))?;
            let status = response.status();
            if status == reqwest::StatusCode::UNAUTHORIZED && !renewed {
                renewed = true;
                token = self.after_rejection(&token).await?;
                continue;
            }
            if status == reqwest::StatusCode::UNAUTHORIZED {
                return Err(AuthError::SigninRequired(
                    self.signin_message("it refuses even a renewed access token"),
                ));
            }
            if !status.is_success() {
                return Err(AuthError::Transient(format!(
                    "{provider} answered {status} to a read-only identity call"
                )));
            }
            let text = response.text().await.map_err(|e| {
                AuthError::Transient(format!("{provider}'s identity answer was cut off: {e}"))
            })?;
            return name_at(&text, pointer).map_err(|e| {
                AuthError::Transient(format!("{provider}'s identity answer is not JSON: {e}"))
            });
        }
    }

    /// The provider's read-only identity call with `token`; `None` for a token that no
    /// header can carry.
    fn identity_request(&self, url: &Url, token: &Secret) -> Option<reqwest::RequestBuilder> {
        let mut authorization =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose())).ok()?;
        authorization.set_sensitive(true);
        Some(
            self.shared
                .http
                .get(url.clone())
                .header(reqwest::header::AUTHORIZATION, authorization),
        )
    }

    /// The name the provider gives the person, from its read-only identity call.
    async fn who(&self, url: &Url, pointer: &str, token: &Secret) -> Option<String> {
        let response = self.identity_request(url, token)?.send().await.ok()?;
        name_at(&response.text().await.ok()?, pointer)
            .ok()
            .flatten()
    }
}

/// The string at JSON `pointer` of an identity answer, if there is one.
fn name_at(text: &str, pointer: &str) -> Result<Option<String>, serde_json::Error> {
    let answer: serde_json::Value = serde_json::from_str(text)?;
    Ok(answer
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .map(str::to_string))
}

#[cfg(test)]
mod tests;
