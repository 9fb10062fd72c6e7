//! The token endpoint and the revoke endpoint: form-encoded requests, JSON answers, and the
//! reading of an error answer into "a person must sign in" or "try again later".

use chrono::{DateTime, Utc};
use reqwest::Url;
use serde_json::Value;

use super::provider::Provider;
use super::tokens::{Secret, TokenSet};

/// Why a token request did not give tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeError {
    /// The provider refused the grant or the client: only a person can fix it (sign in again,
    /// or correct `client_key` / `client_secret`).
    Refused { code: String, description: String },
    /// The network, or the provider's own trouble: worth trying again.
    Transient(String),
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::Refused { code, description } if description.is_empty() => {
                write!(f, "{code}")
            }
            ExchangeError::Refused { code, description } => write!(f, "{code}: {description}"),
            ExchangeError::Transient(message) => f.write_str(message),
        }
    }
}

/// The client's credentials and where to send them.
pub struct Client<'a> {
    pub http: &'a reqwest::Client,
    pub provider: &'a Provider,
    pub client_id: &'a str,
    pub client_secret: Option<&'a Secret>,
    pub token_url: &'a Url,
}

impl Client<'_> {
    fn credentials(&self) -> Vec<(&'static str, String)> {
        let mut form = vec![(self.provider.client_param, self.client_id.to_string())];
        if let Some(secret) = self.client_secret {
            form.push(("client_secret", secret.expose().to_string()));
        }
        form
    }

    /// Trades an authorization code for tokens.
    pub async fn redeem(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenSet, ExchangeError> {
        let mut form = self.credentials();
        form.extend([
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", redirect_uri.to_string()),
            ("code_verifier", verifier.to_string()),
        ]);
        let answer = self.post(form).await?;
        tokens_from(self.provider, &answer, None, now)
    }

    /// Trades the refresh token for new tokens. Returns the provider's raw answer read into a
    /// token set; a provider that does not rotate keeps `previous`'s refresh token.
    pub async fn refresh(
        &self,
        previous: &TokenSet,
        refresh_token: &Secret,
        now: DateTime<Utc>,
    ) -> Result<TokenSet, ExchangeError> {
        let mut form = self.credentials();
        form.extend([
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.expose().to_string()),
        ]);
        let answer = self.post(form).await?;
        tokens_from(self.provider, &answer, Some(previous), now)
    }

    async fn post(&self, form: Vec<(&'static str, String)>) -> Result<Value, ExchangeError> {
        post_form(self.http, self.token_url, &form).await
    }
}

/// Asks the provider to revoke `token` (and with it the grant).
pub async fn revoke(
    http: &reqwest::Client,
    provider: &Provider,
    url: &Url,
    client_id: &str,
    client_secret: Option<&Secret>,
    token: &Secret,
) -> Result<(), ExchangeError> {
    let mut form = Vec::new();
    if provider.revoke_with_client {
        form.push((provider.client_param, client_id.to_string()));
        if let Some(secret) = client_secret {
            form.push(("client_secret", secret.expose().to_string()));
        }
    }
    form.push((provider.revoke_param, token.expose().to_string()));
    post_form(http, url, &form).await.map(|_| ())
}

async fn post_form(
    http: &reqwest::Client,
    url: &Url,
    form: &[(&'static str, String)],
) -> Result<Value, ExchangeError> {
    let body = form_encode(form);
    let where_ = url.path().to_string();
    let response = http
        .post(url.clone())
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::CACHE_CONTROL, "no-cache")
        .body(body)
        .send()
        .await
        .map_err(|e| {
            ExchangeError::Transient(format!(
                "cannot reach {where_}: {}",
                crate::destinations::http::root_cause(&e)
            ))
        })?;
    let status = response.status();
    let text = response.text().await.map_err(|e| {
        ExchangeError::Transient(format!(
            "{where_} broke off its answer: {}",
            crate::destinations::http::root_cause(&e)
        ))
    })?;
    let parsed: Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(_) if status.is_server_error() || status.as_u16() == 429 => {
            return Err(ExchangeError::Transient(format!(
                "{where_} answered {status}"
            )))
        }
        Err(_) if status.is_success() && text.trim().is_empty() => Value::Null,
        Err(_) => {
            return Err(ExchangeError::Transient(format!(
                "{where_} answered {status} with something other than JSON"
            )))
        }
    };
    // OAuth errors: `error` is a string code (RFC 6749 §5.2, TikTok v2, Google); some APIs
    // nest an object with a `code`.
    let code = match parsed.get("error") {
        Some(Value::String(code)) => Some(code.clone()),
        Some(Value::Object(object)) => object
            .get("code")
            .and_then(Value::as_str)
            .filter(|code| *code != "ok")
            .map(str::to_string),
        _ => None,
    };
    let description = parsed
        .get("error_description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match code {
        Some(code) if status.is_server_error() || code == "temporarily_unavailable" => Err(
            ExchangeError::Transient(format!("{where_} answered {status} {code}: {description}")),
        ),
        Some(code) => Err(ExchangeError::Refused { code, description }),
        None if status.is_success() => Ok(parsed),
        None if status.is_server_error() || status.as_u16() == 429 => Err(
            ExchangeError::Transient(format!("{where_} answered {status}")),
        ),
        None => Err(ExchangeError::Refused {
            code: format!("http_{}", status.as_u16()),
            description: String::new(),
        }),
    }
}

fn form_encode(form: &[(&str, String)]) -> String {
    let mut url = Url::parse("http://form.invalid/").expect("a constant URL parses");
    url.query_pairs_mut()
        .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())));
    url.query().unwrap_or_default().to_string()
}

fn tokens_from(
    provider: &Provider,
    answer: &Value,
    previous: Option<&TokenSet>,
    now: DateTime<Utc>,
) -> Result<TokenSet, ExchangeError> {
    let text = |key: &str| answer.get(key).and_then(Value::as_str).map(str::to_string);
    let seconds = |key: &str| {
        answer
            .get(key)
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
            .filter(|s| *s > 0)
            .map(|s| now + chrono::Duration::seconds(s))
    };
    let Some(access) = text("access_token").filter(|t| !t.is_empty()) else {
        return Err(ExchangeError::Transient(
            "the token endpoint answered without an access_token".to_string(),
        ));
    };
    let refresh = text("refresh_token").filter(|t| !t.is_empty());
    let rotated = refresh.is_some();
    let scopes = match text("scope") {
        Some(scope) => provider.split_scopes(&scope),
        None => previous.map(|p| p.scopes.clone()).unwrap_or_default(),
    };
    Ok(TokenSet {
        access_token: Secret::new(access),
        access_expires_at: seconds("expires_in"),
        refresh_token: refresh
            .map(Secret::new)
            .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
        refresh_expires_at: if rotated {
            seconds("refresh_expires_in")
        } else {
            previous.and_then(|p| p.refresh_expires_at)
        },
        scopes,
        account_id: text("open_id").or_else(|| previous.and_then(|p| p.account_id.clone())),
        display_name: previous.and_then(|p| p.display_name.clone()),
        obtained_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::provider::{GOOGLE, TIKTOK};
    use serde_json::json;

    #[test]
    fn a_tiktok_answer_becomes_a_token_set() {
        let now = Utc::now();
        let answer = json!({
            "access_token": "act.a", "expires_in": 86400, "open_id": "o1",
            "refresh_expires_in": 31536000, "refresh_token": "rft.r",
            "scope": "user.info.basic,video.publish", "token_type": "Bearer"
        });
        let set = tokens_from(&TIKTOK, &answer, None, now).unwrap();
        assert_eq!(set.access_token.expose(), "act.a");
        assert_eq!(
            set.access_expires_at,
            Some(now + chrono::Duration::seconds(86400))
        );
        assert_eq!(set.refresh_token.as_ref().unwrap().expose(), "rft.r");
        assert_eq!(set.scopes, ["user.info.basic", "video.publish"]);
        assert_eq!(set.account_id.as_deref(), Some("o1"));
    }

    #[test]
    fn a_provider_that_does_not_rotate_keeps_the_refresh_token() {
        let now = Utc::now();
        let first = tokens_from(
            &GOOGLE,
            &json!({"access_token": "a1", "expires_in": 3599, "refresh_token": "r1", "scope": "s1 s2"}),
            None,
            now,
        )
        .unwrap();
        let second = tokens_from(
            &GOOGLE,
            &json!({"access_token": "a2", "expires_in": 3599}),
            Some(&first),
            now,
        )
        .unwrap();
        assert_eq!(second.refresh_token.unwrap().expose(), "r1");
        assert_eq!(second.scopes, ["s1", "s2"]);
    }

    #[test]
    fn forms_are_percent_encoded() {
        let body = form_encode(&[("a", "x y&z=".to_string()), ("b", "ü".to_string())]);
        assert_eq!(body, "a=x+y%26z%3D&b=%C3%BC");
    }
}
