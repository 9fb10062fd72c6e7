//! Google's OAuth 2.0 as a desktop app meets it ("OAuth 2.0 for iOS & Desktop Apps": the
//! loopback redirect, PKCE, the token endpoint, refresh and revocation), live when
//! `YouTubeOptions::oauth` is set. Issued access tokens are accepted by the Data API calls with
//! their grant's scopes. Touches only the server's state.
//!
//! Where the documents leave a choice, this is what is done:
//! - The desktop guide does not list `access_type`; the web server and OpenID Connect guides
//!   say a client receives no refresh token unless it asks `access_type=offline`, and only the
//!   first consent gives one unless `prompt=consent` asks again. That is enforced here
//!   (`GoogleApp::offline_needs_access_type`, default true); set it false to have every
//!   exchange give one, as Google does for desktop clients in practice.
//! - Stricter than Google, because upq must: PKCE is required, with `S256` (Google takes
//!   `plain` and no PKCE at all); a challenge that is not 43 characters of base64url (such as
//!   TikTok's hex) is refused at once, where Google would refuse only the exchange; `state` is
//!   required.
//! - Refresh tokens are not rotated: a refresh answers without `refresh_token`, and the same
//!   refresh token keeps working until revoked (or past `GoogleApp::refresh_ttl`, the 7 days of
//!   an app whose consent screen is in "Testing"). At most 100 live refresh tokens per client:
//!   the 101st ends the oldest, as documented.
//! - An authorization code is spent by the first exchange that passes client authentication,
//!   even when that exchange fails later. Codes live `GoogleApp::code_ttl`.
//! - Revoking an access token or a refresh token ends the whole grant ("if the token is an
//!   access token and it has a corresponding refresh token, the refresh token will also be
//!   revoked").
//! - An invalid authorization request gets an HTML error page, as Google shows one; a refused
//!   consent redirects with `error=access_denied`.
//!
//! Every refusal is the client's violation except those the test caused: grants ended by
//! `revoke_grants`, access tokens expired by `expire_access_tokens`, and, on a clock faster
//! than real time, access tokens still within the `expires_in` they were announced with.

use std::fmt;
use std::time::{Duration, Instant};

use super::answer::Answer;
use super::{mint, YouTubeServer, AUTH_PATH, REVOKE_PATH, TOKEN_PATH};
use super::{SCOPE_FORCE_SSL, SCOPE_READONLY, SCOPE_UPLOAD, SCOPE_YOUTUBE};

mod authorize;
mod token;

pub(super) use authorize::authorize;
pub(super) use token::{revoke, token};

/// The scopes this server knows; an authorization request for another is refused.
pub const KNOWN_SCOPES: [&str; 4] = [SCOPE_UPLOAD, SCOPE_YOUTUBE, SCOPE_FORCE_SSL, SCOPE_READONLY];

/// Live refresh tokens per account and client before the oldest is ended.
pub const MAX_REFRESH_TOKENS: usize = 100;

/// The desktop app registered with Google.
#[derive(Clone)]
pub struct GoogleApp {
    pub client_id: String,
    /// Desktop clients have one; Google requires it at the token endpoint though it is not
    /// secret.
    pub client_secret: String,
    /// How long an access token lives (virtual time); `expires_in` says so.
    pub access_ttl: Duration,
    /// How long an authorization code may wait for its exchange (virtual time).
    pub code_ttl: Duration,
    /// How long a refresh token lives (virtual time); None: until revoked.
    pub refresh_ttl: Option<Duration>,
    /// A refresh token only for `access_type=offline` (see the module docs).
    pub offline_needs_access_type: bool,
}

impl Default for GoogleApp {
    /// 3599 s access tokens, 10 minute codes, refresh tokens until revoked, offline access
    /// only when asked.
    fn default() -> GoogleApp {
        GoogleApp {
            client_id: "upq-test-client.apps.googleusercontent.com".to_string(),
            client_secret: "GOCSPX-upq-test-client-secret".to_string(),
            access_ttl: Duration::from_secs(3599),
            code_ttl: Duration::from_secs(600),
            refresh_ttl: None,
            offline_needs_access_type: true,
        }
    }
}

impl fmt::Debug for GoogleApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("access_ttl", &self.access_ttl)
            .field("code_ttl", &self.code_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("offline_needs_access_type", &self.offline_needs_access_type)
            .finish()
    }
}

impl GoogleApp {
    pub(super) fn check(&self) -> Result<(), String> {
        if self.client_id.is_empty() || self.client_secret.is_empty() {
            return Err("client_id and client_secret must not be empty".to_string());
        }
        if self.access_ttl.is_zero() || self.code_ttl.is_zero() {
            return Err("access_ttl and code_ttl must be positive".to_string());
        }
        Ok(())
    }
}

/// One token endpoint request as it was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequestRecord {
    /// As sent (empty when absent or unreadable).
    pub grant_type: String,
    /// "ok", or the `error` answered.
    pub outcome: String,
    /// The `error_description` answered (empty on success).
    pub description: String,
    /// Whether a refresh token was in the answer.
    pub refresh_token_issued: bool,
    /// Virtual time of arrival.
    pub at: Duration,
}

/// One valid authorization request and what the user decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRecord {
    pub redirect_uri: String,
    /// The scopes requested, in order.
    pub requested: Vec<String>,
    /// The scopes granted (empty when refused).
    pub granted: Vec<String>,
    pub state: String,
    /// `access_type` as sent (empty when absent).
    pub access_type: String,
    /// `prompt` as sent (empty when absent).
    pub prompt: String,
    /// Whether the code's exchange will give a refresh token.
    pub offline: bool,
    /// "code", or the `error` redirected with.
    pub outcome: String,
    /// Virtual time of arrival.
    pub at: Duration,
}

/// How a grant ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The client revoked it: using it again is its own mistake.
    ByClient,
    /// The test ended it (the user removed the app's access): refusals are excused.
    ByUser,
    /// A 101st refresh token ended it.
    Evicted,
}

struct IssuedCode {
    code: String,
    redirect_uri: String,
    challenge: String,
    scopes: Vec<String>,
    /// The exchange gives a refresh token.
    offline: bool,
    issued: Duration,
    used: bool,
}

struct AccessToken {
    token: String,
    expires: Duration,
    /// With a clock faster than real time, when the stated `expires_in` runs out in real time:
    /// before then an expiry on the fast clock is the server's doing, not the client's.
    stated_real: Option<Instant>,
    /// Expired by the test before its time: refusals are excused.
    expired_early: bool,
}

/// What one consent (one authorization code) gave.
struct Grant {
    scopes: Vec<String>,
    access: Vec<AccessToken>,
    refresh: Option<String>,
    refresh_expires: Option<Duration>,
    ended: Option<Ended>,
}

impl Grant {
    fn live_refresh(&self, now: Duration) -> bool {
        self.refresh.is_some()
            && self.ended.is_none()
            && self.refresh_expires.is_none_or(|at| now < at)
    }
}

/// The OAuth half of the server's state.
pub(super) struct OAuthState {
    consent: bool,
    granted_scopes: Option<Vec<String>>,
    codes: Vec<IssuedCode>,
    grants: Vec<Grant>,
    authorizations: Vec<AuthorizationRecord>,
    token_requests: Vec<TokenRequestRecord>,
    revocations: usize,
    refreshes: usize,
    minted: u64,
    /// Virtual seconds per real second above 1: expires_in is read by clients in real time.
    fast_clock: Option<f64>,
}

impl OAuthState {
    /// The state for a server whose clock runs `scale` times real time; the user consents to
    /// everything asked.
    pub(super) fn with_scale(scale: f64) -> OAuthState {
        OAuthState {
            consent: true,
            granted_scopes: None,
            codes: Vec::new(),
            grants: Vec::new(),
            authorizations: Vec::new(),
            token_requests: Vec::new(),
            revocations: 0,
            refreshes: 0,
            minted: 0,
            fast_clock: Some(scale).filter(|&scale| scale > 1.0),
        }
    }

    fn next(&mut self, tag: &str, bytes: usize) -> String {
        self.minted += 1;
        mint(tag, self.minted, bytes)
    }

    /// Shaped like Google's: `ya29.` and a long base64url tail.
    fn mint_access(&mut self, now: Duration, ttl: Duration) -> AccessToken {
        AccessToken {
            token: format!("ya29.a0{}", self.next("access", 96)),
            expires: now + ttl,
            stated_real: self.fast_clock.map(|_| Instant::now() + ttl),
            expired_early: false,
        }
    }

    /// `1//` and a base64url tail.
    fn mint_refresh(&mut self) -> String {
        format!("1//0{}", self.next("refresh", 72))
    }

    /// `4/0A…`: a `/` the redirect must escape.
    fn mint_code(&mut self) -> String {
        format!("4/0A{}", self.next("code", 54))
    }

    /// The scopes of an issued access token, or why it is refused and whether that is excused.
    pub(super) fn access(&self, token: &str, now: Duration) -> Result<Vec<String>, (String, bool)> {
        let found = self.grants.iter().find_map(|grant| {
            grant
                .access
                .iter()
                .find(|access| access.token == token)
                .map(|access| (grant, access))
        });
        let Some((grant, access)) = found else {
            return Err(("unknown token".to_string(), false));
        };
        match grant.ended {
            Some(Ended::ByUser) => Err(("the user removed the app's access".to_string(), true)),
            Some(Ended::ByClient) => Err(("the client revoked this grant".to_string(), false)),
            Some(Ended::Evicted) => Err((
                "the grant's refresh token was ended by a 101st".to_string(),
                false,
            )),
            None if access.expired_early => Err(("expired early by the test".to_string(), true)),
            None if now >= access.expires => Err((
                format!("expired {:.0} s ago", (now - access.expires).as_secs_f64()),
                access.stated_real.is_some_and(|at| Instant::now() < at),
            )),
            None => Ok(grant.scopes.clone()),
        }
    }

    /// Whether a live grant already gave a refresh token.
    fn has_offline_grant(&self, now: Duration) -> bool {
        self.grants.iter().any(|grant| grant.live_refresh(now))
    }

    /// The scopes live grants cover.
    fn granted_before(&self, now: Duration) -> Vec<String> {
        let mut scopes: Vec<String> = Vec::new();
        for grant in self.grants.iter().filter(|grant| {
            grant.ended.is_none() && (grant.live_refresh(now) || grant.refresh.is_none())
        }) {
            for scope in &grant.scopes {
                if !scopes.contains(scope) {
                    scopes.push(scope.clone());
                }
            }
        }
        scopes
    }
}

/// Test controls and observations of the OAuth side.
impl YouTubeServer {
    /// The authorization endpoint, the stand-in for `https://accounts.google.com/o/oauth2/v2/auth`.
    pub fn auth_url(&self) -> String {
        self.url(AUTH_PATH)
    }

    /// The stand-in for `https://oauth2.googleapis.com/token`.
    pub fn token_url(&self) -> String {
        self.url(TOKEN_PATH)
    }

    /// The stand-in for `https://oauth2.googleapis.com/revoke`.
    pub fn revoke_url(&self) -> String {
        self.url(REVOKE_PATH)
    }

    /// Whether the user consents on the authorization page (default: yes).
    pub fn set_consent(&self, allow: bool) {
        self.shared.inner().oauth.consent = allow;
    }

    /// The scopes a consent grants, of those requested (the user unticks the others); None:
    /// all requested.
    pub fn set_granted_scopes(&self, scopes: Option<Vec<String>>) {
        self.shared.inner().oauth.granted_scopes = scopes;
    }

    /// The user removes the app's access: every token issued so far stops working (their
    /// refusals are not the client's violations).
    pub fn revoke_grants(&self) {
        for grant in &mut self.shared.inner().oauth.grants {
            grant.ended.get_or_insert(Ended::ByUser);
        }
    }

    /// Every access token issued so far expires now (refusals are not violations); refresh
    /// tokens still work.
    pub fn expire_access_tokens(&self) {
        for grant in &mut self.shared.inner().oauth.grants {
            for access in &mut grant.access {
                access.expired_early = true;
            }
        }
    }

    /// Every token endpoint request, in order.
    pub fn token_requests(&self) -> Vec<TokenRequestRecord> {
        self.shared.inner().oauth.token_requests.clone()
    }

    /// Every valid authorization request, in order.
    pub fn authorizations(&self) -> Vec<AuthorizationRecord> {
        self.shared.inner().oauth.authorizations.clone()
    }

    /// Successful refreshes.
    pub fn refresh_count(&self) -> usize {
        self.shared.inner().oauth.refreshes
    }

    /// Successful revocations.
    pub fn revocations(&self) -> usize {
        self.shared.inner().oauth.revocations
    }

    /// The refresh token of the newest grant still alive, if any.
    pub fn current_refresh_token(&self) -> Option<String> {
        let now = self.shared.now();
        let inner = self.shared.inner();
        inner
            .oauth
            .grants
            .iter()
            .rev()
            .find(|grant| grant.live_refresh(now))
            .and_then(|grant| grant.refresh.clone())
    }

    /// Access tokens that would be accepted now.
    pub fn valid_access_tokens(&self) -> usize {
        let now = self.shared.now();
        let inner = self.shared.inner();
        inner
            .oauth
            .grants
            .iter()
            .flat_map(|grant| grant.access.iter())
            .filter(|access| inner.oauth.access(&access.token, now).is_ok())
            .count()
    }
}

/// An OAuth answer's last touch: tokens are never cached.
fn no_store(answer: Answer) -> Answer {
    answer
        .header("cache-control", "no-store".to_string())
        .header("pragma", "no-cache".to_string())
}
