//! TikTok's OAuth v2 as a desktop app meets it (Login Kit for Desktop; "Manage User Access
//! Tokens"; the Display API's user info), live when `TikTokOptions::oauth` is set. Issued
//! access tokens are accepted by the Content Posting calls with their grant's scopes.
//!
//! Touches only the server's state. Where the documents leave a choice, this is what is done:
//! - The HTTP status of an OAuth error is not documented: 401 for `invalid_client`, 400 for
//!   the rest. TikTok has been seen answering errors with 200, so
//!   `OAuthApp::errors_with_status_200` does that too: a client must read `error` whatever
//!   the status.
//! - The docs say a refresh's returned refresh token "may be different" and must then be
//!   used. Here it always is, and the one it replaced is refused (`invalid_grant`) and
//!   recorded. The refresh token stays valid for 365 days after the first issuance ("valid
//!   for 365 days after the initial issuance"), however often it is rotated.
//! - A refresh leaves the earlier access tokens valid until their own expiry.
//! - An authorization code is spent by the first exchange that passes client authentication,
//!   even when that exchange fails later (a retry needs a new code).
//! - A PKCE mismatch is `invalid_request` "Code verifier or code challenge is invalid." and a
//!   different redirect_uri `invalid_request` too, as TikTok answers them.
//! - A revoke succeeds with 200 and an empty body ("the response struct will be empty").
//! - An invalid authorization request gets a 400 HTML page, not a redirect (TikTok shows a
//!   page naming the parameter); a refused consent redirects with `error=access_denied`.
//! - User info is not rate limited (`RateLimits` has no field for it).
//!
//! Every refusal is recorded as the client's violation except those the test caused: grants
//! ended by `revoke_grants` and tokens expired by `expire_access_tokens`. Tokens the client
//! revoked itself, rotated-away refresh tokens and tokens past their announced expiry are the
//! client's own doing.

use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hyper::body::Incoming;
use hyper::{Method, Request};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{
    drain, header, read_small, take_respond, Answer, Body, Inner, Shared, TikTokServer,
    AUTHORIZE_PATH, REVOKE_PATH, SCOPE_PUBLISH, SCOPE_UPLOAD, SCOPE_USER_INFO_BASIC, TOKEN_PATH,
    USER_INFO_PATH,
};

mod authorize;
mod token;

pub use crate::form;
pub use crate::form::FORM_CONTENT_TYPE;
pub(in crate::tiktok) use authorize::authorize;
pub(in crate::tiktok) use token::{revoke, token};

/// The scopes this server knows; an authorization request for another is refused.
pub const KNOWN_SCOPES: [&str; 3] = [SCOPE_USER_INFO_BASIC, SCOPE_PUBLISH, SCOPE_UPLOAD];

/// User info fields and the scope each needs (Display API, `GET /v2/user/info/`).
const USER_FIELDS: [(&str, &str); 14] = [
    ("open_id", SCOPE_USER_INFO_BASIC),
    ("union_id", SCOPE_USER_INFO_BASIC),
    ("avatar_url", SCOPE_USER_INFO_BASIC),
    ("avatar_url_100", SCOPE_USER_INFO_BASIC),
    ("avatar_large_url", SCOPE_USER_INFO_BASIC),
    ("display_name", SCOPE_USER_INFO_BASIC),
    ("bio_description", "user.info.profile"),
    ("profile_deep_link", "user.info.profile"),
    ("is_verified", "user.info.profile"),
    ("username", "user.info.profile"),
    ("follower_count", "user.info.stats"),
    ("following_count", "user.info.stats"),
    ("likes_count", "user.info.stats"),
    ("video_count", "user.info.stats"),
];

/// The app registered with TikTok, and the user who signs in to it.
#[derive(Clone)]
pub struct OAuthApp {
    pub client_key: String,
    pub client_secret: String,
    /// Registered redirect URIs: http(s), host `localhost` or `127.0.0.1`, a port or `*`
    /// (any port), no query or fragment, at most 10, each under 512 characters.
    pub redirect_uris: Vec<String>,
    /// The signed-in user's `open_id`.
    pub open_id: String,
    pub display_name: String,
    /// How long an access token lives (virtual time).
    pub access_ttl: Duration,
    /// How long a refresh token lives from the grant's first issuance (virtual time).
    pub refresh_ttl: Duration,
    /// How long an authorization code may wait for its exchange (virtual time).
    pub code_ttl: Duration,
    /// Answer OAuth errors with 200 (same body), as TikTok has been seen to.
    pub errors_with_status_200: bool,
}

impl Default for OAuthApp {
    /// The documented lifetimes: 24 h access, 365 days refresh; 5 min codes; any port on
    /// `http://127.0.0.1:*/callback/`.
    fn default() -> OAuthApp {
        OAuthApp {
            client_key: "upq-test-client-key".to_string(),
            client_secret: "upq-test-client-secret".to_string(),
            redirect_uris: vec!["http://127.0.0.1:*/callback/".to_string()],
            open_id: "upq-test-open-id".to_string(),
            display_name: "upq test creator".to_string(),
            access_ttl: Duration::from_secs(24 * 3600),
            refresh_ttl: Duration::from_secs(365 * 24 * 3600),
            code_ttl: Duration::from_secs(5 * 60),
            errors_with_status_200: false,
        }
    }
}

impl fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthApp")
            .field("client_key", &self.client_key)
            .field("client_secret", &"<redacted>")
            .field("redirect_uris", &self.redirect_uris)
            .field("open_id", &self.open_id)
            .field("display_name", &self.display_name)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("code_ttl", &self.code_ttl)
            .field("errors_with_status_200", &self.errors_with_status_200)
            .finish()
    }
}

impl OAuthApp {
    /// The Login Kit for Desktop rules on registered redirect URIs.
    pub fn check_registration(&self) -> Result<(), String> {
        if self.redirect_uris.is_empty() || self.redirect_uris.len() > 10 {
            return Err(format!(
                "between 1 and 10 redirect URIs are registered, not {}",
                self.redirect_uris.len()
            ));
        }
        for uri in &self.redirect_uris {
            if uri.len() >= 512 {
                return Err(format!("redirect URI {uri:?} is 512 characters or more"));
            }
            authorize::RedirectUri::parse(uri, true)
                .map_err(|why| format!("redirect URI {uri:?}: {why}"))?;
        }
        Ok(())
    }
}

/// The code challenge TikTok's desktop flow wants: SHA-256 of the verifier, lowercase hex.
pub fn pkce_challenge(code_verifier: &str) -> String {
    Sha256::digest(code_verifier.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
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
    /// "code", or the `error` redirected with.
    pub outcome: String,
    /// Virtual time of arrival.
    pub at: Duration,
}

/// How a grant ended before its refresh token expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The client revoked it (`/v2/oauth/revoke/`): using it again is its own mistake.
    ByClient,
    /// The test ended it (the user removed the app): refusals are excused.
    ByUser,
}

struct IssuedCode {
    code: String,
    redirect_uri: String,
    challenge: String,
    scopes: Vec<String>,
    issued: Duration,
    used: bool,
}

pub(in crate::tiktok) struct AccessToken {
    token: String,
    expires: Duration,
    /// With a clock faster than real time, when the stated `expires_in` runs out in real
    /// time: before then an expiry on the fast clock is the server's doing, not the client's.
    stated_real: Option<std::time::Instant>,
    /// Expired by the test before its time: refusals are excused.
    expired_early: bool,
}

/// What one consent (one authorization code) gave: its tokens, rotated and refreshed.
struct Grant {
    scopes: Vec<String>,
    access: Vec<AccessToken>,
    /// Every refresh token issued, oldest first; only the last one works.
    refresh: Vec<String>,
    refresh_expires: Duration,
    ended: Option<Ended>,
}

impl Grant {
    fn current_refresh(&self) -> &str {
        self.refresh.last().expect("a grant has a refresh token")
    }
}

/// How an access token fares.
enum Access {
    Valid(Vec<String>),
    Refused { why: String, excused: bool },
}

/// The OAuth half of the server's state.
pub(in crate::tiktok) struct OAuthState {
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

impl Default for OAuthState {
    /// The user consents to everything requested.
    fn default() -> OAuthState {
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
            fast_clock: None,
        }
    }
}

impl OAuthState {
    /// The state for a server whose clock runs `scale` times real time.
    pub(in crate::tiktok) fn with_scale(scale: f64) -> OAuthState {
        OAuthState {
            fast_clock: Some(scale).filter(|&scale| scale > 1.0),
            ..OAuthState::default()
        }
    }

    /// An access token living `ttl` (virtual time) from `now`.
    pub(in crate::tiktok) fn access_token(
        &self,
        token: String,
        now: Duration,
        ttl: Duration,
    ) -> AccessToken {
        AccessToken {
            token,
            expires: now + ttl,
            stated_real: self.fast_clock.map(|_| std::time::Instant::now() + ttl),
            expired_early: false,
        }
    }

    /// A fresh unguessable string, base64url.
    fn mint(&mut self) -> String {
        self.minted += 1;
        let seed = format!(
            "{} {:?} {}",
            self.minted,
            Instant::now(),
            std::process::id()
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(&blake3::hash(seed.as_bytes()).as_bytes()[..24])
    }

    /// `act.…!NNNN`, shaped like TikTok's.
    fn mint_access(&mut self) -> String {
        format!("act.{}!{:04}", self.mint(), self.minted % 10_000)
    }

    /// `rft.…!NNNN`.
    fn mint_refresh(&mut self) -> String {
        format!("rft.{}!{:04}", self.mint(), self.minted % 10_000)
    }

    /// Shaped like TikTok's codes (`…*0!NNNN`), with characters a redirect must escape.
    fn mint_code(&mut self) -> String {
        format!("{}*0!{:04}", self.mint(), self.minted % 10_000)
    }

    fn access(&self, token: &str, now: Duration) -> Access {
        let found = self.grants.iter().find_map(|grant| {
            grant
                .access
                .iter()
                .find(|access| access.token == token)
                .map(|access| (grant, access))
        });
        let Some((grant, access)) = found else {
            return Access::Refused {
                why: "unknown token".to_string(),
                excused: false,
            };
        };
        match grant.ended {
            Some(Ended::ByUser) => Access::Refused {
                why: "the user removed the app".to_string(),
                excused: true,
            },
            Some(Ended::ByClient) => Access::Refused {
                why: "the client revoked this grant".to_string(),
                excused: false,
            },
            None if access.expired_early => Access::Refused {
                why: "expired early by the test".to_string(),
                excused: true,
            },
            None if now >= access.expires => Access::Refused {
                why: format!("expired {:.0} s ago", (now - access.expires).as_secs_f64()),
                excused: access
                    .stated_real
                    .is_some_and(|at| std::time::Instant::now() < at),
            },
            None => Access::Valid(grant.scopes.clone()),
        }
    }
}

impl Inner {
    /// The token an `Authorization: Bearer` header carries and its scopes: the fixed
    /// `options.token`, or an access token this server issued that is still good.
    pub(in crate::tiktok) fn bearer(
        &self,
        authorization: Option<&str>,
        now: Duration,
    ) -> Result<(String, Vec<String>), Answer> {
        let refuse = |note: String, excused: bool| {
            let mut answer = Answer::error(
                401,
                "access_token_invalid",
                "The access token is invalid or not found in the request.",
            );
            answer.note = Some(note.into());
            answer.excused = excused;
            answer
        };
        let Some(token) = authorization.and_then(|value| value.strip_prefix("Bearer ")) else {
            return Err(refuse("no Bearer token".to_string(), false));
        };
        if token == self.options.token {
            return Ok((token.to_string(), self.options.scopes.clone()));
        }
        match self.oauth.access(token, now) {
            Access::Valid(scopes) => Ok((token.to_string(), scopes)),
            Access::Refused { why, excused } => Err(refuse(why, excused)),
        }
    }
}

/// The app, when the OAuth endpoints are live.
fn live(shared: &Shared) -> Option<OAuthApp> {
    shared.inner().options.oauth.clone()
}

fn not_live(path: &str) -> Answer {
    Answer::error(404, "not_found", format!("no endpoint {path}"))
}

/// `GET /v2/user/info/?fields=…` with a bearer token carrying `user.info.basic`.
pub(in crate::tiktok) async fn user_info(request: Request<Incoming>, shared: &Shared) -> Answer {
    let method = request.method().clone();
    let query = request.uri().query().unwrap_or("").to_string();
    let authorization = header(request.headers(), "authorization").map(str::to_string);
    drain(request.into_body()).await;
    let Some(app) = live(shared) else {
        return not_live(USER_INFO_PATH);
    };
    if method != Method::GET {
        return Answer::error(405, "invalid_params", "this endpoint only takes GET");
    }
    if let Some(answer) = take_respond(shared, "user_info") {
        return answer;
    }
    let now = shared.now();
    let inner = shared.inner();
    let (_, scopes) = match inner.bearer(authorization.as_deref(), now) {
        Ok(bearer) => bearer,
        Err(answer) => return answer,
    };
    let not_authorized = |scope: &str| {
        Answer::error(
            401,
            "scope_not_authorized",
            format!(
                "The user did not authorize the scope required for completing this request \
                 ({scope})."
            ),
        )
    };
    if !scopes.iter().any(|s| s == SCOPE_USER_INFO_BASIC) {
        return not_authorized(SCOPE_USER_INFO_BASIC);
    }
    let params = match form::Params::parse(&query) {
        Ok(params) => params,
        Err(why) => return Answer::error(400, "invalid_params", why),
    };
    let Some(fields) = params.get("fields") else {
        return Answer::error(400, "invalid_params", "fields is required");
    };
    let mut user = Map::new();
    for field in fields.split(',') {
        let Some((_, scope)) = USER_FIELDS.iter().find(|(name, _)| *name == field) else {
            return Answer::error(
                400,
                "invalid_params",
                format!("fields has an unknown field {field:?}"),
            );
        };
        if !scopes.iter().any(|s| s == scope) {
            return not_authorized(scope);
        }
        let avatar = format!("https://p16-sign.tiktokcdn.com/{}", app.open_id);
        let username = &inner.options.creator.username;
        let value = match field {
            "open_id" => json!(app.open_id),
            "union_id" => json!(format!("{}.union", app.open_id)),
            "avatar_url" => json!(format!("{avatar}.jpeg")),
            "avatar_url_100" => json!(format!("{avatar}~100x100.jpeg")),
            "avatar_large_url" => json!(format!("{avatar}~1080x1080.jpeg")),
            "display_name" => json!(app.display_name),
            "bio_description" => json!(""),
            "profile_deep_link" => json!(format!("https://www.tiktok.com/@{username}")),
            "is_verified" => json!(false),
            "username" => json!(username),
            _ => json!(0),
        };
        user.insert(field.to_string(), value);
    }
    Answer::ok(json!({ "user": Value::Object(user) }))
}

/// Test controls and observations of the OAuth side.
impl TikTokServer {
    /// The authorization page, the stand-in for `https://www.tiktok.com/v2/auth/authorize/`.
    pub fn authorize_url(&self) -> String {
        self.url(AUTHORIZE_PATH)
    }

    /// Another person signs in from now on (a new `open_id` and display name in the answers
    /// of the token and user info endpoints).
    pub fn set_user(&self, open_id: &str, display_name: &str) {
        if let Some(app) = self.shared.inner().options.oauth.as_mut() {
            app.open_id = open_id.to_string();
            app.display_name = display_name.to_string();
        }
    }

    /// Whether the user consents on the authorization page (default: yes).
    pub fn set_consent(&self, allow: bool) {
        self.shared.inner().oauth.consent = allow;
    }

    /// The scopes a consent grants, of those requested; None: all requested.
    pub fn set_granted_scopes(&self, scopes: Option<Vec<String>>) {
        self.shared.inner().oauth.granted_scopes = scopes;
    }

    /// The user removes the app: every access and refresh token issued so far stops working
    /// (their refusals are not the client's violations).
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

    /// Successful revoke requests.
    pub fn revocations(&self) -> usize {
        self.shared.inner().oauth.revocations
    }

    /// The refresh token that works now for the newest grant still alive, if any.
    pub fn current_refresh_token(&self) -> Option<String> {
        let now = self.shared.now();
        let inner = self.shared.inner();
        inner
            .oauth
            .grants
            .iter()
            .rev()
            .find(|grant| grant.ended.is_none() && now < grant.refresh_expires)
            .map(|grant| grant.current_refresh().to_string())
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
            .filter(|access| matches!(inner.oauth.access(&access.token, now), Access::Valid(_)))
            .count()
    }
}

/// An OAuth answer's last touch: no caching of tokens, and the 200-for-errors quirk.
fn finish(app: &OAuthApp, mut answer: Answer) -> Answer {
    answer = answer
        .header("cache-control", "no-store".to_string())
        .header("pragma", "no-cache".to_string());
    if app.errors_with_status_200 && answer.body == Body::OAuthError && answer.status != 200 {
        answer.violation = Some(answer.is_violation());
        answer.status = 200;
    }
    answer
}
