//! `application/x-www-form-urlencoded`, both ways, for query strings and form bodies, shared
//! by every conformance server's OAuth side. Strict: a malformed escape or a repeated name is
//! an error rather than a guess. Pure; touches nothing.

/// `Content-Type` of a form body (a `charset=UTF-8` parameter is tolerated).
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// Whether a `Content-Type` names a form body: [`FORM_CONTENT_TYPE`], in any case, with at
/// most a `charset=UTF-8` parameter.
pub fn is_form_content_type(value: Option<&str>) -> bool {
    let Some(value) = value else { return false };
    let mut parts = value
        .split(';')
        .map(|part| part.trim().to_ascii_lowercase());
    parts.next().as_deref() == Some(FORM_CONTENT_TYPE)
        && parts.all(|param| param == "charset=utf-8")
}

/// Percent-encodes everything but the unreserved characters `A-Z a-z 0-9 - . _ ~`.
pub fn encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// `name=value&…`, each side encoded.
pub fn encode_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes one name or value: `+` is a space, `%XX` a byte; the result must be UTF-8.
pub fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(index + 1..index + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .ok_or_else(|| format!("{text:?} has a malformed %-escape"))?;
                decoded.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
                index += 2;
            }
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8(decoded).map_err(|_| format!("{text:?} does not decode to UTF-8"))
}

/// Every `name=value` pair, decoded, in order (a name without `=` has an empty value).
pub fn decode_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// Decoded parameters where each name appears at most once.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a query string or form body; a repeated name is an error (OAuth: "parameters
    /// sent without a value MUST be treated as if they were omitted; request and response
    /// parameters MUST NOT be included more than once").
    pub fn parse(text: &str) -> Result<Params, String> {
        let pairs = decode_pairs(text)?;
        for (index, (name, _)) in pairs.iter().enumerate() {
            if pairs[..index].iter().any(|(earlier, _)| earlier == name) {
                return Err(format!("the parameter {name} is repeated"));
            }
        }
        Ok(Params(pairs))
    }

    /// Every name given, in order (with an empty value or not).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }

    /// The value of `name`; an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_content_types() {
        assert!(is_form_content_type(Some(FORM_CONTENT_TYPE)));
        assert!(is_form_content_type(Some(
            "application/x-www-form-urlencoded; charset=UTF-8"
        )));
        assert!(!is_form_content_type(Some("application/json")));
        assert!(!is_form_content_type(Some("multipart/form-data")));
        assert!(!is_form_content_type(None));
    }

    #[test]
    fn round_trips() {
        let pairs = [
            ("state", "a b&c=d"),
            ("scope", "user.info.basic,video.upload"),
        ];
        let text = encode_pairs(&pairs);
        assert_eq!(
            text,
            "state=a%20b%26c%3Dd&scope=user.info.basic%2Cvideo.upload"
        );
        let decoded = decode_pairs(&text).unwrap();
        assert_eq!(decoded[0], ("state".to_string(), "a b&c=d".to_string()));
        assert_eq!(decode("a+b%2A").unwrap(), "a b*");
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(decode("%2").is_err());
        assert!(decode("%zz").is_err());
        assert!(decode("%FF").is_err());
        assert!(Params::parse("code=a&code=b").is_err());
        let params = Params::parse("code=&state=x").unwrap();
        assert_eq!(params.get("code"), None);
        assert_eq!(params.get("state"), Some("x"));
    }
}
