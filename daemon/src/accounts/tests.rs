//! The account without processes: a token endpoint on a loopback socket that counts what it
//! is asked, and many callers at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// A token endpoint that answers every request with a new rotated set, counting them and
/// keeping the forms it got.
struct Endpoint {
    url: Url,
    requests: Arc<AtomicUsize>,
    forms: Arc<Mutex<Vec<String>>>,
}

async fn endpoint(answer: &'static str) -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/token", listener.local_addr().unwrap())).unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let forms = Arc::new(Mutex::new(Vec::new()));
    let (count, kept) = (requests.clone(), forms.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let read = stream.read(&mut buf).await.unwrap_or(0);
                    if read == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..read]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            kept.lock().unwrap().push(body.to_string());
                            break;
                        }
                    }
                }
                let body = answer.replace("{n}", &n.to_string());
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Endpoint {
        url,
        requests,
        forms,
    }
}

const ROTATED: &str = r#"{"access_token":"act.new{n}","expires_in":7200,"refresh_token":"rft.new{n}","refresh_expires_in":31536000,"scope":"user.info.basic,video.publish","open_id":"open-1","token_type":"Bearer"}"#;

fn settings(token_url: Url) -> OAuthSettings {
    OAuthSettings {
        provider: provider::TIKTOK,
        client_id: "key".into(),
        client_secret: Some(Secret::new("secret")),
        redirect_uri: "http://127.0.0.1:0/callback/".into(),
        auth_url: token_url.clone(),
        revoke_url: token_url.clone(),
        token_url,
        scopes: vec!["video.publish".into()],
        needed: vec!["video.publish".into()],
        identity: None,
    }
}

fn stored(expires_in_secs: i64) -> TokenSet {
    let now = Utc::now();
    TokenSet {
        access_token: Secret::new("act.old"),
        access_expires_at: Some(now + chrono::Duration::seconds(expires_in_secs)),
        refresh_token: Some(Secret::new("rft.old")),
        refresh_expires_at: None,
        scopes: vec!["video.publish".into()],
        account_id: Some("open-1".into()),
        display_name: None,
        obtained_at: now - chrono::Duration::seconds(7200 - expires_in_secs),
    }
}

async fn account_with(tokens: TokenSet, url: Url) -> (tempfile::TempDir, Arc<Account>) {
    let dir = tempfile::tempdir().unwrap();
    TokenStore::files(dir.path().to_path_buf())
        .save("tiktok", &tokens)
        .await
        .unwrap();
    let accounts = Accounts::in_files(dir.path().to_path_buf());
    let account = accounts.account("tiktok", settings(url));
    (dir, account)
}

#[tokio::test]
async fn many_callers_needing_a_fresh_token_cause_one_refresh() {
    let endpoint = endpoint(ROTATED).await;
    // Due: a minute left of a two-hour token is inside the five-minute margin.
    let (_dir, account) = account_with(stored(60), endpoint.url.clone()).await;
    let callers: Vec<_> = (0..10)
        .map(|_| {
            let account = account.clone();
            tokio::spawn(async move { account.access_token().await })
        })
        .collect();
    for caller in callers {
        let token = caller.await.unwrap().expect("a token");
        assert_eq!(token.expose(), "act.new1");
    }
    assert_eq!(endpoint.requests.load(Ordering::SeqCst), 1);
    let form = endpoint.forms.lock().unwrap()[0].clone();
    assert!(form.contains("grant_type=refresh_token"), "{form}");
    assert!(form.contains("refresh_token=rft.old"), "{form}");
    assert!(form.contains("client_key=key") && form.contains("client_secret=secret"));
}

#[tokio::test]
async fn a_token_far_from_expiry_is_used_without_asking() {
    let endpoint = endpoint(ROTATED).await;
    let (_dir, account) = account_with(stored(3600), endpoint.url.clone()).await;
    assert_eq!(account.access_token().await.unwrap().expose(), "act.old");
    assert_eq!(endpoint.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn callers_refused_the_same_token_share_one_refresh_and_the_new_set_is_stored_first() {
    let endpoint = endpoint(ROTATED).await;
    let (dir, account) = account_with(stored(3600), endpoint.url.clone()).await;
    let old = Secret::new("act.old");
    let callers: Vec<_> = (0..5)
        .map(|_| {
            let (account, old) = (account.clone(), old.clone());
            tokio::spawn(async move { account.after_rejection(&old).await })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap().expose(), "act.new1");
    }
    assert_eq!(endpoint.requests.load(Ordering::SeqCst), 1);
    // The rotated refresh token is on disk: a restart would use it, not the old one.
    let on_disk = TokenStore::files(dir.path().to_path_buf())
        .load("tiktok")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(on_disk.refresh_token.unwrap().expose(), "rft.new1");
}

#[tokio::test]
async fn a_refused_refresh_asks_for_a_sign_in_and_never_sends_the_dead_token_again() {
    let endpoint = endpoint(
        r#"{"error":"invalid_grant","error_description":"Refresh token is invalid.","log_id":"x"}"#,
    )
    .await;
    let (dir, account) = account_with(stored(10), endpoint.url.clone()).await;
    for _ in 0..3 {
        match account.access_token().await {
            Err(AuthError::SigninRequired(message)) => {
                assert!(message.contains("upqctl login tiktok"), "{message}");
                assert!(message.contains("invalid_grant"), "{message}");
                assert!(!message.contains("rft.old"), "{message}");
            }
            other => panic!("expected a sign-in, got {other:?}"),
        }
    }
    assert_eq!(endpoint.requests.load(Ordering::SeqCst), 1, "asked once");
    // A restart does not send it either: the store no longer holds it.
    let on_disk = TokenStore::files(dir.path().to_path_buf())
        .load("tiktok")
        .await
        .unwrap()
        .unwrap();
    assert!(on_disk.refresh_token.is_none());
    let again = Accounts::in_files(dir.path().to_path_buf())
        .account("tiktok", settings(endpoint.url.clone()));
    assert!(matches!(
        again.access_token().await,
        Err(AuthError::SigninRequired(_))
    ));
    assert_eq!(endpoint.requests.load(Ordering::SeqCst), 1);
    assert_eq!(again.view().await.state, "signin_required");
}
