//! The authorization endpoint (`GET /o/oauth2/v2/auth`) as the desktop guide describes it: the
//! request's checks, the loopback redirect, PKCE, offline access, the consent, the redirect
//! back with the code.

use hyper::body::Incoming;
use hyper::{Method, Request};

use super::super::answer::{drain, Body};
use super::super::Shared;
use super::*;
use crate::form::{self, Params};
use crate::pkce;

/// The parameters the endpoint takes; any other is refused.
const KNOWN_PARAMS: [&str; 12] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "access_type",
    "prompt",
    "include_granted_scopes",
    "login_hint",
    "enable_granular_consent",
];

/// A request that passed every check.
struct Valid {
    redirect_uri: String,
    scopes: Vec<String>,
    state: String,
    challenge: String,
    access_type: String,
    prompt: Vec<String>,
    include_granted_scopes: bool,
}

/// An error page: Google shows one instead of redirecting when the request is invalid.
fn page(status: u16, error: &str, description: impl Into<String>) -> Answer {
    let mut answer = Answer {
        body: Body::Html,
        ..Answer::oauth_error(error, description)
    };
    answer.status = status;
    answer
}

pub(in crate::youtube) async fn authorize(request: Request<Incoming>, shared: &Shared) -> Answer {
    let method = request.method().clone();
    let query = request.uri().query().unwrap_or("").to_string();
    drain(request.into_body()).await;
    let Some(app) = shared.inner().options.oauth.clone() else {
        return Answer::error(404, "global", "notFound", format!("Not Found: {AUTH_PATH}"));
    };
    if method != Method::GET {
        return page(
            405,
            "invalid_request",
            "The authorization endpoint takes GET",
        );
    }
    let valid = match check(&app, &query) {
        Ok(valid) => valid,
        Err((status, error, description)) => return page(status, error, description),
    };
    let now = shared.now();
    let mut inner = shared.inner();
    inner.oauth.decide(&app, valid, now)
}

/// Whether `uri` is a loopback redirect a desktop client may use: `http`, host `127.0.0.1`,
/// `[::1]` or `localhost`, an explicit port, any path, no fragment.
fn check_loopback(uri: &str) -> Result<(), (u16, &'static str, String)> {
    if uri.starts_with("urn:ietf:wg:oauth:2.0:oob") {
        return Err((
            400,
            "invalid_request",
            "The out-of-band (OOB) flow has been blocked: use a loopback redirect".to_string(),
        ));
    }
    let mismatch = |why: &str| {
        Err((
            400,
            "redirect_uri_mismatch",
            format!("redirect_uri {uri:?} is not a loopback address a desktop app may use: {why}"),
        ))
    };
    let Some(rest) = uri.strip_prefix("http://") else {
        return mismatch("it must begin with http://");
    };
    if uri.contains('#') {
        return Err((
            400,
            "invalid_request",
            format!("redirect_uri {uri:?} must not have a fragment"),
        ));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let Some((host, port)) = authority.rsplit_once(':') else {
        return mismatch("it must name the port the app listens on");
    };
    if !matches!(host, "127.0.0.1" | "[::1]" | "localhost") {
        return mismatch("the host must be 127.0.0.1, [::1] or localhost");
    }
    let numeric = !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && (1..=65535).contains(&port.parse::<u32>().unwrap_or(0));
    if !numeric {
        return mismatch("the port must be a number from 1 to 65535");
    }
    Ok(())
}

/// Every rule on the query, in the order Google's page names them.
fn check(app: &GoogleApp, query: &str) -> Result<Valid, (u16, &'static str, String)> {
    let invalid = |why: String| (400, "invalid_request", why);
    let params = Params::parse(query).map_err(invalid)?;
    if let Some(unknown) = params.names().find(|name| !KNOWN_PARAMS.contains(name)) {
        return Err(invalid(format!(
            "Parameter not allowed for this message type: {unknown}"
        )));
    }
    let required = |name: &str| {
        params
            .get(name)
            .map(str::to_string)
            .ok_or_else(|| invalid(format!("Missing required parameter: {name}")))
    };

    let client_id = required("client_id")?;
    if client_id != app.client_id {
        return Err((
            401,
            "invalid_client",
            "The OAuth client was not found.".to_string(),
        ));
    }
    let redirect_uri = required("redirect_uri")?;
    check_loopback(&redirect_uri)?;

    match params.get("response_type") {
        Some("code") => {}
        None => {
            return Err(invalid(
                "Required parameter is missing: response_type".to_string(),
            ))
        }
        Some(other) => {
            return Err((
                400,
                "unsupported_response_type",
                format!("Invalid response_type: {other}"),
            ))
        }
    }

    let scope = required("scope")?;
    let mut scopes: Vec<String> = Vec::new();
    let unknown: Vec<&str> = scope
        .split(' ')
        .filter(|name| !name.is_empty() && !KNOWN_SCOPES.contains(name))
        .collect();
    if !unknown.is_empty() {
        return Err((
            400,
            "invalid_scope",
            format!(
                "Some requested scopes were invalid. {{invalid={unknown:?}}} (scopes are \
                 separated by spaces)"
            ),
        ));
    }
    for name in scope.split(' ').filter(|name| !name.is_empty()) {
        if !scopes.iter().any(|s| s == name) {
            scopes.push(name.to_string());
        }
    }
    if scopes.is_empty() {
        return Err(invalid("Missing required parameter: scope".to_string()));
    }

    let challenge = required("code_challenge")?;
    match params.get("code_challenge_method") {
        Some("S256") => {}
        other => {
            return Err(invalid(format!(
                "code_challenge_method must be S256, not {:?}",
                other.unwrap_or("(none: plain)")
            )))
        }
    }
    if !pkce::is_s256_shaped(&challenge) {
        let hex = challenge.len() == 64 && challenge.bytes().all(|b| b.is_ascii_hexdigit());
        return Err(invalid(format!(
            "code_challenge must be BASE64URL(SHA256(code_verifier)) without padding: 43 \
             characters, not {}{}",
            challenge.len(),
            if hex { " (this one is hex)" } else { "" }
        )));
    }

    let state = required("state")?;

    let access_type = params.get("access_type").unwrap_or("").to_string();
    if !matches!(access_type.as_str(), "" | "online" | "offline") {
        return Err(invalid(format!("Invalid access_type: {access_type}")));
    }
    let prompt: Vec<String> = params
        .get("prompt")
        .unwrap_or("")
        .split(' ')
        .filter(|value| !value.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = prompt
        .iter()
        .find(|value| !matches!(value.as_str(), "none" | "consent" | "select_account"))
    {
        return Err(invalid(format!("Invalid prompt: {bad}")));
    }
    if prompt.len() > 1 && prompt.iter().any(|value| value == "none") {
        return Err(invalid(
            "prompt=none may not be combined with other values".to_string(),
        ));
    }
    let include_granted_scopes = match params.get("include_granted_scopes") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(invalid(format!("Invalid include_granted_scopes: {other}"))),
    };

    Ok(Valid {
        redirect_uri,
        scopes,
        state,
        challenge,
        access_type,
        prompt,
        include_granted_scopes,
    })
}

impl OAuthState {
    /// The user's decision on a valid request, as a redirect to its redirect_uri.
    fn decide(&mut self, app: &GoogleApp, valid: Valid, now: Duration) -> Answer {
        let before = self.granted_before(now);
        let silent = valid.prompt.iter().any(|p| p == "none");
        let mut granted: Vec<String> = match &self.granted_scopes {
            None => valid.scopes.clone(),
            Some(allowed) => valid
                .scopes
                .iter()
                .filter(|scope| allowed.contains(scope))
                .cloned()
                .collect(),
        };
        if valid.include_granted_scopes {
            for scope in &before {
                if !granted.contains(scope) {
                    granted.push(scope.clone());
                }
            }
        }
        let covered = valid.scopes.iter().all(|scope| before.contains(scope));
        let refusal = if silent && !covered {
            Some("consent_required")
        } else if !self.consent || granted.is_empty() {
            Some("access_denied")
        } else {
            None
        };
        let offline = (valid.access_type == "offline" || !app.offline_needs_access_type)
            && (valid.prompt.iter().any(|p| p == "consent") || !self.has_offline_grant(now));
        let query = match refusal {
            Some(error) => form::encode_pairs(&[("error", error), ("state", &valid.state)]),
            None => {
                let code = self.mint_code();
                let query = form::encode_pairs(&[
                    ("state", &valid.state),
                    ("code", &code),
                    ("scope", &granted.join(" ")),
                ]);
                self.codes.push(IssuedCode {
                    code,
                    redirect_uri: valid.redirect_uri.clone(),
                    challenge: valid.challenge.clone(),
                    scopes: granted.clone(),
                    offline,
                    issued: now,
                    used: false,
                });
                query
            }
        };
        self.authorizations.push(AuthorizationRecord {
            redirect_uri: valid.redirect_uri.clone(),
            requested: valid.scopes,
            granted: if refusal.is_some() {
                Vec::new()
            } else {
                granted
            },
            state: valid.state,
            access_type: valid.access_type,
            prompt: valid.prompt.join(" "),
            offline: refusal.is_none() && offline,
            outcome: refusal.unwrap_or("code").to_string(),
            at: now,
        });
        let separator = if valid.redirect_uri.contains('?') {
            '&'
        } else {
            '?'
        };
        let mut answer = Answer::empty(302).header(
            "location",
            format!("{}{separator}{query}", valid.redirect_uri),
        );
        answer.reason = refusal.unwrap_or("ok").to_string();
        answer.violation = Some(false);
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:54321/callback",
            "http://[::1]:9000/",
            "http://localhost:1/cb?x=1",
        ] {
            assert!(check_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://127.0.0.1:8080/",
            "http://127.0.0.1/cb",
            "http://example.com:80/",
            "http://127.0.0.1:70000/",
            "http://127.0.0.1:8080/#frag",
            "urn:ietf:wg:oauth:2.0:oob",
        ] {
            assert!(check_loopback(bad).is_err(), "{bad}");
        }
    }
}
