//! Checking a signed call we receive (the demo shop's tools are called like
//! any tenant's): the three headers present, a timestamp within the tolerance
//! (so a captured call cannot be replayed later), and one `v1` signature made
//! by one of our secrets, compared in constant time. It says why a call was
//! refused, for the log; the caller answers 401 whatever the reason.

use super::{mac, SigningKeys, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::Mac;
use reqwest::header::HeaderMap;
use std::time::Duration;

/// How far a call's timestamp may be from our clock, either way: the five
/// minutes of the official libraries.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Why a received call is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {0} header is missing, empty or not text")]
    MissingHeader(&'static str),
    #[error("the webhook-timestamp header is not unix seconds")]
    InvalidTimestamp,
    #[error("the webhook-timestamp is older than the tolerance")]
    TooOld,
    #[error("the webhook-timestamp is further ahead than the tolerance")]
    TooNew,
    #[error("no v1 signature matches a secret")]
    NoMatch,
}

impl SigningKeys {
    /// Accepts a call when one of its `v1` signatures was made over `body`
    /// by one of these secrets (any of them: a rotation verifies with each)
    /// and its timestamp is within `tolerance` of `now` (unix seconds).
    /// Other signature versions and malformed entries are skipped, as the
    /// official libraries do.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
        tolerance: Duration,
    ) -> Result<(), VerifyError> {
        let id = header(headers, WEBHOOK_ID)?;
        let timestamp = header(headers, WEBHOOK_TIMESTAMP)?;
        let signatures = header(headers, WEBHOOK_SIGNATURE)?;
        check_time(timestamp, now, tolerance)?;
        let offered: Vec<Vec<u8>> = signatures
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|encoded| STANDARD.decode(encoded).ok())
            .collect();
        // The MAC is over the timestamp text as received: re-formatting the
        // number could change the bytes the sender signed.
        let matches = self.keys.iter().filter_map(|key| mac(key, id, timestamp, body)).any(|mac| {
            // `verify_slice` compares in constant time.
            offered.iter().any(|signature| mac.clone().verify_slice(signature).is_ok())
        });
        if matches {
            Ok(())
        } else {
            Err(VerifyError::NoMatch)
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty())
        .ok_or(VerifyError::MissingHeader(name))
}

fn check_time(timestamp: &str, now: i64, tolerance: Duration) -> Result<(), VerifyError> {
    if !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::InvalidTimestamp);
    }
    let sent: i64 = timestamp.parse().map_err(|_| VerifyError::InvalidTimestamp)?;
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if sent < now.saturating_sub(tolerance) {
        return Err(VerifyError::TooOld);
    }
    if sent > now.saturating_add(tolerance) {
        return Err(VerifyError::TooNew);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::message_id;
    use reqwest::header::HeaderValue;

    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"type":"tool.call","arguments":{"q":"shoes"}}"#;

    fn secret(byte: u8) -> String {
        format!("whsec_{}", STANDARD.encode([byte; 32]))
    }

    fn keys(text: &str) -> SigningKeys {
        SigningKeys::parse(text).unwrap()
    }

    fn signed(by: &SigningKeys, id: &str, timestamp: i64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(WEBHOOK_ID, HeaderValue::from_str(id).unwrap());
        headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
        headers.insert(WEBHOOK_SIGNATURE, HeaderValue::from_str(&by.sign(id, timestamp, body)).unwrap());
        headers
    }

    #[test]
    fn accepts_what_it_signed() {
        let keys = keys(&secret(1));
        let headers = signed(&keys, &message_id(), NOW, BODY);
        assert_eq!(keys.verify(&headers, BODY, NOW, DEFAULT_TOLERANCE), Ok(()));
    }

    #[test]
    fn accepts_the_published_test_vector() {
        let keys = keys("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let mut headers = HeaderMap::new();
        headers.insert(WEBHOOK_ID, HeaderValue::from_static("msg_p5jXN8AQM9LWM0D4loKWxJek"));
        headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from_static("1614265330"));
        headers.insert(
            WEBHOOK_SIGNATURE,
            HeaderValue::from_static("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        );
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(keys.verify(&headers, body, 1614265330, DEFAULT_TOLERANCE), Ok(()));
    }

    #[test]
    fn refuses_a_tampered_body_a_wrong_secret_or_another_id() {
        let ours = keys(&secret(1));
        let headers = signed(&ours, "msg_a", NOW, BODY);
        let tampered = br#"{"type":"tool.call","arguments":{"q":"boots"}}"#;
        assert_eq!(ours.verify(&headers, tampered, NOW, DEFAULT_TOLERANCE), Err(VerifyError::NoMatch));
        let theirs = keys(&secret(2));
        assert_eq!(theirs.verify(&headers, BODY, NOW, DEFAULT_TOLERANCE), Err(VerifyError::NoMatch));
        let mut moved = headers.clone();
        moved.insert(WEBHOOK_ID, HeaderValue::from_static("msg_b"));
        assert_eq!(ours.verify(&moved, BODY, NOW, DEFAULT_TOLERANCE), Err(VerifyError::NoMatch));
    }

    #[test]
    fn refuses_timestamps_outside_the_tolerance() {
        let keys = keys(&secret(1));
        let limit = DEFAULT_TOLERANCE.as_secs() as i64;
        for (sent, outcome) in [
            (NOW - limit, Ok(())),
            (NOW + limit, Ok(())),
            (NOW - limit - 1, Err(VerifyError::TooOld)),
            (NOW + limit + 1, Err(VerifyError::TooNew)),
        ] {
            let headers = signed(&keys, "msg_t", sent, BODY);
            assert_eq!(keys.verify(&headers, BODY, NOW, DEFAULT_TOLERANCE), outcome, "sent at {sent}");
        }
        let mut headers = signed(&keys, "msg_t", NOW, BODY);
        headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from_static("1.7e9"));
        assert_eq!(keys.verify(&headers, BODY, NOW, DEFAULT_TOLERANCE), Err(VerifyError::InvalidTimestamp));
    }

    #[test]
    fn a_rotation_verifies_with_either_secret() {
        let (old, new) = (secret(1), secret(2));
        let rotating = keys(&format!("{new} {old}"));
        let from_old = signed(&keys(&old), "msg_r", NOW, BODY);
        assert_eq!(rotating.verify(&from_old, BODY, NOW, DEFAULT_TOLERANCE), Ok(()));
        // And what a rotation signs is accepted by an endpoint holding only one.
        let both = signed(&rotating, "msg_r", NOW, BODY);
        for single in [&old, &new] {
            assert_eq!(keys(single).verify(&both, BODY, NOW, DEFAULT_TOLERANCE), Ok(()));
        }
    }

    #[test]
    fn skips_other_versions_and_malformed_entries() {
        let keys = keys(&secret(1));
        let mut headers = signed(&keys, "msg_v", NOW, BODY);
        let good = headers[WEBHOOK_SIGNATURE].to_str().unwrap().to_owned();
        let crowded = format!("v1a,AAAA v2,{} v1,*** nonsense {good}", &good[3..]);
        headers.insert(WEBHOOK_SIGNATURE, HeaderValue::from_str(&crowded).unwrap());
        assert_eq!(keys.verify(&headers, BODY, NOW, DEFAULT_TOLERANCE), Ok(()));
        headers.insert(WEBHOOK_SIGNATURE, HeaderValue::from_str(&format!("v2,{}", &good[3..])).unwrap());
        assert_eq!(keys.verify(&headers, BODY, NOW, DEFAULT_TOLERANCE), Err(VerifyError::NoMatch));
    }

    #[test]
    fn refuses_missing_headers() {
        let keys = keys(&secret(1));
        for name in [WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE] {
            let mut headers = signed(&keys, "msg_m", NOW, BODY);
            headers.remove(name);
            assert_eq!(
                keys.verify(&headers, BODY, NOW, DEFAULT_TOLERANCE),
                Err(VerifyError::MissingHeader(name))
            );
        }
    }
}
