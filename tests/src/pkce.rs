//! PKCE (RFC 7636) as the sign-in stand-ins check it: the code verifier's shape, and the S256
//! challenge in the RFC's own encoding (providers that want another encoding say so where they
//! compute it). Pure; touches nothing.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A code verifier is 43 to 128 characters of `[A-Za-z0-9-._~]` (RFC 7636 §4.1).
pub fn check_verifier(verifier: &str) -> Result<(), String> {
    if !(43..=128).contains(&verifier.len()) {
        return Err(format!(
            "code_verifier must be 43 to 128 characters, not {}",
            verifier.len()
        ));
    }
    if let Some(bad) = verifier
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~".contains(*c)))
    {
        return Err(format!(
            "code_verifier may hold only A-Z a-z 0-9 - . _ ~, not {bad:?}"
        ));
    }
    Ok(())
}

/// `BASE64URL(SHA256(verifier))` without padding: 43 characters (RFC 7636 §4.2).
pub fn s256_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `challenge` has the shape of an S256 challenge: 43 characters of the base64url
/// alphabet.
pub fn is_s256_shaped(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifiers() {
        assert!(check_verifier(&"a-._~".repeat(9)).is_ok());
        assert!(check_verifier(&"a".repeat(42)).is_err());
        assert!(check_verifier(&"a".repeat(129)).is_err());
        assert!(check_verifier(&format!("{}+", "a".repeat(43))).is_err());
    }

    #[test]
    fn the_rfc_example() {
        // RFC 7636 appendix B.
        let challenge = s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(is_s256_shaped(&challenge));
        assert!(!is_s256_shaped(&"a".repeat(64)));
    }
}
