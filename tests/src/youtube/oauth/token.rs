//! The token endpoint (`POST /token`: the authorization code and refresh token grants) and
//! revocation (`POST /revoke`), as the desktop guide documents them.

use hyper::body::Incoming;
use hyper::{Method, Request};
use serde_json::{json, Map, Value};

use super::super::answer::{drain, header, read_small, take_respond, Body};
use super::super::Shared;
use super::*;
use crate::form::{is_form_content_type, Params, FORM_CONTENT_TYPE};
use crate::pkce;

/// The common front of both endpoints: POST, an injected fault, the form body; also the
/// query's `token` (revoke takes it either way).
async fn read_form(
    request: Request<Incoming>,
    shared: &Shared,
    endpoint: &str,
) -> Result<(Params, Option<String>), Answer> {
    if request.method() != Method::POST {
        drain(request.into_body()).await;
        let mut answer = Answer::oauth_error("invalid_request", "This endpoint takes POST");
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
    let query_token = Params::parse(parts.uri.query().unwrap_or(""))
        .ok()
        .and_then(|params| params.get("token").map(str::to_string));
    if body.is_empty() && endpoint == "revoke" && query_token.is_some() {
        return Ok((Params::default(), query_token));
    }
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
        .map_err(|_| Answer::oauth_error("invalid_request", "The body is not UTF-8"))?;
    let params = Params::parse(body).map_err(|why| Answer::oauth_error("invalid_request", why))?;
    Ok((params, query_token))
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, Answer> {
    params.get(name).ok_or_else(|| {
        Answer::oauth_error(
            "invalid_request",
            format!("Missing required parameter: {name}"),
        )
    })
}

/// client_id and client_secret, both required of a desktop client.
fn authenticate(app: &GoogleApp, params: &Params) -> Result<(), Answer> {
    match params.get("client_id") {
        None => {
            return Err(Answer::oauth_error(
                "invalid_request",
                "Could not determine client ID from request.",
            ))
        }
        Some(id) if id != app.client_id => {
            return Err(Answer::oauth_error(
                "invalid_client",
                "The OAuth client was not found.",
            ))
        }
        Some(_) => {}
    }
    match params.get("client_secret") {
        None => Err(Answer::oauth_error(
            "invalid_request",
            "client_secret is missing.",
        )),
        Some(secret) if secret != app.client_secret => {
            Err(Answer::oauth_error("invalid_client", "Unauthorized"))
        }
        Some(_) => Ok(()),
    }
}

pub(in crate::youtube) async fn token(request: Request<Incoming>, shared: &Shared) -> Answer {
    let Some(app) = shared.inner().options.oauth.clone() else {
        drain(request.into_body()).await;
        return Answer::error(
            404,
            "global",
            "notFound",
            format!("Not Found: {TOKEN_PATH}"),
        );
    };
    let at = shared.now();
    let (grant_type, answer) = match read_form(request, shared, "token").await {
        Err(answer) => (String::new(), answer),
        Ok((params, _)) => {
            let grant_type = params.get("grant_type").unwrap_or("").to_string();
            let now = shared.now();
            let mut inner = shared.inner();
            let state = &mut inner.oauth;
            let answer = match grant_type.as_str() {
                "" => Err(Answer::oauth_error(
                    "invalid_request",
                    "Required parameter is missing: grant_type",
                )),
                _ => authenticate(&app, &params).and_then(|()| match grant_type.as_str() {
                    "authorization_code" => state.exchange_code(&app, &params, now),
                    "refresh_token" => state.refresh(&app, &params, now),
                    other => Err(Answer::oauth_error(
                        "unsupported_grant_type",
                        format!("Invalid grant_type: {other}"),
                    )),
                }),
            };
            (grant_type, answer.unwrap_or_else(|answer| answer))
        }
    };
    let answer = no_store(answer);
    let refresh_token_issued =
        answer.body == Body::Json && answer.data.get("refresh_token").is_some();
    shared
        .inner()
        .oauth
        .token_requests
        .push(TokenRequestRecord {
            grant_type,
            outcome: answer.reason.clone(),
            description: if answer.reason == "ok" {
                String::new()
            } else {
                answer.message.clone()
            },
            refresh_token_issued,
            at,
        });
    answer
}

pub(in crate::youtube) async fn revoke(request: Request<Incoming>, shared: &Shared) -> Answer {
    if shared.inner().options.oauth.is_none() {
        drain(request.into_body()).await;
        return Answer::error(
            404,
            "global",
            "notFound",
            format!("Not Found: {REVOKE_PATH}"),
        );
    }
    let answer = match read_form(request, shared, "revoke").await {
        Err(answer) => answer,
        Ok((params, query_token)) => {
            let token = params.get("token").map(str::to_string).or(query_token);
            match token {
                None => Answer::oauth_error("invalid_request", "Missing required parameter: token"),
                Some(token) => {
                    let now = shared.now();
                    shared.inner().oauth.revoke(&token, now)
                }
            }
        }
    };
    no_store(answer)
}

impl OAuthState {
    fn exchange_code(
        &mut self,
        app: &GoogleApp,
        params: &Params,
        now: Duration,
    ) -> Result<Answer, Answer> {
        let invalid_grant = |why: &str| Answer::oauth_error("invalid_grant", why);
        let code = required(params, "code")?;
        let issued = self
            .codes
            .iter_mut()
            .find(|issued| issued.code == code)
            .ok_or_else(|| invalid_grant("Malformed auth code."))?;
        if issued.used {
            return Err(invalid_grant("Bad Request").note("the code was used already"));
        }
        issued.used = true;
        if now >= issued.issued + app.code_ttl {
            return Err(invalid_grant("Bad Request").note("the code expired"));
        }
        let redirect_uri = required(params, "redirect_uri")?;
        if redirect_uri != issued.redirect_uri {
            return Err(
                Answer::oauth_error("redirect_uri_mismatch", "Bad Request").note(format!(
                    "redirect_uri {redirect_uri:?} is not the {:?} the code was asked with",
                    issued.redirect_uri
                )),
            );
        }
        let Some(verifier) = params.get("code_verifier") else {
            return Err(invalid_grant("Missing code verifier."));
        };
        if let Err(why) = pkce::check_verifier(verifier) {
            return Err(invalid_grant("Invalid code verifier.").note(why));
        }
        if pkce::s256_challenge(verifier) != issued.challenge {
            return Err(invalid_grant("Invalid code verifier.")
                .note("BASE64URL(SHA256(code_verifier)) is not the code_challenge"));
        }
        let scopes = issued.scopes.clone();
        let offline = issued.offline;
        let access = self.mint_access(now, app.access_ttl);
        let refresh = offline.then(|| self.mint_refresh());
        if refresh.is_some() {
            let live: Vec<usize> = (0..self.grants.len())
                .filter(|&index| self.grants[index].live_refresh(now))
                .collect();
            if live.len() >= MAX_REFRESH_TOKENS {
                self.grants[live[0]].ended = Some(Ended::Evicted);
            }
        }
        self.grants.push(Grant {
            scopes,
            access: vec![access],
            refresh,
            refresh_expires: app.refresh_ttl.filter(|_| offline).map(|ttl| now + ttl),
            ended: None,
        });
        let grant = self.grants.last().expect("just pushed");
        Ok(issued_answer(app, grant, true, now))
    }

    fn refresh(
        &mut self,
        app: &GoogleApp,
        params: &Params,
        now: Duration,
    ) -> Result<Answer, Answer> {
        let refused = || Answer::oauth_error("invalid_grant", "Token has been expired or revoked.");
        let refresh = required(params, "refresh_token")?;
        let index = self
            .grants
            .iter()
            .position(|grant| grant.refresh.as_deref() == Some(refresh))
            .ok_or_else(|| refused().note("unknown refresh token"))?;
        let access = self.mint_access(now, app.access_ttl);
        let grant = &mut self.grants[index];
        match grant.ended {
            Some(Ended::ByUser) => {
                return Err(refused()
                    .note("the user removed the app's access")
                    .excused())
            }
            Some(Ended::ByClient) => return Err(refused().note("the client revoked it")),
            Some(Ended::Evicted) => return Err(refused().note("a 101st refresh token ended it")),
            None => {}
        }
        if grant.refresh_expires.is_some_and(|at| now >= at) {
            return Err(refused().note("the refresh token expired"));
        }
        grant.access.push(access);
        let answer = issued_answer(app, grant, false, now);
        self.refreshes += 1;
        Ok(answer)
    }

    /// Ends the grant an access or refresh token belongs to.
    fn revoke(&mut self, token: &str, now: Duration) -> Answer {
        let found = self.grants.iter_mut().find(|grant| {
            grant.refresh.as_deref() == Some(token)
                || grant.access.iter().any(|access| access.token == token)
        });
        let refused = || Answer::oauth_error("invalid_token", "Token expired or revoked");
        let Some(grant) = found else {
            return refused().note("not a token issued here");
        };
        match grant.ended {
            Some(Ended::ByUser) => {
                return refused()
                    .note("the user removed the app's access")
                    .excused()
            }
            Some(_) => return refused().note("the grant was ended already"),
            None => {}
        }
        if grant.refresh.as_deref() == Some(token)
            && grant.refresh_expires.is_some_and(|at| now >= at)
        {
            return refused().note("the refresh token expired");
        }
        grant.ended = Some(Ended::ByClient);
        self.revocations += 1;
        Answer::empty(200)
    }
}

/// The documented success body for a grant's newest access token; the refresh token only on
/// the code exchange that gave one.
fn issued_answer(app: &GoogleApp, grant: &Grant, exchange: bool, now: Duration) -> Answer {
    let access = grant.access.last().expect("a grant has an access token");
    let mut body = Map::new();
    body.insert("access_token".into(), json!(access.token));
    body.insert("expires_in".into(), json!(app.access_ttl.as_secs()));
    if exchange {
        if let Some(refresh) = &grant.refresh {
            body.insert("refresh_token".into(), json!(refresh));
            if let Some(at) = grant.refresh_expires {
                body.insert(
                    "refresh_token_expires_in".into(),
                    json!(at.saturating_sub(now).as_secs()),
                );
            }
        }
    }
    body.insert("scope".into(), json!(grant.scopes.join(" ")));
    body.insert("token_type".into(), json!("Bearer"));
    Answer::json(Value::Object(body))
}
