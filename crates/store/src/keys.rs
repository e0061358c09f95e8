//! Named 32-byte keys (a keyring), their text form `kid:base64,kid2:base64`, and
//! loading them from the environment or a generated key file. Used for the
//! content encryption keys and for the runtime's signing key alike, so nothing
//! here knows what a key is for. Key bytes never reach a `Debug` or `Display`.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use std::fmt;
use std::io::Write as _;
use std::path::Path;

/// Length of every key, in bytes.
pub const KEY_LEN: usize = 32;
/// Longest key id accepted (it is stored length-prefixed with one byte).
const MAX_KID_LEN: usize = 64;

/// Why keys could not be parsed, loaded or saved. Messages may name a key id
/// (they go to the log at startup) but never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no keys given")]
    Empty,
    #[error("key entry {index} is not of the form kid:base64")]
    Malformed { index: usize },
    #[error("key id {kid:?} is invalid (1-64 characters of A-Z a-z 0-9 . _ -)")]
    InvalidKid { kid: String },
    #[error("key {kid:?} is not valid base64")]
    NotBase64 { kid: String },
    #[error("key {kid:?} is {len} bytes long; keys must be exactly 32 bytes")]
    WrongLength { kid: String, len: usize },
    #[error("key id {kid:?} appears twice")]
    DuplicateKid { kid: String },
    #[error("key file {path}: {source}")]
    File { path: String, source: std::io::Error },
}

type Entry = (String, [u8; KEY_LEN]);

/// Keys by id; the first one is current (it encrypts or signs), the others
/// only decrypt or verify what older keys produced. Never empty.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    current: Entry,
    older: Vec<Entry>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self.kids().collect();
        f.debug_struct("Keyring").field("kids", &kids).finish_non_exhaustive()
    }
}

impl Keyring {
    /// Parses `kid:base64(32 bytes),kid2:…`; whitespace around entries is
    /// ignored, so a key file may end with a newline.
    pub fn parse(spec: &str) -> Result<Self, KeyError> {
        let mut keys: Vec<Entry> = Vec::new();
        for (index, entry) in spec.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let (kid, encoded) = entry.split_once(':').ok_or(KeyError::Malformed { index })?;
            let kid = kid.trim();
            validate_kid(kid)?;
            let bytes =
                decode_key(encoded.trim()).ok_or_else(|| KeyError::NotBase64 { kid: kid.to_owned() })?;
            let key: [u8; KEY_LEN] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| KeyError::WrongLength { kid: kid.to_owned(), len: bytes.len() })?;
            if keys.iter().any(|(k, _)| k == kid) {
                return Err(KeyError::DuplicateKid { kid: kid.to_owned() });
            }
            keys.push((kid.to_owned(), key));
        }
        let mut keys = keys.into_iter();
        let current = keys.next().ok_or(KeyError::Empty)?;
        Ok(Self { current, older: keys.collect() })
    }

    /// A keyring of one fresh random key. The kid should satisfy the rules
    /// `parse` enforces, or the result will not survive `to_spec` → `parse`.
    pub fn generate(kid: &str) -> Self {
        Self { current: (kid.to_owned(), random_key()), older: Vec::new() }
    }

    /// A new keyring whose current key is a fresh random one under `kid`, with
    /// every existing key kept for reading (what `keys rotate` needs).
    pub fn rotated(&self, kid: &str) -> Result<Self, KeyError> {
        validate_kid(kid)?;
        if self.key(kid).is_some() {
            return Err(KeyError::DuplicateKid { kid: kid.to_owned() });
        }
        let mut older = vec![self.current.clone()];
        older.extend(self.older.iter().cloned());
        Ok(Self { current: (kid.to_owned(), random_key()), older })
    }

    /// The text form that `parse` reads back.
    pub fn to_spec(&self) -> String {
        let entries: Vec<String> =
            self.entries().map(|(kid, key)| format!("{kid}:{}", STANDARD.encode(key))).collect();
        entries.join(",")
    }

    /// The id of the key that encrypts (or signs).
    pub fn current_kid(&self) -> &str {
        &self.current.0
    }

    /// The key that encrypts (or signs).
    pub fn current_key(&self) -> &[u8; KEY_LEN] {
        &self.current.1
    }

    pub fn key(&self, kid: &str) -> Option<&[u8; KEY_LEN]> {
        self.entries().find(|(k, _)| k == kid).map(|(_, key)| key)
    }

    /// Key ids, current first.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.entries().map(|(kid, _)| kid.as_str())
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        std::iter::once(&self.current).chain(self.older.iter())
    }
}

fn validate_kid(kid: &str) -> Result<(), KeyError> {
    let ok = !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::InvalidKid { kid: kid.chars().take(MAX_KID_LEN).collect() })
    }
}

fn decode_key(encoded: &str) -> Option<Vec<u8>> {
    STANDARD.decode(encoded).or_else(|_| STANDARD_NO_PAD.decode(encoded)).ok()
}

fn random_key() -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    OsRng.fill_bytes(&mut key);
    key
}

/// Keys from `env_value` when it is set and not blank; else from the file at
/// `path` (same text form); else a fresh key under `default_kid`, written to
/// `path` (mode 0600, parent directory created) so it is kept across restarts.
/// The flag says whether a key was generated, so the caller can warn that
/// losing the file loses what it protects.
pub fn load_or_generate(
    env_value: Option<&str>,
    path: &Path,
    default_kid: &str,
) -> Result<(Keyring, bool), KeyError> {
    if let Some(spec) = env_value.filter(|v| !v.trim().is_empty()) {
        return Ok((Keyring::parse(spec)?, false));
    }
    match std::fs::read_to_string(path) {
        Ok(spec) => return Ok((Keyring::parse(&spec)?, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(file_error(path, e)),
    }
    validate_kid(default_kid)?;
    let keyring = Keyring::generate(default_kid);
    match write_new_key_file(path, &keyring.to_spec()) {
        Ok(()) => Ok((keyring, true)),
        // Another process generated it first: use theirs, so both agree.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let spec = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
            Ok((Keyring::parse(&spec)?, false))
        }
        Err(e) => Err(file_error(path, e)),
    }
}

fn file_error(path: &Path, source: std::io::Error) -> KeyError {
    KeyError::File { path: path.display().to_string(), source }
}

/// Creates the file only if it does not exist, readable by its owner alone
/// from the first byte on (the mode is set at creation, not afterwards).
fn write_new_key_file(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn parses_and_round_trips() {
        let ring = Keyring::parse(&format!(" {K1} , k0:{}\n", STANDARD.encode([7u8; 32]))).unwrap();
        assert_eq!(ring.current_kid(), "k1");
        assert_eq!(ring.key("k1").unwrap()[31], 31);
        assert_eq!(ring.key("k0"), Some(&[7u8; 32]));
        assert_eq!(ring.kids().collect::<Vec<_>>(), ["k1", "k0"]);
        assert_eq!(Keyring::parse(&ring.to_spec()).unwrap(), ring);
    }

    #[test]
    fn rejects_bad_specs_without_echoing_keys() {
        assert!(matches!(Keyring::parse(""), Err(KeyError::Empty)));
        assert!(matches!(Keyring::parse("nokid"), Err(KeyError::Malformed { .. })));
        assert!(matches!(Keyring::parse("a b:AAAA"), Err(KeyError::InvalidKid { .. })));
        let short = format!("k:{}", STANDARD.encode([1u8; 16]));
        assert!(matches!(Keyring::parse(&short), Err(KeyError::WrongLength { len: 16, .. })));
        let err = Keyring::parse("k:%%%secret%%%").unwrap_err();
        assert!(matches!(err, KeyError::NotBase64 { .. }));
        assert!(!err.to_string().contains("secret"));
        assert!(matches!(Keyring::parse(&format!("{K1},{K1}")), Err(KeyError::DuplicateKid { .. })));
        assert!(!format!("{:?}", Keyring::parse(K1).unwrap()).contains("AAEC"));
    }

    #[test]
    fn generated_keys_differ_and_rotate() {
        let a = Keyring::generate("k1");
        assert_ne!(a.current_key(), Keyring::generate("k1").current_key());
        let b = a.rotated("k2").unwrap();
        assert_eq!(b.current_kid(), "k2");
        assert_eq!(b.key("k1"), a.key("k1"));
        assert!(b.rotated("k1").is_err());
    }

    #[test]
    fn file_is_generated_once_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/encryption.keys");
        let (first, generated) = load_or_generate(None, &path, "k1").unwrap();
        assert!(generated);
        let (again, generated) = load_or_generate(Some("  "), &path, "other").unwrap();
        assert!(!generated);
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (from_env, generated) = load_or_generate(Some(K1), &path, "k1").unwrap();
        assert!(!generated);
        assert_eq!(from_env.current_kid(), "k1");
        assert_ne!(from_env, first);
    }

    #[test]
    fn a_bad_default_kid_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        assert!(load_or_generate(None, &path, "bad kid").is_err());
        assert!(!path.exists());
    }
}
