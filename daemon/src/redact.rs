//! Credentials out of everything people see: query parameters that carry a token, a key or
//! a signature are masked before a URL reaches a job view, an event or a log line.
//!
//! Presigned and token-carrying URLs (TikTok's `upload_url`, S3's `X-Amz-*`) stay usable
//! inside the daemon; only what leaves it is masked. Pure string work, no I/O.

/// What a masked value reads as.
pub const REDACTED: &str = "REDACTED";

/// True when a query parameter of this name carries a credential.
pub fn is_credential(name: &str) -> bool {
    let name = percent_decoded(name).to_ascii_lowercase();
    const PARTS: [&str; 7] = [
        "token",
        "signature",
        "secret",
        "password",
        "passwd",
        "credential",
        "key",
    ];
    PARTS.iter().any(|part| name.contains(part))
        || matches!(name.as_str(), "sig" | "auth" | "authorization" | "code")
        || name.starts_with("x-amz-")
        || name.starts_with("x-goog-")
}

/// Names that identify an upload and, next to a credential, work as part of it.
fn is_paired_id(name: &str) -> bool {
    matches!(
        percent_decoded(name).to_ascii_lowercase().as_str(),
        "upload_id" | "uploadid"
    )
}

/// `url` with every credential's value masked, an upload id masked when a credential stands
/// beside it, and user info (`user:password@`) masked. Anything else is kept as it was.
pub fn redact_url(url: &str) -> String {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((head, fragment)) => (head, Some(fragment)),
        None => (url, None),
    };
    let (base, query) = match before_fragment.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (before_fragment, None),
    };
    let mut shown = redact_user_info(base);
    if let Some(query) = query {
        let pairs: Vec<(&str, Option<&str>)> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (pair, None),
            })
            .collect();
        let has_credential = pairs.iter().any(|(name, _)| is_credential(name));
        shown.push('?');
        let masked: Vec<String> = pairs
            .iter()
            .map(|(name, value)| {
                let secret = is_credential(name) || (has_credential && is_paired_id(name));
                match (value, secret) {
                    (Some(_), true) => format!("{name}={REDACTED}"),
                    (Some(value), false) => format!("{name}={value}"),
                    (None, _) => name.to_string(),
                }
            })
            .collect();
        shown.push_str(&masked.join("&"));
    }
    if let Some(fragment) = fragment {
        shown.push('#');
        shown.push_str(fragment);
    }
    shown
}

/// `scheme://user:password@host/…` → `scheme://REDACTED@host/…`.
fn redact_user_info(base: &str) -> String {
    let Some((scheme, rest)) = base.split_once("://") else {
        return base.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{REDACTED}{}", &rest[at..]),
        None => base.to_string(),
    }
}

/// `%XX` escapes decoded, so an encoded name cannot slip past `is_credential`.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tiktok_upload_urls_lose_their_token_and_upload_id() {
        let url = "https://open-upload.tiktokapis.com/video/?upload_id=67890&upload_token=Xza123";
        assert_eq!(
            redact_url(url),
            "https://open-upload.tiktokapis.com/video/?upload_id=REDACTED&upload_token=REDACTED"
        );
    }

    #[test]
    fn presigned_urls_lose_every_signature_part() {
        let url = "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=AK%2F1\
                   &X-Amz-Signature=abc&partNumber=2&uploadId=u1&sig=s&key=k&Policy=p";
        let shown = redact_url(url);
        for secret in ["AWS4", "AK%2F1", "=abc", "=u1", "=s&", "key=k"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("partNumber=2"), "{shown}");
    }

    #[test]
    fn plain_urls_stay_as_they_are() {
        for url in [
            "http://127.0.0.1:1080/files/0a1b2c",
            "http://h/files/1?upload_id=7",
            "http://h/p?a=1&b&c=#frag",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn user_info_and_encoded_names_are_caught() {
        assert_eq!(
            redact_url("https://me:pw@h/x?acc%65ss_token=t"),
            "https://REDACTED@h/x?acc%65ss_token=REDACTED"
        );
    }

    proptest! {
        /// Whatever the URL, a credential's value never survives.
        #[test]
        fn no_credential_value_survives(
            path in "[a-z/]{0,12}",
            name in "(token|upload_token|access_token|signature|sig|key|X-Amz-Signature)",
            secret in "[A-Za-z0-9]{12,24}",
            other in "[a-z]{1,6}=[a-z0-9]{0,6}",
        ) {
            let url = format!("https://h/{path}?{other}&{name}={secret}");
            prop_assert!(!redact_url(&url).contains(&secret));
        }
    }
}
