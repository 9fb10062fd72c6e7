//! The desk's sign-in in the core, on tokio's paused time: a one-time address works once
//! and for a minute; a session is known by its cookie and carries its own CSRF token.

use std::time::Duration;

use super::Core;
use crate::destinations::fake::FakeDestination;
use crate::service::desk::TOKEN_LIFETIME;

fn token_of(url: &str) -> &str {
    url.split_once("login?token=").expect("a sign-in address").1
}

#[tokio::test(start_paused = true)]
async fn a_sign_in_address_works_once_and_for_a_minute_only() {
    let core = Core::start(FakeDestination::new(1024, false), |_| {});
    let service = &core.service;
    assert!(
        service.open_desk().is_err(),
        "no address before the desk serves"
    );
    service.set_desk_url(Some("http://127.0.0.1:4242/".into()));

    let url = service.open_desk().expect("an address");
    assert!(
        url.starts_with("http://127.0.0.1:4242/login?token="),
        "{url}"
    );
    let session = service
        .redeem_desk_token(token_of(&url))
        .expect("a fresh token signs in");
    assert_eq!(service.desk_session(&session.id), Some(session.clone()));
    assert_ne!(session.id, session.csrf);
    assert!(
        service.redeem_desk_token(token_of(&url)).is_none(),
        "used once already"
    );
    assert!(service.redeem_desk_token("").is_none());
    assert!(service.redeem_desk_token(&"0".repeat(64)).is_none());
    assert!(service.desk_session("not-a-session").is_none());

    // Just inside the minute it works; just after, it does not.
    let early = service.open_desk().expect("an address");
    let late = service.open_desk().expect("an address");
    tokio::time::advance(TOKEN_LIFETIME - Duration::from_millis(10)).await;
    assert!(service.redeem_desk_token(token_of(&early)).is_some());
    tokio::time::advance(Duration::from_millis(20)).await;
    assert!(service.redeem_desk_token(token_of(&late)).is_none());

    // The session lives on; two sign-ins are two sessions with their own tokens.
    assert!(service.desk_session(&session.id).is_some());
    let other = service
        .redeem_desk_token(token_of(&service.open_desk().unwrap()))
        .unwrap();
    assert_ne!(other.csrf, session.csrf);
}
