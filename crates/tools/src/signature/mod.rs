//! Standard Webhooks signatures (symmetric scheme `v1`: HMAC-SHA256 over
//! `{id}.{timestamp}.{body}`), so a tenant checks our calls with the official
//! library of its own language: the `whsec_` secrets of an endpoint, the
//! three headers of a signed call, and [`SigningKeys::verify`] for the calls
//! we receive ourselves (the demo shop's tools). A secret never appears in an
//! error, a log line or `Debug` output.

mod verify;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

pub use verify::{VerifyError, DEFAULT_TOLERANCE};

/// The header carrying the message id: unique per tool call; for an
/// outbound event, the event's id, the same on every try.
pub const WEBHOOK_ID: &str = "webhook-id";
/// The header carrying the time of the try, in unix seconds.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// The header carrying the space-separated `v1,<base64>` signatures.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// The prefix that marks a serialized Standard Webhooks symmetric secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// The specification asks for random secrets of at least 24 bytes; a shorter
/// one is refused at startup rather than silently signing with a weak key.
pub const MIN_SECRET_BYTES: usize = 24;

type HmacSha256 = Hmac<Sha256>;

/// base64 as the official libraries read a secret: the standard alphabet,
/// with or without padding.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a secret list is unusable. Secrets are named by their position in the
/// list (1-based), never by their text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("no webhook secret: the value is empty")]
    Empty,
    #[error("webhook secret {position} of {count} is not base64 (expected whsec_ followed by base64)")]
    NotBase64 { position: usize, count: usize },
    #[error(
        "webhook secret {position} of {count} is {bytes} bytes long; Standard Webhooks asks for at least {MIN_SECRET_BYTES}"
    )]
    TooShort { position: usize, count: usize, bytes: usize },
}

/// The secrets of one endpoint. Several, separated by spaces, are a rotation:
/// each one signs, so the endpoint accepts the call whichever one it holds
/// while it moves to the new secret; on our side each one verifies.
pub struct SigningKeys {
    keys: Vec<SecretSlice<u8>>,
}

impl SigningKeys {
    /// Reads a secret list as the variable named by `secret_env` holds it:
    /// `whsec_<base64>` (or bare base64, which the official libraries accept
    /// too), several separated by whitespace.
    pub fn parse(value: &str) -> Result<Self, SecretError> {
        let count = value.split_whitespace().count();
        if count == 0 {
            return Err(SecretError::Empty);
        }
        let keys = value
            .split_whitespace()
            .enumerate()
            .map(|(index, text)| decode_secret(text, index + 1, count))
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// How many secrets sign (two or more during a rotation).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a parsed list holds at least one secret.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `webhook-signature` value for one call: `v1,<base64>` per secret,
    /// space-separated, in the order of the list. `id` and `timestamp` are
    /// the values sent in the other two headers; `body` the exact bytes sent.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let timestamp = timestamp.to_string();
        self.keys
            .iter()
            .filter_map(|key| mac(key, id, &timestamp, body))
            .map(|mac| format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKeys({} secret(s), redacted)", self.keys.len())
    }
}

/// A fresh message id, `msg_` and a random UUID: unique per call. It holds
/// no `.`, which would make `{id}.{timestamp}.{body}` ambiguous.
pub fn message_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

/// The HMAC over `{id}.{timestamp}.{body}`, ready to finalize or verify.
/// HMAC takes keys of any length (a long one is hashed first), so `None`
/// cannot happen; were it to, that key would neither sign nor verify, which
/// fails closed.
fn mac(key: &SecretSlice<u8>, id: &str, timestamp: &str, body: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(key.expose_secret()).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

fn decode_secret(text: &str, position: usize, count: usize) -> Result<SecretSlice<u8>, SecretError> {
    let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
    let bytes = SECRET_BASE64.decode(encoded).map_err(|_| SecretError::NotBase64 { position, count })?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(SecretError::TooShort { position, count, bytes: bytes.len() });
    }
    Ok(SecretSlice::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks test vector published with the official
    /// libraries (standard-webhooks/standard-webhooks,
    /// libraries/python/tests/test_webhooks.py, `test_sign_function`).
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1614265330;
    const VECTOR_BODY: &str = r#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_published_test_vectors() {
        let keys = SigningKeys::parse(VECTOR_SECRET).unwrap();
        assert_eq!(keys.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes()), VECTOR_SIGNATURE);
        // The official Rust library's own (libraries/rust/src/lib.rs, `test_sign`).
        let keys = SigningKeys::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        assert_eq!(
            keys.sign("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn a_bare_or_unpadded_secret_is_the_same_secret() {
        for text in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "  whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"] {
            let keys = SigningKeys::parse(text).unwrap();
            assert_eq!(keys.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes()), VECTOR_SIGNATURE);
        }
        // 25 bytes: base64 with "==" padding, given without it.
        let padded = STANDARD.encode([7u8; 25]);
        let unpadded = padded.trim_end_matches('=');
        assert_ne!(padded, unpadded);
        let sign = |text: &str| SigningKeys::parse(text).unwrap().sign("msg_1", 1, b"{}");
        assert_eq!(sign(&padded), sign(unpadded));
    }

    #[test]
    fn a_rotation_signs_with_every_secret_in_order() {
        let new = format!("whsec_{}", STANDARD.encode([1u8; 32]));
        let keys = SigningKeys::parse(&format!("{VECTOR_SECRET} {new}")).unwrap();
        assert_eq!(keys.len(), 2);
        let header = keys.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes());
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], VECTOR_SIGNATURE);
        let alone =
            SigningKeys::parse(&new).unwrap().sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes());
        assert_eq!(parts[1], alone);
    }

    #[test]
    fn unusable_secrets_are_named_by_position_never_echoed() {
        assert_eq!(SigningKeys::parse(" \t").unwrap_err(), SecretError::Empty);
        let bad = "whsec_not*base64!";
        let error = SigningKeys::parse(&format!("{VECTOR_SECRET} {bad}")).unwrap_err();
        assert_eq!(error, SecretError::NotBase64 { position: 2, count: 2 });
        assert!(!error.to_string().contains("not*base64"), "{error}");
        let short = format!("whsec_{}", STANDARD.encode([9u8; 16]));
        let error = SigningKeys::parse(&short).unwrap_err();
        assert_eq!(error, SecretError::TooShort { position: 1, count: 1, bytes: 16 });
        assert!(!error.to_string().contains(&short[6..]), "{error}");
    }

    #[test]
    fn debug_output_hides_the_secrets() {
        let keys = SigningKeys::parse(VECTOR_SECRET).unwrap();
        let shown = format!("{keys:?}");
        assert!(!shown.contains("MfKQ"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn message_ids_are_prefixed_unique_and_dot_free() {
        let (a, b) = (message_id(), message_id());
        assert_ne!(a, b);
        for id in [a, b] {
            assert!(id.starts_with("msg_") && id.len() == 36 && !id.contains('.'), "{id}");
        }
    }
}
