//! The desk's sign-in: one-time addresses handed out over the socket (`upqctl open`), and
//! the browser sessions they open.
//!
//! Only someone who can reach the socket (the user: it is 0600 and checks the peer's uid)
//! can get an address, so a page of another site, or another user on the machine, cannot
//! sign a browser in. Kept in memory only: a restart signs every browser out, and
//! `upqctl open` signs one in again. Expiry is read against tokio's clock when a token is
//! used; nothing wakes to expire them.

use std::sync::Mutex;
use std::time::Duration;

use rand::RngCore;
use tokio::time::Instant;
use upq_proto::ErrorCode;

use super::{Service, ServiceError};

/// How long a sign-in address works.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Unused addresses kept at most; the oldest gives way.
const MAX_TOKENS: usize = 16;
/// Browser sessions kept at most; the oldest is signed out.
const MAX_SESSIONS: usize = 32;

/// A signed-in browser: the cookie's value and the token its forms carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub csrf: String,
}

#[derive(Default)]
pub(crate) struct DeskAccess {
    /// `http://127.0.0.1:PORT/` while the desk serves.
    url: Mutex<Option<String>>,
    tokens: Mutex<Vec<(String, Instant)>>,
    sessions: Mutex<Vec<Session>>,
}

/// 32 random bytes, as hex.
fn secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares without returning early, so the time taken says nothing of how much matched.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Service {
    /// The desk's address while it serves.
    pub fn desk_url(&self) -> Option<String> {
        lock(&self.inner.desk.url).clone()
    }

    /// Called by the desk once it listens.
    pub(crate) fn set_desk_url(&self, url: Option<String>) {
        *lock(&self.inner.desk.url) = url;
    }

    /// `open`: an address that signs one browser in, once, within `TOKEN_LIFETIME`.
    pub fn open_desk(&self) -> Result<String, ServiceError> {
        let Some(url) = self.desk_url() else {
            return Err(ServiceError::new(
                ErrorCode::Refused,
                "the desk is off: it serves when [web] enabled = true (the default) and \
                 its port could be opened; the daemon's log says why it did not",
            ));
        };
        let token = secret();
        let now = Instant::now();
        let mut tokens = lock(&self.inner.desk.tokens);
        tokens.retain(|(_, expires)| *expires > now);
        if tokens.len() >= MAX_TOKENS {
            tokens.remove(0);
        }
        tokens.push((token.clone(), now + TOKEN_LIFETIME));
        Ok(format!("{url}login?token={token}"))
    }

    /// Spends a sign-in token: a new session if it was handed out, unused and unexpired.
    pub fn redeem_desk_token(&self, token: &str) -> Option<Session> {
        let now = Instant::now();
        let valid = {
            let mut tokens = lock(&self.inner.desk.tokens);
            let found = tokens
                .iter()
                .position(|(known, _)| same_secret(known, token));
            // Used or not, a presented token is gone: a second try is refused.
            let valid = found.map(|at| tokens.remove(at).1 > now);
            tokens.retain(|(_, expires)| *expires > now);
            valid
        };
        if valid != Some(true) {
            return None;
        }
        let session = Session {
            id: secret(),
            csrf: secret(),
        };
        let mut sessions = lock(&self.inner.desk.sessions);
        if sessions.len() >= MAX_SESSIONS {
            sessions.remove(0);
        }
        sessions.push(session.clone());
        Some(session)
    }

    /// The session a cookie names, if it is one.
    pub fn desk_session(&self, id: &str) -> Option<Session> {
        lock(&self.inner.desk.sessions)
            .iter()
            .find(|session| same_secret(&session.id, id))
            .cloned()
    }
}
