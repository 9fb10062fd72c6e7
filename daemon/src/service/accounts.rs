//! The service's side of accounts: start and await sign-ins, list and sign out accounts,
//! and let the jobs that wait for a sign-in go on once it is done.
//!
//! The accounts themselves (tokens, refresh, the loopback flow) live in `crate::accounts`;
//! this is where they meet the queue and the notifications.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use upq_proto::{AccountView, ErrorCode, JobState, LoginResult};

use super::{Service, ServiceError};
use crate::accounts::{Account, LoginStarted};
use crate::config::DestinationConfig;
use crate::job::Event;

/// How long a sign-in waits for the browser when the client names no time.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest sign-in wait a client may ask for.
const MAX_LOGIN_TIMEOUT: Duration = Duration::from_secs(3600);

impl Service {
    fn account_of(&self, destination: &str) -> Result<std::sync::Arc<Account>, ServiceError> {
        let config = self.config();
        match config.destinations.get(destination) {
            None => Err(ServiceError::new(
                ErrorCode::UnknownDestination,
                format!(
                    "no destination named '{destination}' (known: {})",
                    config.destinations.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )),
            Some(_) => self.inner.accounts.get(destination).ok_or_else(|| {
                ServiceError::new(
                    ErrorCode::Refused,
                    format!(
                        "destination '{destination}' does not sign in: only destinations with a client_key (TikTok) or client_id (YouTube) have an account"
                    ),
                )
            }),
        }
    }

    /// Starts a sign-in; returns the URL to open.
    pub async fn login(
        &self,
        destination: &str,
        timeout: Option<Duration>,
    ) -> Result<LoginStarted, ServiceError> {
        let account = self.account_of(destination)?;
        let timeout = timeout
            .unwrap_or(DEFAULT_LOGIN_TIMEOUT)
            .min(MAX_LOGIN_TIMEOUT);
        account
            .start_login(timeout)
            .await
            .map_err(|message| ServiceError::new(ErrorCode::Refused, message))
    }

    /// Waits for the end of sign-in `attempt`.
    pub async fn login_wait(
        &self,
        destination: &str,
        attempt: u64,
    ) -> Result<LoginResult, ServiceError> {
        let account = self.account_of(destination)?;
        let outcome = account.wait_login(attempt).await;
        Ok(LoginResult {
            destination: outcome.destination,
            ok: outcome.ok,
            timed_out: outcome.timed_out,
            message: outcome.message,
        })
    }

    /// Starts a sign-in and opens it in the desktop's browser (the notification's action).
    pub async fn login_in_browser(&self, destination: &str) -> Result<(), ServiceError> {
        let started = self.login(destination, None).await?;
        let opened = tokio::process::Command::new("xdg-open")
            .arg(&started.url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await;
        match opened {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(ServiceError::new(
                ErrorCode::Internal,
                format!("xdg-open ended with {status}; run `upqctl login {destination}`"),
            )),
            Err(e) => Err(ServiceError::new(
                ErrorCode::Internal,
                format!("cannot run xdg-open ({e}); run `upqctl login {destination}`"),
            )),
        }
    }

    /// Every destination's account, in name order: signed-in ones and configured tokens.
    pub async fn accounts(&self) -> Vec<AccountView> {
        let config = self.config();
        let mut views = Vec::new();
        for (name, destination) in &config.destinations {
            if let Some(account) = self.inner.accounts.get(name) {
                views.push(account.view().await);
            } else if let DestinationConfig::Tiktok(tiktok) = destination {
                views.push(AccountView {
                    destination: name.clone(),
                    provider: "TikTok".to_string(),
                    state: "manual".to_string(),
                    account_id: None,
                    display_name: None,
                    scopes: Vec::new(),
                    missing_scopes: Vec::new(),
                    access_expires_at: None,
                    refresh_expires_at: None,
                    store: "config".to_string(),
                    message: Some(match &tiktok.access_token_file {
                        Some(path) => format!("the access token is read from {}", path.display()),
                        None => "the access token is set in the config".to_string(),
                    }),
                });
            }
        }
        views
    }

    /// Revokes the account's grant and forgets its tokens.
    pub async fn logout(&self, destination: &str) -> Result<String, ServiceError> {
        let account = self.account_of(destination)?;
        account
            .logout()
            .await
            .map_err(|message| ServiceError::new(ErrorCode::Internal, message))
    }

    /// The jobs of `destination` that wait for a sign-in.
    fn waiting_for_signin(&self, destination: &str) -> Vec<u64> {
        let candidates: Vec<u64> = self
            .lock()
            .jobs
            .iter()
            .filter(|(_, job)| {
                job.state() == JobState::Retrying && &**job.destination() == destination
            })
            .map(|(&id, _)| id)
            .collect();
        candidates
            .into_iter()
            .filter(|&id| {
                self.job(id).is_some_and(|job| {
                    job.last_error()
                        .is_some_and(|e| e.kind == "signin_required")
                })
            })
            .collect()
    }

    /// Job `id` of `destination` began to wait for a sign-in: show (or update) the account's
    /// one notification, counting the jobs that wait.
    pub(crate) async fn signin_needed(&self, id: u64, destination: &str) {
        let waiting = {
            let state = self.lock();
            let mut sets = self
                .inner
                .signin_waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let set = sets.entry(destination.to_string()).or_default();
            set.insert(id);
            // Jobs that moved on (canceled, retried, published) no longer count.
            set.retain(|id| {
                state
                    .jobs
                    .get(id)
                    .is_some_and(|job| job.state() == JobState::Retrying)
            });
            set.len()
        };
        let provider = self
            .inner
            .accounts
            .get(destination)
            .map(|a| a.provider_name())
            .unwrap_or("the platform");
        self.inner
            .notifier
            .signin_needed(destination, provider, waiting.max(1))
            .await;
    }

    /// After each successful sign-in, the destination's waiting jobs go on at once.
    pub(crate) async fn continue_after_signins(self, shutdown: CancellationToken) {
        let mut finished = self.inner.accounts.finished();
        loop {
            let outcome = tokio::select! {
                outcome = finished.recv() => outcome,
                _ = shutdown.cancelled() => return,
            };
            match outcome {
                Ok(outcome) if outcome.ok => self.signed_in(&outcome.destination).await,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn signed_in(&self, destination: &str) {
        self.inner
            .signin_waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(destination);
        self.inner.notifier.signed_in(destination).await;
        let now = self.now();
        for id in self.waiting_for_signin(destination) {
            let late = self
                .job(id)
                .and_then(|job| job.publish_at())
                .is_some_and(|at| at <= now);
            let reason = if late {
                "signed in again; its publish time passed while it waited, so it publishes as soon as it can"
            } else {
                "signed in again; continuing"
            };
            if let Err(e) = self.apply(id, Event::Retry, reason.to_string(), |_| {}) {
                tracing::debug!(job = id, error = %e, "the job moved on before the sign-in");
            }
        }
    }
}
