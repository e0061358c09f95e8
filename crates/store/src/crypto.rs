//! At-rest encryption of stored values (SPEC §11.4): AES-256-GCM under a key
//! derived per session from a master key, a fresh random nonce per write, and
//! the value's place in the database (tenant, session, seq, column, key id) as
//! associated data, so a ciphertext copied to another row or column fails to
//! decrypt. Nothing here touches the database.

use crate::keys::{Keyring, KEY_LEN};
use aes_gcm::aead::{Aead, AeadCore, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use std::sync::Arc;
use uuid::Uuid;

/// First byte of every stored value: the layout below. A new layout gets a new
/// version so old values stay readable.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const KEY_INFO: &[u8] = b"switchboard/content/v1";
const AAD_LABEL: &[u8] = b"switchboard/aad/v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("stored value is not an encrypted value of a known version")]
    Format,
    /// Logged only; the kid is not secret, the key is.
    #[error("value was encrypted with key {kid:?}, which is not configured")]
    UnknownKid { kid: String },
    #[error("value does not decrypt (wrong key, or it was altered or moved)")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
}

/// Where a value lives; bound to its ciphertext as associated data.
/// Session-level columns use seq 0. A memory entry has no session: its
/// `session_id` is a uuid derived from tenant, subject and key (`memory.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Aad<'a> {
    pub tenant_id: &'a str,
    pub session_id: Uuid,
    pub seq: i64,
    pub column: &'a str,
}

/// Encrypts with the keyring's current key; decrypts with whichever key the
/// stored value names.
#[derive(Clone)]
pub struct Cipher {
    keyring: Keyring,
    /// HKDF's extract step of each master key, by key id (current first):
    /// it depends on the key alone, so it is done once here rather than for
    /// every session key derived (it was most of a derivation's cost).
    extracted: Arc<[(String, Hkdf<Sha256>)]>,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cipher").field("keyring", &self.keyring).finish_non_exhaustive()
    }
}

impl Cipher {
    pub fn new(keyring: Keyring) -> Self {
        let extracted = keyring
            .kids()
            .filter_map(|kid| Some((kid.to_owned(), Hkdf::<Sha256>::new(None, keyring.key(kid)?))))
            .collect();
        Self { keyring, extracted }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// `version ‖ kid length ‖ kid ‖ nonce ‖ ciphertext with tag`.
    pub fn encrypt(&self, at: &Aad<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.keys().encrypt(at, plaintext)
    }

    pub fn decrypt(&self, at: &Aad<'_>, stored: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.keys().decrypt(at, stored)
    }

    /// A memo of derived session keys for a run of values, e.g. the rows of
    /// one history: deriving a key costs more than sealing a short message.
    pub fn keys(&self) -> SessionKeys<'_> {
        SessionKeys { cipher: self, last: None }
    }

    pub fn encrypt_str(&self, at: &Aad<'_>, plaintext: &str) -> Result<Vec<u8>, CryptoError> {
        self.encrypt(at, plaintext.as_bytes())
    }

    pub fn decrypt_string(&self, at: &Aad<'_>, stored: &[u8]) -> Result<String, CryptoError> {
        self.keys().decrypt_string(at, stored)
    }
}

/// Encrypts and decrypts like [`Cipher`], deriving each session key once: it
/// keeps the last one (values of one run mostly share session and key id).
pub struct SessionKeys<'a> {
    cipher: &'a Cipher,
    last: Option<(Uuid, String, Aes256Gcm)>,
}

impl SessionKeys<'_> {
    pub fn encrypt(&mut self, at: &Aad<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let kid = self.cipher.keyring.current_kid();
        let kid_len = u8::try_from(kid.len()).map_err(|_| CryptoError::Encrypt)?;
        let cipher = self.session_cipher(kid, at.session_id)?;
        // The thread's CSPRNG (ChaCha, seeded from the OS): a nonce per write
        // without a system call per write.
        let nonce = Aes256Gcm::generate_nonce(&mut rand::thread_rng());
        let aad = associated_data(at, kid);
        let sealed = cipher
            .encrypt(&nonce, Payload { msg: plaintext, aad: &aad })
            .map_err(|_| CryptoError::Encrypt)?;
        let mut out = Vec::with_capacity(2 + kid.len() + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.push(kid_len);
        out.extend_from_slice(kid.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn encrypt_str(&mut self, at: &Aad<'_>, plaintext: &str) -> Result<Vec<u8>, CryptoError> {
        self.encrypt(at, plaintext.as_bytes())
    }

    pub fn decrypt(&mut self, at: &Aad<'_>, stored: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (kid, nonce, sealed) = split(stored)?;
        let cipher = self.session_cipher(kid, at.session_id)?;
        let aad = associated_data(at, kid);
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad })
            .map_err(|_| CryptoError::Decrypt)
    }

    pub fn decrypt_string(&mut self, at: &Aad<'_>, stored: &[u8]) -> Result<String, CryptoError> {
        String::from_utf8(self.decrypt(at, stored)?).map_err(|_| CryptoError::Format)
    }

    fn session_cipher(&mut self, kid: &str, session_id: Uuid) -> Result<&Aes256Gcm, CryptoError> {
        let fresh = !matches!(&self.last, Some((s, k, _)) if *s == session_id && k == kid);
        if fresh {
            let extracted = self.cipher.extracted.iter().find(|(k, _)| k == kid).map(|(_, hkdf)| hkdf);
            let master = extracted.ok_or_else(|| CryptoError::UnknownKid { kid: kid.to_owned() })?;
            self.last = Some((session_id, kid.to_owned(), session_cipher(master, session_id)?));
        }
        self.last.as_ref().map(|(_, _, cipher)| cipher).ok_or(CryptoError::Encrypt)
    }
}

/// The key id a stored value was written under, if it is well formed.
pub fn stored_kid(stored: &[u8]) -> Option<&str> {
    split(stored).ok().map(|(kid, _, _)| kid)
}

/// The first bytes of every value stored under `kid`, so SQL can tell which
/// values another key wrote without reading them out (`keys rotate`).
pub fn kid_prefix(kid: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(2 + kid.len());
    prefix.push(VERSION);
    prefix.push(u8::try_from(kid.len()).unwrap_or(u8::MAX));
    prefix.extend_from_slice(kid.as_bytes());
    prefix
}

fn split(stored: &[u8]) -> Result<(&str, &[u8], &[u8]), CryptoError> {
    let (&version, rest) = stored.split_first().ok_or(CryptoError::Format)?;
    if version != VERSION {
        return Err(CryptoError::Format);
    }
    let (&kid_len, rest) = rest.split_first().ok_or(CryptoError::Format)?;
    let kid_len = usize::from(kid_len);
    if rest.len() < kid_len + NONCE_LEN {
        return Err(CryptoError::Format);
    }
    let (kid, rest) = rest.split_at(kid_len);
    let kid = std::str::from_utf8(kid).map_err(|_| CryptoError::Format)?;
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    Ok((kid, nonce, sealed))
}

/// One key per session, so that no single key sees enough random 96-bit nonces
/// to make a repeat likely, however much the deployment writes.
/// `master` is HKDF-SHA256 after its extract step (no salt) on the master key.
fn session_cipher(master: &Hkdf<Sha256>, session_id: Uuid) -> Result<Aes256Gcm, CryptoError> {
    let mut info = [0u8; KEY_INFO.len() + 16];
    info[..KEY_INFO.len()].copy_from_slice(KEY_INFO);
    info[KEY_INFO.len()..].copy_from_slice(session_id.as_bytes());
    let mut key = [0u8; KEY_LEN];
    master.expand(&info, &mut key).map_err(|_| CryptoError::Encrypt)?;
    Aes256Gcm::new_from_slice(&key).map_err(|_| CryptoError::Encrypt)
}

/// Every variable-length field is length-prefixed, so no two different
/// locations frame to the same bytes.
fn associated_data(at: &Aad<'_>, kid: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 1 + 16 + 8 + 12 + at.tenant_id.len() + 64);
    aad.extend_from_slice(AAD_LABEL);
    aad.push(VERSION);
    push_framed(&mut aad, at.tenant_id.as_bytes());
    aad.extend_from_slice(at.session_id.as_bytes());
    aad.extend_from_slice(&at.seq.to_be_bytes());
    push_framed(&mut aad, at.column.as_bytes());
    push_framed(&mut aad, kid.as_bytes());
    aad
}

fn push_framed(out: &mut Vec<u8>, field: &[u8]) {
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(session_id: Uuid, seq: i64, column: &str) -> Aad<'_> {
        Aad { tenant_id: "acme", session_id, seq, column }
    }

    #[test]
    fn round_trips_with_fresh_nonces() {
        let cipher = Cipher::new(Keyring::generate("k1"));
        let sid = Uuid::new_v4();
        let a = cipher.encrypt_str(&at(sid, 3, "content"), "hello").unwrap();
        let b = cipher.encrypt_str(&at(sid, 3, "content"), "hello").unwrap();
        assert_ne!(a, b);
        assert_eq!(stored_kid(&a), Some("k1"));
        assert!(a.starts_with(&kid_prefix("k1")));
        assert!(!a.windows(5).any(|w| w == b"hello"));
        assert_eq!(cipher.decrypt_string(&at(sid, 3, "content"), &a).unwrap(), "hello");
        assert_eq!(cipher.decrypt_string(&at(sid, 3, "content"), &b).unwrap(), "hello");
        let empty = cipher.encrypt_str(&at(sid, 4, "content"), "").unwrap();
        assert_eq!(cipher.decrypt_string(&at(sid, 4, "content"), &empty).unwrap(), "");
    }

    #[test]
    fn session_keys_are_hkdf_sha256_of_the_master_key_as_before() {
        // What every stored value was sealed under: HKDF-SHA256 (no salt) of
        // the master key, info = label ‖ session id. Sealed here by hand, it
        // must open with the keys derived from the extract done once.
        let keyring = Keyring::generate("k1");
        let sid = Uuid::new_v4();
        let mut info = KEY_INFO.to_vec();
        info.extend_from_slice(sid.as_bytes());
        let mut key = [0u8; KEY_LEN];
        Hkdf::<Sha256>::new(None, keyring.current_key()).expand(&info, &mut key).unwrap();
        let nonce = [7u8; NONCE_LEN];
        let aad = associated_data(&at(sid, 5, "content"), "k1");
        let sealed = Aes256Gcm::new_from_slice(&key)
            .unwrap()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: b"kept", aad: &aad })
            .unwrap();
        let stored = [kid_prefix("k1"), nonce.to_vec(), sealed].concat();
        let cipher = Cipher::new(keyring.rotated("k2").unwrap());
        assert_eq!(cipher.decrypt_string(&at(sid, 5, "content"), &stored).unwrap(), "kept");
        let unknown = [kid_prefix("k9"), nonce.to_vec(), vec![0; 20]].concat();
        let kid = CryptoError::UnknownKid { kid: "k9".into() };
        assert_eq!(cipher.decrypt(&at(sid, 5, "content"), &unknown).unwrap_err(), kid);
    }

    #[test]
    fn a_value_moved_or_altered_does_not_decrypt() {
        let cipher = Cipher::new(Keyring::generate("k1"));
        let sid = Uuid::new_v4();
        let value = cipher.encrypt_str(&at(sid, 3, "content"), "secret").unwrap();
        let fail = |a: &Aad<'_>, v: &[u8]| cipher.decrypt(a, v).unwrap_err();
        assert_eq!(fail(&at(sid, 4, "content"), &value), CryptoError::Decrypt);
        assert_eq!(fail(&at(sid, 3, "tools"), &value), CryptoError::Decrypt);
        assert_eq!(fail(&at(Uuid::new_v4(), 3, "content"), &value), CryptoError::Decrypt);
        let other_tenant = Aad { tenant_id: "acme2", ..at(sid, 3, "content") };
        assert_eq!(fail(&other_tenant, &value), CryptoError::Decrypt);
        let mut flipped = value.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(fail(&at(sid, 3, "content"), &flipped), CryptoError::Decrypt);
        assert_eq!(fail(&at(sid, 3, "content"), &value[..10]), CryptoError::Format);
        assert_eq!(fail(&at(sid, 3, "content"), &[9, 0]), CryptoError::Format);
    }

    #[test]
    fn the_kid_in_the_value_is_bound_too() {
        let one = Keyring::generate("k1");
        let cipher = Cipher::new(one.clone());
        let sid = Uuid::new_v4();
        let mut value = cipher.encrypt_str(&at(sid, 1, "content"), "x").unwrap();
        // Same key under another name: relabelling the value must not verify.
        let relabelled = Keyring::parse(&format!("k2:{}", one.to_spec().split_once(':').unwrap().1)).unwrap();
        value[2..4].copy_from_slice(b"k2");
        let err = Cipher::new(relabelled).decrypt(&at(sid, 1, "content"), &value).unwrap_err();
        assert_eq!(err, CryptoError::Decrypt);
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = Keyring::generate("k1");
        let sid = Uuid::new_v4();
        let written = Cipher::new(old.clone()).encrypt_str(&at(sid, 1, "content"), "old").unwrap();
        let rotated = Cipher::new(old.rotated("k2").unwrap());
        assert_eq!(rotated.decrypt_string(&at(sid, 1, "content"), &written).unwrap(), "old");
        let fresh = rotated.encrypt_str(&at(sid, 2, "content"), "new").unwrap();
        assert_eq!(stored_kid(&fresh), Some("k2"));
        let err = Cipher::new(old).decrypt(&at(sid, 2, "content"), &fresh).unwrap_err();
        assert_eq!(err, CryptoError::UnknownKid { kid: "k2".into() });
        let stranger = Cipher::new(Keyring::generate("k1"));
        assert_eq!(stranger.decrypt(&at(sid, 1, "content"), &written).unwrap_err(), CryptoError::Decrypt);
    }

    #[test]
    fn session_keys_follow_session_and_kid_changes() {
        let rotated = Keyring::generate("k1").rotated("k2").unwrap();
        let old = Cipher::new(Keyring::parse(rotated.to_spec().split(',').nth(1).unwrap()).unwrap());
        let cipher = Cipher::new(rotated);
        let (s1, s2) = (Uuid::new_v4(), Uuid::new_v4());
        let values = [
            (s1, 1, cipher.encrypt_str(&at(s1, 1, "content"), "a").unwrap()),
            (s1, 2, old.encrypt_str(&at(s1, 2, "content"), "b").unwrap()),
            (s2, 1, cipher.encrypt_str(&at(s2, 1, "content"), "c").unwrap()),
            (s1, 3, cipher.encrypt_str(&at(s1, 3, "content"), "d").unwrap()),
        ];
        let mut keys = cipher.keys();
        let read: Vec<String> = values
            .iter()
            .map(|(sid, seq, value)| keys.decrypt_string(&at(*sid, *seq, "content"), value).unwrap())
            .collect();
        assert_eq!(read, ["a", "b", "c", "d"]);
        // A value moved to another session still fails with a warm memo.
        assert_eq!(keys.decrypt(&at(s2, 1, "content"), &values[0].2).unwrap_err(), CryptoError::Decrypt);
        let sealed = keys.encrypt_str(&at(s2, 4, "content"), "e").unwrap();
        assert_eq!(cipher.decrypt_string(&at(s2, 4, "content"), &sealed).unwrap(), "e");
    }
}
