//! Unit tests of user-JWT verification: the attacks of SPEC §3 and the claims
//! rules, against HS256, RS256 and ES256 keys.

use super::*;
use base64::Engine;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use switchboard_core::tenant::JwtKey;

const SECRET: &str = "an-hs256-secret-of-at-least-thirty-two-bytes";
const HOUR: i64 = 3600;
const TWELVE_HOURS: Duration = Duration::from_secs(12 * 3600);

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn hs_key() -> UserKey {
    UserKey::load("acme", &JwtKey::Hs256 { secret_env: "X".into() }, |_| Some(SECRET.into())).unwrap()
}

fn rs_key() -> UserKey {
    UserKey::load("acme", &JwtKey::Rs256 { public_key_file: fixture("rs256_public.pem") }, |_| None).unwrap()
}

fn es_key() -> UserKey {
    UserKey::load("acme", &JwtKey::Es256 { public_key_file: fixture("es256_public.pem") }, |_| None).unwrap()
}

fn claims() -> Value {
    json!({"sub": "alice", "tid": "acme", "exp": now() + HOUR, "iat": now(), "name": "Alice"})
}

fn hs(claims: &Value) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

fn rs(claims: &Value) -> String {
    let pem = std::fs::read(fixture("rs256_private.pem")).unwrap();
    encode(&Header::new(Algorithm::RS256), claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

fn es(claims: &Value) -> String {
    let pem = std::fs::read(fixture("es256_private.pem")).unwrap();
    encode(&Header::new(Algorithm::ES256), claims, &EncodingKey::from_ec_pem(&pem).unwrap()).unwrap()
}

fn check(key: &UserKey, token: &str) -> Result<UserToken, UserTokenError> {
    verify(key, token, "acme", now(), TWELVE_HOURS)
}

fn assert_invalid(key: &UserKey, token: &str, what: &str) {
    match check(key, token) {
        Err(UserTokenError::Invalid(_)) => {}
        other => panic!("{what}: expected Invalid, got {other:?}"),
    }
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

#[test]
fn accepts_each_configured_algorithm() {
    let expected = UserToken { sub: "alice".into(), name: Some("Alice".into()), admin: false };
    assert_eq!(check(&hs_key(), &hs(&claims())).unwrap(), expected);
    assert_eq!(check(&rs_key(), &rs(&claims())).unwrap(), expected);
    assert_eq!(check(&es_key(), &es(&claims())).unwrap(), expected);
}

#[test]
fn refuses_alg_none_and_other_algorithms() {
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(claims().to_string().as_bytes());
    assert_invalid(&hs_key(), &format!("{header}.{payload}."), "alg none");
    assert_invalid(&hs_key(), &format!("{header}.{payload}"), "alg none, two parts");
    // A valid HS256 signature, but the header claims HS384.
    let hs384 =
        encode(&Header::new(Algorithm::HS384), &claims(), &EncodingKey::from_secret(SECRET.as_bytes()))
            .unwrap();
    assert_invalid(&hs_key(), &hs384, "HS384 on an HS256 tenant");
    assert_invalid(&rs_key(), &es(&claims()), "ES256 on an RS256 tenant");
    assert_invalid(&es_key(), &rs(&claims()), "RS256 on an ES256 tenant");
    assert_invalid(&rs_key(), &hs(&claims()), "HS256 on an RS256 tenant");
}

#[test]
fn refuses_hs256_signed_with_the_rsa_public_key() {
    // Algorithm confusion: the public key is no secret, so a token "signed"
    // with it must not pass on an RS256 tenant.
    let public = std::fs::read(fixture("rs256_public.pem")).unwrap();
    let forged =
        encode(&Header::new(Algorithm::HS256), &claims(), &EncodingKey::from_secret(&public)).unwrap();
    assert_invalid(&rs_key(), &forged, "HS256 with the RSA public key");
    let public = std::fs::read(fixture("es256_public.pem")).unwrap();
    let forged =
        encode(&Header::new(Algorithm::HS256), &claims(), &EncodingKey::from_secret(&public)).unwrap();
    assert_invalid(&es_key(), &forged, "HS256 with the EC public key");
}

#[test]
fn refuses_bad_signatures_tampering_and_garbage() {
    let other = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"another tenant's secret"),
    )
    .unwrap();
    assert_invalid(&hs_key(), &other, "another secret");
    let token = hs(&claims());
    let parts: Vec<&str> = token.split('.').collect();
    let mut evil = claims();
    evil["sub"] = json!("admin");
    let tampered = format!("{}.{}.{}", parts[0], b64(evil.to_string().as_bytes()), parts[2]);
    assert_invalid(&hs_key(), &tampered, "tampered payload");
    for garbage in ["", "x", "a.b.c", "....", &format!("{}.{}", parts[0], parts[1]), &format!("{token}x")] {
        assert_invalid(&hs_key(), garbage, garbage);
    }
}

#[test]
fn time_claims_are_enforced_with_leeway() {
    let mut c = claims();
    c["exp"] = json!(now() - 120);
    assert_invalid(&hs_key(), &hs(&c), "expired");
    c["exp"] = json!(now() - 5);
    assert!(check(&hs_key(), &hs(&c)).is_ok(), "within the leeway");
    let mut c = claims();
    c["nbf"] = json!(now() + 600);
    assert_invalid(&hs_key(), &hs(&c), "not yet valid");
    c["nbf"] = json!(now() + 5);
    assert!(check(&hs_key(), &hs(&c)).is_ok(), "nbf within the leeway");
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_invalid(&hs_key(), &hs(&c), "no exp");
    c["exp"] = json!("tomorrow");
    assert_invalid(&hs_key(), &hs(&c), "exp not a number");
}

#[test]
fn sub_is_required_and_sane() {
    let mut c = claims();
    c.as_object_mut().unwrap().remove("sub");
    assert_invalid(&hs_key(), &hs(&c), "no sub");
    for bad in [json!(""), json!("  "), json!(42), json!("a\u{0}b"), json!("x".repeat(256))] {
        c["sub"] = bad.clone();
        assert_invalid(&hs_key(), &hs(&c), &bad.to_string());
    }
    c["sub"] = json!("x".repeat(255));
    assert!(check(&hs_key(), &hs(&c)).is_ok());
}

#[test]
fn the_token_must_name_this_tenant() {
    let mut c = claims();
    c.as_object_mut().unwrap().remove("tid");
    assert_invalid(&hs_key(), &hs(&c), "neither tid nor aud");
    c["aud"] = json!("acme");
    assert!(check(&hs_key(), &hs(&c)).is_ok(), "aud string");
    c["aud"] = json!(["shop-api", "acme"]);
    assert!(check(&hs_key(), &hs(&c)).is_ok(), "aud array");
    c["aud"] = json!(["shop-api", "globex"]);
    assert_eq!(check(&hs_key(), &hs(&c)), Err(UserTokenError::OtherTenant));
    c["aud"] = json!("globex");
    assert_eq!(check(&hs_key(), &hs(&c)), Err(UserTokenError::OtherTenant));
    let mut c = claims();
    c["tid"] = json!("globex");
    assert_eq!(check(&hs_key(), &hs(&c)), Err(UserTokenError::OtherTenant));
    // `tid` decides when both are present.
    c["aud"] = json!("acme");
    assert_eq!(check(&hs_key(), &hs(&c)), Err(UserTokenError::OtherTenant));
    c["tid"] = json!("acme");
    c["aud"] = json!("somewhere-else");
    assert!(check(&hs_key(), &hs(&c)).is_ok());
}

#[test]
fn roles_and_agent_lifetimes() {
    let mut c = claims();
    c["role"] = json!("user");
    assert!(!check(&hs_key(), &hs(&c)).unwrap().admin);
    c["role"] = json!("admin");
    assert!(check(&hs_key(), &hs(&c)).unwrap().admin);
    for bad in [json!("operator"), json!("ADMIN"), json!(""), json!(1)] {
        c["role"] = bad.clone();
        assert_invalid(&hs_key(), &hs(&c), &bad.to_string());
    }
    let mut c = claims();
    c["role"] = json!("admin");
    c["iat"] = json!(now());
    c["exp"] = json!(now() + 12 * HOUR);
    assert!(check(&hs_key(), &hs(&c)).is_ok(), "exactly 12 h");
    c["exp"] = json!(now() + 13 * HOUR);
    assert_invalid(&hs_key(), &hs(&c), "13 h");
    // Issued long ago but living 13 h in all: refused even if 2 h are left.
    c["iat"] = json!(now() - 11 * HOUR);
    c["exp"] = json!(now() + 2 * HOUR);
    assert_invalid(&hs_key(), &hs(&c), "13 h from iat");
    // Without iat, what is left counts.
    c.as_object_mut().unwrap().remove("iat");
    assert!(check(&hs_key(), &hs(&c)).is_ok());
    c["exp"] = json!(now() + 13 * HOUR);
    assert_invalid(&hs_key(), &hs(&c), "13 h left, no iat");
    // An iat in the future cannot make a long token look short.
    c["iat"] = json!(now() + 12 * HOUR);
    assert_invalid(&hs_key(), &hs(&c), "future iat");
    // A plain user token may live long.
    let mut c = claims();
    c["exp"] = json!(now() + 90 * 24 * HOUR);
    assert!(check(&hs_key(), &hs(&c)).is_ok());
}

#[test]
fn names_are_cleaned_and_agents_are_never_called_by_sub() {
    let mut c = claims();
    c["name"] = json!("  Bob \u{7}Builder  ");
    assert_eq!(check(&hs_key(), &hs(&c)).unwrap().name.as_deref(), Some("Bob Builder"));
    c["name"] = json!("   ");
    assert_eq!(check(&hs_key(), &hs(&c)).unwrap().name, None);
    c["name"] = json!("é".repeat(150));
    assert_eq!(check(&hs_key(), &hs(&c)).unwrap().name.unwrap().chars().count(), MAX_NAME_CHARS);
    c.as_object_mut().unwrap().remove("name");
    let user = check(&hs_key(), &hs(&c)).unwrap();
    assert_eq!(agent_display_name(user.name.as_deref()), "Agent");
    assert_eq!(agent_display_name(Some("Carol")), "Carol");
    assert_eq!(agent_display_name(Some(" ")), "Agent");
}
