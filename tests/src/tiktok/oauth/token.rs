//! The token endpoint (`POST /v2/oauth/token/`: the authorization code and refresh token
//! grants) and revocation (`POST /v2/oauth/revoke/`), as "Manage User Access Tokens"
//! documents them.

use super::*;

use crate::form::is_form_content_type;
use crate::pkce::check_verifier;

/// The common front of both endpoints: POST, an injected fault, the form body.
async fn read_form(
    request: Request<Incoming>,
    shared: &Shared,
    endpoint: &str,
) -> Result<form::Params, Answer> {
    if request.method() != Method::POST {
        drain(request.into_body()).await;
        let mut answer = Answer::oauth_error("invalid_request", "this endpoint only takes POST");
        answer.status = 405;
        return Err(answer);
    }
    if let Some(mut answer) = take_respond(shared, endpoint) {
        drain(request.into_body()).await;
        answer.body = Body::OAuthError;
        return Err(answer);
    }
    let (parts, body) = request.into_parts();
    let body = read_small(body)
        .await
        .map_err(|why| Answer::oauth_error("invalid_request", why))?;
    let content_type = header(&parts.headers, "content-type");
    if !is_form_content_type(content_type) {
        return Err(Answer::oauth_error(
            "invalid_request",
            format!(
                "Content-Type must be {FORM_CONTENT_TYPE}, not {:?}",
                content_type.unwrap_or("(none)")
            ),
        ));
    }
    let body = std::str::from_utf8(&body)
        .map_err(|_| Answer::oauth_error("invalid_request", "the body is not UTF-8"))?;
    form::Params::parse(body).map_err(|why| Answer::oauth_error("invalid_request", why))
}

fn required<'a>(params: &'a form::Params, name: &str) -> Result<&'a str, Answer> {
    params
        .get(name)
        .ok_or_else(|| Answer::oauth_error("invalid_request", format!("{name} is required")))
}

/// client_key and client_secret, both required, desktop apps included.
fn authenticate(app: &OAuthApp, params: &form::Params) -> Result<(), Answer> {
    let refuse = |why: &str| Err(Answer::oauth_error("invalid_client", why));
    match params.get("client_key") {
        None => return refuse("client_key is required"),
        Some(key) if key != app.client_key => return refuse("client_key is unknown"),
        Some(_) => {}
    }
    match params.get("client_secret") {
        None => refuse("client_secret is required"),
        Some(secret) if secret != app.client_secret => {
            refuse("client_secret does not match the client_key")
        }
        Some(_) => Ok(()),
    }
}

pub(in crate::tiktok) async fn token(request: Request<Incoming>, shared: &Shared) -> Answer {
    let Some(app) = live(shared) else {
        drain(request.into_body()).await;
        return not_live(TOKEN_PATH);
    };
    let at = shared.now();
    let (grant_type, answer) = match read_form(request, shared, "token").await {
        Err(answer) => (String::new(), answer),
        Ok(params) => {
            let grant_type = params.get("grant_type").unwrap_or("").to_string();
            let now = shared.now();
            let mut inner = shared.inner();
            let state = &mut inner.oauth;
            let answer = match grant_type.as_str() {
                "" => Err(Answer::oauth_error(
                    "invalid_request",
                    "grant_type is required",
                )),
                _ => authenticate(&app, &params).and_then(|()| match grant_type.as_str() {
                    "authorization_code" => state.exchange_code(&app, &params, now),
                    "refresh_token" => state.refresh(&app, &params, now),
                    other => Err(Answer::oauth_error(
                        "unsupported_grant_type",
                        format!("grant_type {other:?} is not supported"),
                    )),
                }),
            };
            (grant_type, answer.unwrap_or_else(|answer| answer))
        }
    };
    let answer = finish(&app, answer);
    shared
        .inner()
        .oauth
        .token_requests
        .push(TokenRequestRecord {
            grant_type,
            outcome: answer.code.clone(),
            description: answer.message.clone(),
            at,
        });
    answer
}

pub(in crate::tiktok) async fn revoke(request: Request<Incoming>, shared: &Shared) -> Answer {
    let Some(app) = live(shared) else {
        drain(request.into_body()).await;
        return not_live(REVOKE_PATH);
    };
    let answer = match read_form(request, shared, "revoke").await {
        Err(answer) => answer,
        Ok(params) => {
            let mut inner = shared.inner();
            authenticate(&app, &params)
                .and_then(|()| required(&params, "token"))
                .and_then(|token| inner.oauth.revoke(token))
                .unwrap_or_else(|answer| answer)
        }
    };
    finish(&app, answer)
}

impl OAuthState {
    fn exchange_code(
        &mut self,
        app: &OAuthApp,
        params: &form::Params,
        now: Duration,
    ) -> Result<Answer, Answer> {
        let invalid_grant = |why: &str| Answer::oauth_error("invalid_grant", why);
        let code = required(params, "code")?;
        let issued = self
            .codes
            .iter_mut()
            .find(|issued| issued.code == code)
            .ok_or_else(|| invalid_grant("Authorization code is invalid."))?;
        if issued.used {
            return Err(invalid_grant("Authorization code has been used."));
        }
        issued.used = true;
        if now >= issued.issued + app.code_ttl {
            return Err(invalid_grant("Authorization code is expired."));
        }
        let redirect_uri = required(params, "redirect_uri")?;
        if redirect_uri != issued.redirect_uri {
            return Err(Answer::oauth_error(
                "invalid_request",
                "Redirect_uri is not matched with the uri when requesting code.",
            ));
        }
        let verifier = required(params, "code_verifier")?;
        check_verifier(verifier).map_err(|why| Answer::oauth_error("invalid_request", why))?;
        if pkce_challenge(verifier) != issued.challenge {
            return Err(Answer::oauth_error(
                "invalid_request",
                "Code verifier or code challenge is invalid.",
            ));
        }
        let scopes = issued.scopes.clone();
        let access = self.mint_access();
        let refresh = self.mint_refresh();
        self.grants.push(Grant {
            scopes,
            access: vec![self.access_token(access, now, app.access_ttl)],
            refresh: vec![refresh],
            refresh_expires: now + app.refresh_ttl,
            ended: None,
        });
        let grant = self.grants.last().expect("just pushed");
        Ok(issued_answer(app, grant, now))
    }

    fn refresh(
        &mut self,
        app: &OAuthApp,
        params: &form::Params,
        now: Duration,
    ) -> Result<Answer, Answer> {
        let invalid_grant = |why: &str| Answer::oauth_error("invalid_grant", why);
        let refresh = required(params, "refresh_token")?;
        let grant = self
            .grants
            .iter()
            .position(|grant| grant.refresh.iter().any(|r| r == refresh))
            .ok_or_else(|| invalid_grant("Refresh token is invalid."))?;
        let (access, next) = (self.mint_access(), self.mint_refresh());
        let access = self.access_token(access, now, app.access_ttl);
        let grant = &mut self.grants[grant];
        match grant.ended {
            Some(Ended::ByUser) => {
                return Err(
                    invalid_grant("Refresh token is revoked: the user removed the app.").excused(),
                )
            }
            Some(Ended::ByClient) => return Err(invalid_grant("Refresh token is revoked.")),
            None => {}
        }
        if grant.current_refresh() != refresh {
            return Err(invalid_grant(
                "Refresh token is invalid: a refresh replaced it with a newer one.",
            ));
        }
        if now >= grant.refresh_expires {
            return Err(invalid_grant("Refresh token is expired."));
        }
        grant.access.push(access);
        grant.refresh.push(next);
        let answer = issued_answer(app, grant, now);
        self.refreshes += 1;
        Ok(answer)
    }

    /// Ends the grant of an access token (expired ones still name their grant).
    fn revoke(&mut self, token: &str) -> Result<Answer, Answer> {
        if let Some(grant) = self
            .grants
            .iter_mut()
            .find(|grant| grant.access.iter().any(|access| access.token == token))
        {
            grant.ended.get_or_insert(Ended::ByClient);
            self.revocations += 1;
            let mut answer = Answer::ok(json!({}));
            answer.body = Body::Empty;
            return Ok(answer);
        }
        let why = if self
            .grants
            .iter()
            .any(|grant| grant.refresh.iter().any(|r| r == token))
        {
            "token must be the access_token, not a refresh token"
        } else {
            "token is not an access_token issued to this client"
        };
        Err(Answer::oauth_error("invalid_request", why))
    }
}

/// The documented success body for a grant's newest tokens.
fn issued_answer(app: &OAuthApp, grant: &Grant, now: Duration) -> Answer {
    let access = grant.access.last().expect("a grant has an access token");
    let mut answer = Answer::ok(json!({
        "access_token": access.token,
        "expires_in": app.access_ttl.as_secs(),
        "open_id": app.open_id,
        "refresh_expires_in": grant.refresh_expires.saturating_sub(now).as_secs(),
        "refresh_token": grant.current_refresh(),
        "scope": grant.scopes.join(","),
        "token_type": "Bearer",
    }));
    answer.body = Body::Json;
    answer
}
