//! What differs between OAuth providers, as data: parameter names, scope separators, the
//! PKCE challenge encoding, the default URLs and the extra parameters each one needs.
//!
//! The flow, the refresh and the stores read this table and have no provider branches, so a
//! new platform is one more row.

use base64::Engine;
use sha2::{Digest, Sha256};

/// How the PKCE `code_challenge` is derived from the verifier (RFC 7636 says base64url; TikTok's
/// desktop flow wants the SHA-256 in lowercase hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// `BASE64URL(SHA256(verifier))` without padding, as RFC 7636 §4.2 defines S256.
    Base64Url,
    /// `HEX(SHA256(verifier))`, TikTok Login Kit for Desktop.
    Hex,
}

impl Challenge {
    pub fn of(self, verifier: &str) -> String {
        let digest = Sha256::digest(verifier.as_bytes());
        match self {
            Challenge::Base64Url => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest),
            Challenge::Hex => digest.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// One OAuth provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    /// The name people know it by ("TikTok").
    pub display: &'static str,
    /// The parameter naming the client in every request (`client_key` or `client_id`).
    pub client_param: &'static str,
    /// Joins requested scopes.
    pub scope_separator: &'static str,
    pub challenge: Challenge,
    pub auth_url: &'static str,
    pub token_url: &'static str,
    pub revoke_url: &'static str,
    /// Added to the authorization URL (Google needs these to hand out a refresh token).
    pub extra_auth_params: &'static [(&'static str, &'static str)],
    /// The name of the revoke request's token parameter.
    pub revoke_param: &'static str,
    /// Whether the revoke request carries the client's id and secret.
    pub revoke_with_client: bool,
    /// The scope that lets `accounts` read who signed in, requested with the rest.
    pub identity_scope: Option<&'static str>,
}

pub const TIKTOK: Provider = Provider {
    display: "TikTok",
    client_param: "client_key",
    scope_separator: ",",
    challenge: Challenge::Hex,
    auth_url: "https://www.tiktok.com/v2/auth/authorize/",
    token_url: "https://open.tiktokapis.com/v2/oauth/token/",
    revoke_url: "https://open.tiktokapis.com/v2/oauth/revoke/",
    extra_auth_params: &[],
    revoke_param: "token",
    revoke_with_client: true,
    identity_scope: Some("user.info.basic"),
};

pub const GOOGLE: Provider = Provider {
    display: "Google",
    client_param: "client_id",
    scope_separator: " ",
    challenge: Challenge::Base64Url,
    auth_url: "https://accounts.google.com/o/oauth2/v2/auth",
    token_url: "https://oauth2.googleapis.com/token",
    revoke_url: "https://oauth2.googleapis.com/revoke",
    extra_auth_params: &[("access_type", "offline"), ("prompt", "consent")],
    revoke_param: "token",
    revoke_with_client: false,
    identity_scope: None,
};

impl Provider {
    /// Splits a granted-scopes answer, whichever separator the provider used.
    pub fn split_scopes(&self, text: &str) -> Vec<String> {
        text.split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 appendix B: the verifier and its S256 challenge.
    #[test]
    fn the_rfc_example_challenge_matches() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            Challenge::Base64Url.of(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn the_tiktok_challenge_is_the_hex_digest() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let hex = Challenge::Hex.of(verifier);
        assert_eq!(hex.len(), 64);
        assert!(hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        // The same digest as the RFC's, written in hex.
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
            .unwrap();
        let expected: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn scopes_split_on_either_separator() {
        assert_eq!(
            TIKTOK.split_scopes("user.info.basic,video.publish"),
            ["user.info.basic", "video.publish"]
        );
        assert_eq!(GOOGLE.split_scopes("a b"), ["a", "b"]);
    }
}
