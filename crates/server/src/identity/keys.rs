//! The keys that verify tenants' user JWTs, loaded once per tenant (the HS256
//! secret from its environment variable, RS256/ES256 public keys from their
//! PEM files) and cached by tenant id, so verifying a token does no I/O. A
//! cached key is reloaded only when the tenant's `jwt` settings change.

use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use switchboard_core::tenant::{JwtKey, Tenant};

/// Shortest HS256 secret that does not draw a warning (RFC 7518 §3.2).
const MIN_SECRET_BYTES: usize = 32;

/// Why a tenant's key could not be loaded (a configuration error, named
/// clearly for the operator; never shown to clients).
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyLoadError {
    #[error("tenant {tenant}: jwt.hs256_secret_env: the environment variable {var} is not set or empty")]
    MissingSecret { tenant: String, var: String },
    #[error("tenant {tenant}: jwt: cannot read the public key file {path}: {reason}")]
    Unreadable { tenant: String, path: String, reason: String },
    #[error("tenant {tenant}: jwt: {path} is not a PEM {kind} public key: {reason}")]
    BadKey { tenant: String, path: String, kind: &'static str, reason: String },
}

/// One tenant's verification key and the one algorithm it accepts.
#[derive(Clone)]
pub struct UserKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

impl std::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserKey").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl UserKey {
    /// Loads the key `jwt` describes; `env` looks up environment variables.
    pub fn load(
        tenant: &str,
        jwt: &JwtKey,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, KeyLoadError> {
        match jwt {
            JwtKey::Hs256 { secret_env } => {
                let secret = env(secret_env).filter(|s| !s.is_empty()).ok_or_else(|| {
                    KeyLoadError::MissingSecret { tenant: tenant.to_owned(), var: secret_env.clone() }
                })?;
                if secret.len() < MIN_SECRET_BYTES {
                    tracing::warn!(
                        tenant,
                        var = %secret_env,
                        "the HS256 secret is shorter than {MIN_SECRET_BYTES} bytes; use a long random secret"
                    );
                }
                Ok(Self { algorithm: Algorithm::HS256, key: DecodingKey::from_secret(secret.as_bytes()) })
            }
            JwtKey::Rs256 { public_key_file } => {
                let pem = read_pem(tenant, public_key_file)?;
                let key = DecodingKey::from_rsa_pem(&pem)
                    .map_err(|e| bad_key(tenant, public_key_file, "RSA", e))?;
                Ok(Self { algorithm: Algorithm::RS256, key })
            }
            JwtKey::Es256 { public_key_file } => {
                let pem = read_pem(tenant, public_key_file)?;
                let key =
                    DecodingKey::from_ec_pem(&pem).map_err(|e| bad_key(tenant, public_key_file, "EC", e))?;
                Ok(Self { algorithm: Algorithm::ES256, key })
            }
        }
    }
}

fn read_pem(tenant: &str, path: &Path) -> Result<Vec<u8>, KeyLoadError> {
    std::fs::read(path).map_err(|e| KeyLoadError::Unreadable {
        tenant: tenant.to_owned(),
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn bad_key(tenant: &str, path: &Path, kind: &'static str, e: jsonwebtoken::errors::Error) -> KeyLoadError {
    KeyLoadError::BadKey {
        tenant: tenant.to_owned(),
        path: path.display().to_string(),
        kind,
        reason: e.to_string(),
    }
}

/// A tenant's loaded key (or why it could not be loaded), with the settings
/// it was loaded from.
struct Cached {
    from: JwtKey,
    key: Result<Arc<UserKey>, KeyLoadError>,
}

/// Every tenant's user-JWT key, by tenant id.
#[derive(Default)]
pub struct UserKeys {
    by_tenant: RwLock<HashMap<String, Arc<Cached>>>,
}

impl UserKeys {
    /// Loads the key of every tenant that has one; the first failure is a
    /// startup error.
    pub fn preload<'a>(
        tenants: impl IntoIterator<Item = (&'a str, &'a JwtKey)>,
    ) -> Result<Self, KeyLoadError> {
        let keys = Self::default();
        for (tenant, jwt) in tenants {
            let key = UserKey::load(tenant, jwt, |var| std::env::var(var).ok())?;
            keys.store(tenant, jwt, Ok(Arc::new(key)));
        }
        Ok(keys)
    }

    /// The tenant's key; `None` when it accepts no user tokens. A tenant seen
    /// for the first time, or whose `jwt` settings changed, is loaded here
    /// once; failures are cached too, so a misconfigured tenant costs no I/O
    /// per request.
    pub fn get(&self, tenant: &Tenant) -> Option<Result<Arc<UserKey>, KeyLoadError>> {
        let jwt = tenant.jwt.as_ref()?;
        let cached = self.by_tenant.read().unwrap_or_else(PoisonError::into_inner).get(&tenant.id).cloned();
        if let Some(c) = cached.filter(|c| &c.from == jwt) {
            return Some(c.key.clone());
        }
        let key = UserKey::load(&tenant.id, jwt, |var| std::env::var(var).ok()).map(Arc::new);
        if let Err(e) = &key {
            tracing::error!(error = %e, "a tenant's user JWT key cannot be loaded; its user tokens are refused");
        }
        self.store(&tenant.id, jwt, key.clone());
        Some(key)
    }

    fn store(&self, tenant: &str, jwt: &JwtKey, key: Result<Arc<UserKey>, KeyLoadError>) {
        let entry = Arc::new(Cached { from: jwt.clone(), key });
        self.by_tenant.write().unwrap_or_else(PoisonError::into_inner).insert(tenant.to_owned(), entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
    }

    #[test]
    fn loads_each_kind_and_names_what_is_missing() {
        let hs = JwtKey::Hs256 { secret_env: "ACME_SECRET".into() };
        let key = UserKey::load("acme", &hs, |_| Some("s".repeat(40))).unwrap();
        assert_eq!(key.algorithm, Algorithm::HS256);
        let e = UserKey::load("acme", &hs, |_| None).unwrap_err().to_string();
        assert!(e.contains("acme") && e.contains("ACME_SECRET"), "{e}");
        assert!(UserKey::load("acme", &hs, |_| Some(String::new())).is_err());

        let rs = JwtKey::Rs256 { public_key_file: fixture("rs256_public.pem") };
        assert_eq!(UserKey::load("a", &rs, |_| None).unwrap().algorithm, Algorithm::RS256);
        let es = JwtKey::Es256 { public_key_file: fixture("es256_public.pem") };
        assert_eq!(UserKey::load("a", &es, |_| None).unwrap().algorithm, Algorithm::ES256);

        let missing = JwtKey::Rs256 { public_key_file: fixture("nope.pem") };
        let e = UserKey::load("a", &missing, |_| None).unwrap_err().to_string();
        assert!(e.contains("nope.pem") && e.contains("cannot read"), "{e}");
        // An EC key where an RSA key belongs, and the other way round.
        let wrong = JwtKey::Rs256 { public_key_file: fixture("es256_public.pem") };
        assert!(matches!(UserKey::load("a", &wrong, |_| None), Err(KeyLoadError::BadKey { .. })));
        let wrong = JwtKey::Es256 { public_key_file: fixture("rs256_public.pem") };
        assert!(matches!(UserKey::load("a", &wrong, |_| None), Err(KeyLoadError::BadKey { .. })));
    }
}
