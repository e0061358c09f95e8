//! User JWTs as tenants' backends sign them (HS256 with a secret, RS256 and
//! ES256 with the test key pairs under `tests/fixtures/`), the tenant config
//! lines that verify them, and credentials to call the API with.

use super::client::Visitor;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::PathBuf;

pub const HOUR: i64 = 3600;

/// A file under `crates/server/tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The tenant line that verifies HS256 tokens with the secret in `var`.
pub fn hs256_line(var: &str) -> String {
    format!("jwt = {{ hs256_secret_env = \"{var}\" }}")
}

/// The tenant line that verifies RS256 tokens with the fixture public key.
pub fn rs256_line() -> String {
    format!("jwt = {{ rs256_public_key_file = {:?} }}", fixture("rs256_public.pem").display().to_string())
}

/// The tenant line that verifies ES256 tokens with the fixture public key.
pub fn es256_line() -> String {
    format!("jwt = {{ es256_public_key_file = {:?} }}", fixture("es256_public.pem").display().to_string())
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `{sub, tid, iat, exp: in an hour}`.
pub fn claims(tenant: &str, sub: &str) -> Value {
    json!({"sub": sub, "tid": tenant, "iat": now(), "exp": now() + HOUR})
}

pub fn hs256(secret: &str, claims: &Value) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
        .expect("sign")
}

pub fn rs256(claims: &Value) -> String {
    let pem = std::fs::read(fixture("rs256_private.pem")).expect("RSA fixture");
    encode(&Header::new(Algorithm::RS256), claims, &EncodingKey::from_rsa_pem(&pem).expect("RSA key"))
        .expect("sign")
}

pub fn es256(claims: &Value) -> String {
    let pem = std::fs::read(fixture("es256_private.pem")).expect("EC fixture");
    encode(&Header::new(Algorithm::ES256), claims, &EncodingKey::from_ec_pem(&pem).expect("EC key"))
        .expect("sign")
}

/// Credentials for requests: `token` as bearer, `tenant` as `X-Tenant-Id`.
pub fn as_caller(tenant: &str, token: &str) -> Visitor {
    Visitor { tenant: tenant.to_owned(), token: token.to_owned(), visitor_id: String::new() }
}

/// A JWT's payload, read without verifying it.
pub fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
