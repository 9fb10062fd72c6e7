//! The TikTok server's OAuth v2 side on its own, driven by a plain HTTP client: the desktop
//! sign-in end to end, every refusal of the authorization page and the token endpoint,
//! refresh token rotation, expiry on the virtual clock, revocation, user info, and issued
//! tokens on the Content Posting calls. PKCE is computed here with `sha2`, independently of
//! the server's own code.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use upq_tests::http;
use upq_tests::tiktok::client::{
    authorize, call_with, code as error_code, direct_body, json, oauth_error, param, post_form,
    redirect_params, source_info, user_info,
};
use upq_tests::tiktok::{
    Fault, OAuthApp, RateLimits, TikTokOptions, TikTokServer, CREATOR_INFO_PATH, DIRECT_INIT_PATH,
    INBOX_INIT_PATH, REVOKE_PATH, TOKEN_PATH,
};

/// A port the registered `http://127.0.0.1:*/callback/` matches; nothing listens on it.
const REDIRECT: &str = "http://127.0.0.1:48123/callback/";
const ALL_SCOPES: &str = "user.info.basic,video.publish,video.upload";
const DAY: Duration = Duration::from_secs(24 * 3600);

fn server() -> TikTokServer {
    server_with(OAuthApp::default())
}

/// The virtual clock stands still but for `advance`, so expiries land exactly.
fn server_with(app: OAuthApp) -> TikTokServer {
    TikTokServer::start(TikTokOptions {
        oauth: Some(app),
        time_scale: 0.0,
        ..TikTokOptions::default()
    })
}

/// A code verifier (64 characters of the unreserved set), distinct per `tag`.
fn verifier(tag: &str) -> String {
    format!("{tag}-{}", "Verifier0123456789._~".repeat(4))[..64].to_string()
}

/// TikTok desktop PKCE: SHA-256 of the verifier, lowercase hex.
fn hex_challenge(verifier: &str) -> String {
    Sha256::digest(verifier.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// RFC 7636 S256, which TikTok's desktop flow does not take.
fn base64url_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The query of a valid authorization request.
fn authorize_params<'a>(
    scope: &'a str,
    state: &'a str,
    challenge: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("client_key", "upq-test-client-key"),
        ("scope", scope),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// Signs in up to the code; returns (code, scopes granted).
fn code_for(server: &TikTokServer, scope: &str, verifier: &str) -> (String, String) {
    let challenge = hex_challenge(verifier);
    let response = authorize(server, &authorize_params(scope, "s1", &challenge));
    let params = redirect_params(&response, REDIRECT);
    assert_eq!(param(&params, "state").as_deref(), Some("s1"));
    (
        param(&params, "code").expect("a code"),
        param(&params, "scopes").expect("scopes"),
    )
}

fn exchange(server: &TikTokServer, code: &str, verifier: &str) -> http::Response {
    post_form(
        server,
        TOKEN_PATH,
        &[
            ("client_key", "upq-test-client-key"),
            ("client_secret", "upq-test-client-secret"),
            ("code", code),
            ("grant_type", "authorization_code"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
}

fn refresh(server: &TikTokServer, refresh_token: &str) -> http::Response {
    post_form(
        server,
        TOKEN_PATH,
        &[
            ("client_key", "upq-test-client-key"),
            ("client_secret", "upq-test-client-secret"),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
}

/// The whole sign-in; returns the token answer's body.
fn sign_in(server: &TikTokServer, scope: &str) -> Value {
    let verifier = verifier("sign-in");
    let (code, _) = code_for(server, scope, &verifier);
    let response = exchange(server, &code, &verifier);
    let body = json(&response);
    assert_eq!(response.status, 200, "{body}");
    body
}

fn token_of(body: &Value, key: &str) -> String {
    body[key].as_str().expect(key).to_string()
}

fn creator_info(server: &TikTokServer, token: &str) -> http::Response {
    call_with(server, token, CREATOR_INFO_PATH, &json!({}))
}

/// Asserts an OAuth refusal: status, `error`, and one more violation than `before`.
fn assert_refused(
    server: &TikTokServer,
    response: &http::Response,
    status: u16,
    error: &str,
    before: usize,
) {
    let body = json(response);
    assert_eq!(response.status, status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    assert!(body["log_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(
        server.violations().len(),
        before + 1,
        "{:?}",
        server.violations()
    );
}

#[test]
fn desktop_sign_in_works_end_to_end() {
    let server = server();
    let verifier = verifier("good");
    let challenge = hex_challenge(&verifier);
    // A state with characters the redirect must escape comes back intact.
    let state = "st@te&x=1 2";
    let response = authorize(&server, &authorize_params(ALL_SCOPES, state, &challenge));
    let location = response.header("location").unwrap_or("").to_string();
    let params = redirect_params(&response, REDIRECT);
    assert_eq!(param(&params, "state").as_deref(), Some(state));
    assert_eq!(param(&params, "scopes").as_deref(), Some(ALL_SCOPES));
    let code = param(&params, "code").unwrap();
    assert!(
        !location.contains(&code),
        "the code has characters a redirect escapes: {location}"
    );

    let response = exchange(&server, &code, &verifier);
    let body = json(&response);
    assert_eq!(response.status, 200, "{body}");
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let access = token_of(&body, "access_token");
    let refresh_token = token_of(&body, "refresh_token");
    assert!(access.starts_with("act."), "{access}");
    assert!(refresh_token.starts_with("rft."), "{refresh_token}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 86_400);
    assert_eq!(body["refresh_expires_in"], 31_536_000);
    assert_eq!(body["open_id"], "upq-test-open-id");
    assert_eq!(body["scope"], ALL_SCOPES);

    // The issued token works on the Content Posting API and the Display API.
    let response = creator_info(&server, &access);
    assert_eq!(response.status, 200, "{}", json(&response));
    let init = call_with(
        &server,
        &access,
        DIRECT_INIT_PATH,
        &direct_body("SELF_ONLY", source_info(1000, 1000, 1)),
    );
    assert_eq!(init.status, 200, "{}", json(&init));
    let response = user_info(&server, &access, "open_id,display_name,avatar_url");
    let body = json(&response);
    assert_eq!(response.status, 200, "{body}");
    assert_eq!(body["error"]["code"], "ok");
    assert_eq!(body["data"]["user"]["open_id"], "upq-test-open-id");
    assert_eq!(body["data"]["user"]["display_name"], "upq test creator");
    assert!(body["data"]["user"]["avatar_url"].is_string());
    assert!(body["data"]["user"].get("union_id").is_none());

    // The fixed token still works beside the issued ones.
    assert_eq!(creator_info(&server, &server.token()).status, 200);

    assert!(server.violations().is_empty(), "{:?}", server.violations());
    assert_eq!(server.valid_access_tokens(), 1);
    assert_eq!(server.current_refresh_token(), Some(refresh_token));
    let requests = server.token_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].grant_type, "authorization_code");
    assert_eq!(requests[0].outcome, "ok");
    let authorizations = server.authorizations();
    assert_eq!(authorizations.len(), 1);
    assert_eq!(authorizations[0].redirect_uri, REDIRECT);
    assert_eq!(authorizations[0].outcome, "code");
    assert_eq!(authorizations[0].granted.join(","), ALL_SCOPES);
}

#[test]
fn without_an_app_the_oauth_endpoints_do_not_exist() {
    let server = TikTokServer::start(TikTokOptions::default());
    let challenge = hex_challenge(&verifier("none"));
    let response = authorize(&server, &authorize_params(ALL_SCOPES, "s", &challenge));
    assert_eq!(response.status, 404);
    assert_eq!(post_form(&server, TOKEN_PATH, &[]).status, 404);
    assert_eq!(creator_info(&server, "act.test-token").status, 200);
}

type Params<'a> = Vec<(&'a str, &'a str)>;

/// `params` with `name` removed, then added with `value` when there is one.
fn replaced<'a>(
    params: &[(&'a str, &'a str)],
    name: &'a str,
    value: Option<&'a str>,
) -> Params<'a> {
    let mut params: Params = params.iter().filter(|(n, _)| *n != name).copied().collect();
    if let Some(value) = value {
        params.push((name, value));
    }
    params
}

#[test]
fn every_bad_authorization_request_gets_an_error_page() {
    let server = server();
    let challenge = hex_challenge(&verifier("bad"));
    let good = authorize_params(ALL_SCOPES, "s", &challenge);
    let with = |name: &'static str, value: Option<&'static str>| replaced(&good, name, value);
    let upper = challenge.to_uppercase();
    let mut uppercase = with("code_challenge", None);
    uppercase.push(("code_challenge", &upper));
    let mut repeated = good.clone();
    repeated.push(("state", "again"));
    let cases: Vec<(&str, Params, &str)> = vec![
        (
            "wrong client_key",
            with("client_key", Some("someone-else")),
            "client_key",
        ),
        ("no client_key", with("client_key", None), "client_key"),
        (
            "unregistered path",
            with("redirect_uri", Some("http://127.0.0.1:48123/other/")),
            "not one of the registered",
        ),
        (
            "https instead of http",
            with("redirect_uri", Some("https://127.0.0.1:48123/callback/")),
            "not one of the registered",
        ),
        (
            "localhost instead of 127.0.0.1",
            with("redirect_uri", Some("http://localhost:48123/callback/")),
            "not one of the registered",
        ),
        (
            "no port",
            with("redirect_uri", Some("http://127.0.0.1/callback/")),
            "port",
        ),
        (
            "not loopback",
            with("redirect_uri", Some("http://example.com:80/callback/")),
            "localhost or 127.0.0.1",
        ),
        (
            "a query on the redirect_uri",
            with("redirect_uri", Some("http://127.0.0.1:48123/callback/?x=1")),
            "static",
        ),
        (
            "no redirect_uri",
            with("redirect_uri", None),
            "redirect_uri",
        ),
        (
            "response_type token",
            with("response_type", Some("token")),
            "response_type",
        ),
        ("no scope", with("scope", None), "scope"),
        (
            "space-separated scopes",
            with("scope", Some("user.info.basic video.upload")),
            "commas",
        ),
        (
            "unknown scope",
            with("scope", Some("user.info.basic,video.list")),
            "video.list",
        ),
        ("no state", with("state", None), "state"),
        (
            "no code_challenge",
            with("code_challenge", None),
            "code_challenge",
        ),
        (
            "plain method",
            with("code_challenge_method", Some("plain")),
            "code_challenge_method",
        ),
        ("uppercase hex", uppercase, "lowercase hex"),
        ("a repeated parameter", repeated, "repeated"),
    ];
    for (index, (what, params, why)) in cases.iter().enumerate() {
        let response = authorize(&server, params);
        let page = String::from_utf8_lossy(&response.body).to_string();
        assert_eq!(response.status, 400, "{what}: {page}");
        assert!(response.header("location").is_none(), "{what}");
        assert!(
            response
                .header("content-type")
                .is_some_and(|ct| ct.starts_with("text/html")),
            "{what}"
        );
        let violations = server.violations();
        assert_eq!(violations.len(), index + 1, "{what}: {violations:?}");
        assert!(
            violations[index].contains(why),
            "{what}: {:?} does not say {why:?}",
            violations[index]
        );
    }
    assert!(server.authorizations().is_empty(), "no code was issued");
}

#[test]
fn a_base64url_challenge_is_refused() {
    let server = server();
    let verifier = verifier("b64");
    let challenge = base64url_challenge(&verifier);
    assert_eq!(challenge.len(), 43);
    let response = authorize(&server, &authorize_params(ALL_SCOPES, "s", &challenge));
    assert_eq!(response.status, 400);
    assert!(String::from_utf8_lossy(&response.body).contains("hex"));
    let violations = server.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].contains("base64url"), "{violations:?}");
}

#[test]
fn a_refused_or_partial_consent_is_redirected_as_such() {
    let server = server();
    server.set_consent(false);
    let challenge = hex_challenge(&verifier("deny"));
    let response = authorize(&server, &authorize_params(ALL_SCOPES, "s9", &challenge));
    let params = redirect_params(&response, REDIRECT);
    assert_eq!(param(&params, "error").as_deref(), Some("access_denied"));
    assert!(param(&params, "error_description").is_some());
    assert_eq!(param(&params, "state").as_deref(), Some("s9"));
    assert_eq!(param(&params, "code"), None);

    // The user grants one of the scopes asked for: the token carries only that one.
    server.set_consent(true);
    server.set_granted_scopes(Some(vec!["video.upload".to_string()]));
    let verifier = verifier("partial");
    let (code, scopes) = code_for(&server, ALL_SCOPES, &verifier);
    assert_eq!(scopes, "video.upload");
    let body = json(&exchange(&server, &code, &verifier));
    assert_eq!(body["scope"], "video.upload");
    let access = token_of(&body, "access_token");
    assert!(server.violations().is_empty(), "{:?}", server.violations());

    let inbox = call_with(
        &server,
        &access,
        INBOX_INIT_PATH,
        &json!({"source_info": source_info(1000, 1000, 1)}),
    );
    assert_eq!(inbox.status, 200, "{}", json(&inbox));
    let response = creator_info(&server, &access);
    assert_eq!(response.status, 401);
    assert_eq!(error_code(&response), "scope_not_authorized");
    let response = user_info(&server, &access, "open_id");
    assert_eq!(response.status, 401);
    assert_eq!(error_code(&response), "scope_not_authorized");
    assert_eq!(server.violations().len(), 2, "{:?}", server.violations());
    let records = server.authorizations();
    assert_eq!(records[0].outcome, "access_denied");
    assert_eq!(records[1].granted, ["video.upload"]);
}

/// An exchange of `code` with the usual fields, then `changes` applied (None removes one).
fn exchange_with(
    server: &TikTokServer,
    code: &str,
    verifier: &str,
    changes: &[(&str, Option<&str>)],
) -> http::Response {
    let mut pairs = vec![
        ("client_key", "upq-test-client-key"),
        ("client_secret", "upq-test-client-secret"),
        ("code", code),
        ("grant_type", "authorization_code"),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ];
    for (name, value) in changes {
        pairs = replaced(&pairs, name, *value);
    }
    post_form(server, TOKEN_PATH, &pairs)
}

#[test]
fn the_token_endpoint_refuses_a_bad_exchange() {
    let server = server();
    let other_verifier = verifier("other");
    let verifier = verifier("exchange");

    // Refused before the code is looked at: the code still works afterwards.
    let (code, _) = code_for(&server, ALL_SCOPES, &verifier);
    for (change, status, error) in [
        (
            ("client_secret", Some("not-the-secret")),
            401,
            "invalid_client",
        ),
        (("client_secret", None), 401, "invalid_client"),
        (("client_key", Some("someone-else")), 401, "invalid_client"),
        (
            ("grant_type", Some("password")),
            400,
            "unsupported_grant_type",
        ),
        (("grant_type", None), 400, "invalid_request"),
    ] {
        let before = server.violations().len();
        let response = exchange_with(&server, &code, &verifier, &[change]);
        assert_refused(&server, &response, status, error, before);
    }
    let before = server.violations().len();
    let as_json = http::request(
        "POST",
        &server.url(TOKEN_PATH),
        &[("Content-Type", "application/json")],
        json!({"code": code, "grant_type": "authorization_code"})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_refused(&server, &as_json, 400, "invalid_request", before);
    let response = exchange(&server, &code, &verifier);
    assert_eq!(response.status, 200, "{}", json(&response));

    // Used once: a second exchange is refused.
    let before = server.violations().len();
    let again = exchange(&server, &code, &verifier);
    assert_refused(&server, &again, 400, "invalid_grant", before);

    // Refused after the code is looked at: each needs a code of its own, which it spends.
    for (change, why) in [
        (
            ("redirect_uri", Some("http://127.0.0.1:48124/callback/")),
            "Redirect_uri",
        ),
        (("redirect_uri", None), "redirect_uri is required"),
        (("code_verifier", None), "code_verifier is required"),
        (("code_verifier", Some("too-short")), "43 to 128"),
        (
            ("code_verifier", Some(other_verifier.as_str())),
            "Code verifier or code challenge is invalid.",
        ),
    ] {
        let (code, _) = code_for(&server, ALL_SCOPES, &verifier);
        let before = server.violations().len();
        let response = exchange_with(&server, &code, &verifier, &[change]);
        assert_refused(&server, &response, 400, "invalid_request", before);
        let description = json(&response)["error_description"].to_string();
        assert!(
            description.contains(why),
            "{description} does not say {why:?}"
        );
        let again = exchange(&server, &code, &verifier);
        assert_refused(&server, &again, 400, "invalid_grant", before + 1);
    }

    let outcomes: Vec<String> = server
        .token_requests()
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes.len(), 6 + 1 + 1 + 5 * 2);
    assert_eq!(outcomes.iter().filter(|o| *o == "ok").count(), 1);
}

#[test]
fn a_code_expires_after_five_minutes() {
    let server = server();
    let verifier = verifier("late");
    let (code, _) = code_for(&server, ALL_SCOPES, &verifier);
    server.advance(Duration::from_secs(5 * 60));
    let response = exchange(&server, &code, &verifier);
    assert_refused(&server, &response, 400, "invalid_grant", 0);
    assert!(json(&response)["error_description"]
        .as_str()
        .unwrap()
        .contains("expired"));
}

#[test]
fn a_refresh_rotates_the_refresh_token_and_the_old_one_is_refused() {
    let server = server();
    let first = sign_in(&server, ALL_SCOPES);
    let first_refresh = token_of(&first, "refresh_token");
    let first_access = token_of(&first, "access_token");

    server.advance(DAY / 2);
    let response = refresh(&server, &first_refresh);
    let second = json(&response);
    assert_eq!(response.status, 200, "{second}");
    let second_refresh = token_of(&second, "refresh_token");
    let second_access = token_of(&second, "access_token");
    assert_ne!(second_refresh, first_refresh);
    assert_ne!(second_access, first_access);
    assert_eq!(second["scope"], ALL_SCOPES);
    assert_eq!(second["expires_in"], 86_400);
    // Still 365 days from the first issuance, not from this refresh.
    assert_eq!(second["refresh_expires_in"], 31_536_000 - 12 * 3600);
    assert_eq!(creator_info(&server, &second_access).status, 200);
    assert_eq!(
        creator_info(&server, &first_access).status,
        200,
        "a refresh leaves the earlier access token to its own expiry"
    );
    assert!(server.violations().is_empty(), "{:?}", server.violations());

    // The replaced refresh token: refused, and the client's violation.
    assert_refused(
        &server,
        &refresh(&server, &first_refresh),
        400,
        "invalid_grant",
        0,
    );
    assert!(server.violations()[0].contains("replaced"));

    // The grant itself lives on.
    let response = refresh(&server, &second_refresh);
    assert_eq!(response.status, 200, "{}", json(&response));
    let third_refresh = token_of(&json(&response), "refresh_token");
    assert_eq!(server.refresh_count(), 2);
    assert_eq!(server.current_refresh_token(), Some(third_refresh));
    let grants: Vec<String> = server
        .token_requests()
        .into_iter()
        .map(|r| format!("{} {}", r.grant_type, r.outcome))
        .collect();
    assert_eq!(
        grants,
        [
            "authorization_code ok",
            "refresh_token ok",
            "refresh_token invalid_grant",
            "refresh_token ok"
        ]
    );
}

#[test]
fn errors_can_come_with_status_200() {
    let server = server_with(OAuthApp {
        errors_with_status_200: true,
        ..OAuthApp::default()
    });
    let first = sign_in(&server, ALL_SCOPES);
    let old = token_of(&first, "refresh_token");
    assert_eq!(refresh(&server, &old).status, 200);
    let response = refresh(&server, &old);
    assert_eq!(response.status, 200);
    assert_eq!(oauth_error(&response), "invalid_grant");
    assert_eq!(server.violations().len(), 1, "{:?}", server.violations());
}

#[test]
fn an_expired_access_token_is_refused_like_an_unknown_one() {
    let server = server();
    let body = sign_in(&server, ALL_SCOPES);
    let access = token_of(&body, "access_token");

    let unknown = creator_info(&server, "act.never-issued");
    assert_eq!(unknown.status, 401);
    assert_eq!(error_code(&unknown), "access_token_invalid");
    assert_eq!(server.violations().len(), 1);

    server.advance(DAY);
    assert_eq!(server.valid_access_tokens(), 0);
    let expired = creator_info(&server, &access);
    assert_eq!(expired.status, 401);
    assert_eq!(error_code(&expired), "access_token_invalid");
    assert_eq!(
        json(&expired)["error"]["message"],
        json(&unknown)["error"]["message"]
    );
    let violations = server.violations();
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert!(violations[1].contains("expired"), "{violations:?}");

    // A refresh brings a working token back.
    let response = refresh(&server, &token_of(&body, "refresh_token"));
    let access = token_of(&json(&response), "access_token");
    assert_eq!(creator_info(&server, &access).status, 200);
    assert_eq!(server.valid_access_tokens(), 1);

    // Expired early by the test: refused, but not the client's doing.
    server.expire_access_tokens();
    let response = creator_info(&server, &access);
    assert_eq!(response.status, 401);
    assert_eq!(error_code(&response), "access_token_invalid");
    assert_eq!(server.violations().len(), 2, "{:?}", server.violations());
    assert_eq!(server.valid_access_tokens(), 0);
}

#[test]
fn a_refresh_token_expires_a_year_after_sign_in() {
    let server = server();
    let body = sign_in(&server, ALL_SCOPES);
    server.advance(365 * DAY);
    assert_eq!(server.current_refresh_token(), None);
    let response = refresh(&server, &token_of(&body, "refresh_token"));
    assert_refused(&server, &response, 400, "invalid_grant", 0);
    assert!(json(&response)["error_description"]
        .as_str()
        .unwrap()
        .contains("expired"));
}

#[test]
fn a_revoke_ends_the_grant() {
    let server = server();
    let body = sign_in(&server, ALL_SCOPES);
    let access = token_of(&body, "access_token");
    let refresh_token = token_of(&body, "refresh_token");
    let revoke = |secret: &str, token: &str| {
        post_form(
            &server,
            REVOKE_PATH,
            &[
                ("client_key", "upq-test-client-key"),
                ("client_secret", secret),
                ("token", token),
            ],
        )
    };

    assert_refused(&server, &revoke("wrong", &access), 401, "invalid_client", 0);
    assert_refused(
        &server,
        &revoke("upq-test-client-secret", &refresh_token),
        400,
        "invalid_request",
        1,
    );
    assert_eq!(server.revocations(), 0);
    assert_eq!(creator_info(&server, &access).status, 200);

    let response = revoke("upq-test-client-secret", &access);
    assert_eq!(response.status, 200);
    assert!(response.body.is_empty(), "the documented empty answer");
    assert_eq!(server.revocations(), 1);
    assert_eq!(server.valid_access_tokens(), 0);
    assert_eq!(server.current_refresh_token(), None);

    // The client revoked it itself: using either token again is its violation.
    let response = creator_info(&server, &access);
    assert_eq!(response.status, 401);
    assert_eq!(error_code(&response), "access_token_invalid");
    assert_refused(
        &server,
        &refresh(&server, &refresh_token),
        400,
        "invalid_grant",
        3,
    );
}

#[test]
fn when_the_user_removes_the_app_every_token_stops_without_blame() {
    let server = server();
    let body = sign_in(&server, ALL_SCOPES);
    server.revoke_grants();
    let response = creator_info(&server, &token_of(&body, "access_token"));
    assert_eq!(response.status, 401);
    assert_eq!(error_code(&response), "access_token_invalid");
    let response = refresh(&server, &token_of(&body, "refresh_token"));
    assert_eq!(response.status, 400);
    assert_eq!(oauth_error(&response), "invalid_grant");
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    assert_eq!(server.current_refresh_token(), None);
    assert_eq!(server.valid_access_tokens(), 0);

    // Signing in again gives a working grant.
    let body = sign_in(&server, ALL_SCOPES);
    assert_eq!(
        creator_info(&server, &token_of(&body, "access_token")).status,
        200
    );
}

#[test]
fn rate_limits_count_per_token() {
    let server = TikTokServer::start(TikTokOptions {
        oauth: Some(OAuthApp::default()),
        limits: RateLimits {
            creator_info: 2,
            init: 6,
            status: 30,
        },
        ..TikTokOptions::default()
    });
    let access = token_of(&sign_in(&server, ALL_SCOPES), "access_token");
    let fixed = server.token();
    let statuses: Vec<u16> = (0..3)
        .map(|_| creator_info(&server, &fixed).status)
        .collect();
    assert_eq!(statuses, [200, 200, 429]);
    let statuses: Vec<u16> = (0..3)
        .map(|_| creator_info(&server, &access).status)
        .collect();
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(server.rate_limited(), 2);
}

#[test]
fn user_info_checks_its_fields_and_scopes() {
    let server = server();
    let access = token_of(&sign_in(&server, ALL_SCOPES), "access_token");
    let cases = [
        ("", 400, "invalid_params"),
        ("open_id,favourite_colour", 400, "invalid_params"),
        ("open_id,bio_description", 401, "scope_not_authorized"),
        ("follower_count", 401, "scope_not_authorized"),
    ];
    for (index, (fields, status, error)) in cases.iter().enumerate() {
        let response = user_info(&server, &access, fields);
        assert_eq!(response.status, *status, "{fields}: {}", json(&response));
        assert_eq!(error_code(&response), *error, "{fields}");
        assert_eq!(server.violations().len(), index + 1);
    }
    // The fixed token carries no user.info.basic.
    let response = user_info(&server, &server.token(), "open_id");
    assert_eq!(response.status, 401);
    assert_eq!(error_code(&response), "scope_not_authorized");
}

#[test]
fn an_injected_token_failure_is_not_the_clients_doing() {
    let server = server();
    server.inject(Fault::respond(
        "token",
        503,
        "temporarily_unavailable",
        "injected",
    ));
    let verifier = verifier("fault");
    let (code, _) = code_for(&server, ALL_SCOPES, &verifier);
    let response = exchange(&server, &code, &verifier);
    assert_eq!(response.status, 503);
    assert_eq!(oauth_error(&response), "temporarily_unavailable");
    // The fault answered without looking: the code is still good.
    assert_eq!(exchange(&server, &code, &verifier).status, 200);
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}
