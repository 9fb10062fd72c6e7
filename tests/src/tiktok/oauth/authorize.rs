//! The authorization page (`GET /v2/auth/authorize/`) as Login Kit for Desktop describes it:
//! the request's checks, PKCE with a hex challenge, the consent, the redirect back.

use super::*;

/// A redirect URI split into the parts matching compares.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RedirectUri<'a> {
    scheme: &'a str,
    host: &'a str,
    /// Digits, or `*` in a registered URI.
    port: &'a str,
    path: &'a str,
}

impl<'a> RedirectUri<'a> {
    /// Checks the desktop rules: absolute http(s), host `localhost` or `127.0.0.1`, an
    /// explicit port (`*` only when `registered`), no query or fragment.
    pub(super) fn parse(uri: &'a str, registered: bool) -> Result<RedirectUri<'a>, String> {
        let (scheme, rest) = uri
            .split_once("://")
            .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
            .ok_or("it must be absolute and begin with http or https")?;
        if uri.contains(['?', '#']) {
            return Err("it must be static: no query or fragment".to_string());
        }
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, ""),
        };
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or("it must have a port number")?;
        if !matches!(host, "localhost" | "127.0.0.1") {
            return Err(format!(
                "the host must be localhost or 127.0.0.1, not {host:?}"
            ));
        }
        let numeric = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && (1..=65535).contains(&port.parse::<u32>().unwrap_or(0));
        if !(numeric || (registered && port == "*")) {
            return Err(format!("{port:?} is not a port number"));
        }
        Ok(RedirectUri {
            scheme,
            host,
            port,
            path,
        })
    }

    /// Whether `self` (as requested) is this registered URI, `*` matching any port.
    fn matches(&self, registered: &RedirectUri<'_>) -> bool {
        self.scheme == registered.scheme
            && self.host == registered.host
            && self.path == registered.path
            && (registered.port == "*" || self.port == registered.port)
    }
}

/// A request that passed every check.
struct Valid {
    redirect_uri: String,
    scopes: Vec<String>,
    state: String,
    challenge: String,
}

/// An error page: TikTok shows one instead of redirecting when the request is invalid.
fn page(status: u16, error: &str, description: impl Into<String>) -> Answer {
    Answer {
        body: Body::Html,
        ..Answer::error(status, error, description)
    }
}

pub(in crate::tiktok) async fn authorize(request: Request<Incoming>, shared: &Shared) -> Answer {
    let method = request.method().clone();
    let query = request.uri().query().unwrap_or("").to_string();
    drain(request.into_body()).await;
    let Some(app) = live(shared) else {
        return not_live(AUTHORIZE_PATH);
    };
    if method != Method::GET {
        return page(
            405,
            "invalid_request",
            "the authorization page only takes GET",
        );
    }
    let valid = match check(&app, &query) {
        Ok(valid) => valid,
        Err((error, description)) => return page(400, error, description),
    };
    let now = shared.now();
    shared.inner().oauth.decide(valid, now)
}

/// Every documented rule on the query, in the order TikTok's page names them.
fn check(app: &OAuthApp, query: &str) -> Result<Valid, (&'static str, String)> {
    let invalid = |why: String| ("invalid_request", why);
    let params = form::Params::parse(query).map_err(invalid)?;
    let required = |name: &str| {
        params
            .get(name)
            .map(str::to_string)
            .ok_or_else(|| invalid(format!("{name} is required")))
    };

    match params.get("client_key") {
        Some(key) if key == app.client_key => {}
        Some(key) => return Err(("invalid_client", format!("client_key {key:?} is unknown"))),
        None => return Err(("invalid_client", "client_key is required".to_string())),
    }

    let redirect_uri = required("redirect_uri")?;
    let requested = RedirectUri::parse(&redirect_uri, false)
        .map_err(|why| invalid(format!("redirect_uri {redirect_uri:?}: {why}")))?;
    let registered = app
        .redirect_uris
        .iter()
        .any(|uri| RedirectUri::parse(uri, true).is_ok_and(|uri| requested.matches(&uri)));
    if !registered {
        return Err(invalid(format!(
            "redirect_uri {redirect_uri:?} is not one of the registered {:?}",
            app.redirect_uris
        )));
    }

    match params.get("response_type") {
        Some("code") => {}
        other => {
            return Err((
                "unsupported_response_type",
                format!("response_type must be code, not {:?}", other.unwrap_or("")),
            ))
        }
    }

    let scope = params
        .get("scope")
        .ok_or_else(|| ("invalid_scope", "scope is required".to_string()))?;
    let mut scopes: Vec<String> = Vec::new();
    for name in scope.split(',') {
        if !KNOWN_SCOPES.contains(&name) {
            return Err((
                "invalid_scope",
                format!(
                    "scope {name:?} is not one of the app's scopes {KNOWN_SCOPES:?} \
                     (scopes are separated by commas, without spaces)"
                ),
            ));
        }
        if !scopes.iter().any(|s| s == name) {
            scopes.push(name.to_string());
        }
    }

    let state = required("state")?;

    let challenge = required("code_challenge")?;
    match params.get("code_challenge_method") {
        Some("S256") => {}
        other => {
            return Err(invalid(format!(
                "code_challenge_method must be S256, not {:?}",
                other.unwrap_or("")
            )))
        }
    }
    check_challenge(&challenge).map_err(invalid)?;

    Ok(Valid {
        redirect_uri,
        scopes,
        state,
        challenge,
    })
}

/// TikTok's desktop challenge is the SHA-256 of the verifier in lowercase hex: 64 characters.
fn check_challenge(challenge: &str) -> Result<(), String> {
    let hex = challenge.len() == 64
        && challenge
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex {
        return Ok(());
    }
    let base64url = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    Err(if base64url {
        "code_challenge looks like base64url (RFC 7636); TikTok's desktop flow wants the \
         SHA-256 of the code_verifier in lowercase hex (64 characters)"
            .to_string()
    } else {
        format!(
            "code_challenge must be the SHA-256 of the code_verifier in lowercase hex \
             (64 characters), not {} characters",
            challenge.len()
        )
    })
}

impl OAuthState {
    /// The user's decision on a valid request, as a redirect to its redirect_uri.
    fn decide(&mut self, valid: Valid, now: Duration) -> Answer {
        let granted: Vec<String> = match &self.granted_scopes {
            None => valid.scopes.clone(),
            Some(allowed) => valid
                .scopes
                .iter()
                .filter(|scope| allowed.contains(scope))
                .cloned()
                .collect(),
        };
        let refused = !self.consent || granted.is_empty();
        let (outcome, query) = if refused {
            let description = if self.consent {
                "The user granted none of the requested scopes."
            } else {
                "The user denied the authorization request."
            };
            let query = form::encode_pairs(&[
                ("error", "access_denied"),
                ("error_description", description),
                ("state", &valid.state),
            ]);
            ("access_denied", query)
        } else {
            let code = self.mint_code();
            let query = form::encode_pairs(&[
                ("code", &code),
                ("scopes", &granted.join(",")),
                ("state", &valid.state),
            ]);
            self.codes.push(IssuedCode {
                code,
                redirect_uri: valid.redirect_uri.clone(),
                challenge: valid.challenge,
                scopes: granted.clone(),
                issued: now,
                used: false,
            });
            ("code", query)
        };
        self.authorizations.push(AuthorizationRecord {
            redirect_uri: valid.redirect_uri.clone(),
            requested: valid.scopes,
            granted: if refused { Vec::new() } else { granted },
            state: valid.state,
            outcome: outcome.to_string(),
            at: now,
        });
        let mut answer = Answer::error(302, if refused { "access_denied" } else { "ok" }, "")
            .header("location", format!("{}?{query}", valid.redirect_uri));
        answer.body = Body::Empty;
        answer.violation = Some(false);
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris() {
        let registered = RedirectUri::parse("http://127.0.0.1:*/callback/", true).unwrap();
        let ok = RedirectUri::parse("http://127.0.0.1:54321/callback/", false).unwrap();
        assert!(ok.matches(&registered));
        for wrong in [
            "http://127.0.0.1:54321/callback",
            "https://127.0.0.1:54321/callback/",
            "http://localhost:54321/callback/",
        ] {
            let wrong = RedirectUri::parse(wrong, false).unwrap();
            assert!(!wrong.matches(&registered), "{wrong:?}");
        }
        assert!(RedirectUri::parse("http://127.0.0.1:*/callback/", false).is_err());
        assert!(RedirectUri::parse("http://127.0.0.1/callback/", true).is_err());
        assert!(RedirectUri::parse("http://example.com:80/callback/", true).is_err());
        assert!(RedirectUri::parse("http://127.0.0.1:1/cb/?x=1", true).is_err());
        assert!(RedirectUri::parse("http://127.0.0.1:70000/cb/", false).is_err());
    }

    #[test]
    fn challenges() {
        assert!(check_challenge(&pkce_challenge("a".repeat(43).as_str())).is_ok());
        let base64url = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(check_challenge(base64url)
            .unwrap_err()
            .contains("base64url"));
        assert!(check_challenge(&pkce_challenge("x").to_uppercase()).is_err());
    }
}
