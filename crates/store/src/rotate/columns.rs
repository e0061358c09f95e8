//! What `keys rotate` re-encrypts: every column that holds ciphertext, how
//! its rows are named in the associated data, the SQL that pages through it,
//! and the re-encryption of one page. Pure: nothing here touches the
//! database, so a page is planned the same way on either backend.

use crate::crypto::{stored_kid, Aad, Cipher, CryptoError};
use crate::memory::MEMORY_VALUE;
use crate::outbox::OUTBOX_BODY;
use crate::rows::{CONTENT, CONTEXT, METADATA, TOOLS};
use crate::schema::{canary_place, CANARY_COLUMN};
use uuid::Uuid;

/// How a column's rows are keyed, in SQL and in the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// A message: `(session_id, seq)`, sealed with its tenant, session and seq.
    Message,
    /// A session (or an outbox row): `id`, sealed with its tenant and seq 0.
    Session,
    /// A memory entry: `id`, the uuid its writer derived from tenant,
    /// subject and key (`memory::row_id`), sealed like a session's value.
    Memory,
    /// A key-check canary: `kid`, sealed at the canary's fixed place.
    Canary,
}

/// One encrypted column and its statements. Parameters, the same on both
/// backends: `select` takes `$1` page size and `$2` (and for messages `$3`)
/// the last key of the page before; `update` takes `$1` the new value, `$2`
/// the row's id, `$3` the old value (the compare-and-swap) and for messages
/// `$4` the seq; `count_others` takes `$1` and `$2`, the length and bytes of
/// the active key's prefix.
#[derive(Debug)]
pub struct Encrypted {
    /// `table.column`, for progress and the report.
    pub name: &'static str,
    /// The column's name in the associated data.
    pub sealed_as: &'static str,
    pub identity: Identity,
    pub select: &'static str,
    /// `select` that locks the rows it returns and skips rows that others
    /// hold (PostgreSQL), so the rotation never waits on a writer and so can
    /// never be part of a deadlock; what it skipped, a later pass finds.
    pub select_locking: &'static str,
    pub update: &'static str,
    pub count_others: &'static str,
}

/// Every column that holds ciphertext. A test checks this list against the
/// migrations' binary columns, so a new encrypted column cannot be missed.
pub const ENCRYPTED: &[Encrypted] = &[
    Encrypted {
        name: "messages.content",
        sealed_as: CONTENT,
        identity: Identity::Message,
        select: "SELECT session_id AS id, seq, tenant_id, content AS value FROM messages \
         WHERE (session_id, seq) > ($2, $3) ORDER BY session_id, seq LIMIT $1",
        select_locking: "SELECT session_id AS id, seq, tenant_id, content AS value FROM messages \
         WHERE (session_id, seq) > ($2, $3) ORDER BY session_id, seq LIMIT $1 FOR UPDATE SKIP LOCKED",
        update: "UPDATE messages SET content = $1 WHERE session_id = $2 AND content = $3 AND seq = $4",
        count_others: "SELECT count(*) FROM messages WHERE substr(content, 1, $1) <> $2",
    },
    Encrypted {
        name: "messages.tools",
        sealed_as: TOOLS,
        identity: Identity::Message,
        select: "SELECT session_id AS id, seq, tenant_id, tools AS value FROM messages \
         WHERE (session_id, seq) > ($2, $3) ORDER BY session_id, seq LIMIT $1",
        select_locking: "SELECT session_id AS id, seq, tenant_id, tools AS value FROM messages \
         WHERE (session_id, seq) > ($2, $3) ORDER BY session_id, seq LIMIT $1 FOR UPDATE SKIP LOCKED",
        update: "UPDATE messages SET tools = $1 WHERE session_id = $2 AND tools = $3 AND seq = $4",
        count_others: "SELECT count(*) FROM messages WHERE tools IS NOT NULL AND substr(tools, 1, $1) <> $2",
    },
    Encrypted {
        name: "sessions.metadata",
        sealed_as: METADATA,
        identity: Identity::Session,
        select: "SELECT id, CAST(0 AS BIGINT) AS seq, tenant_id, metadata AS value \
         FROM sessions WHERE id > $2 ORDER BY id LIMIT $1",
        select_locking: "SELECT id, CAST(0 AS BIGINT) AS seq, tenant_id, metadata AS value \
         FROM sessions WHERE id > $2 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        update: "UPDATE sessions SET metadata = $1 WHERE id = $2 AND metadata = $3",
        count_others:
            "SELECT count(*) FROM sessions WHERE metadata IS NOT NULL AND substr(metadata, 1, $1) <> $2",
    },
    Encrypted {
        name: "sessions.context",
        sealed_as: CONTEXT,
        identity: Identity::Session,
        select: "SELECT id, CAST(0 AS BIGINT) AS seq, tenant_id, context AS value \
         FROM sessions WHERE id > $2 ORDER BY id LIMIT $1",
        select_locking: "SELECT id, CAST(0 AS BIGINT) AS seq, tenant_id, context AS value \
         FROM sessions WHERE id > $2 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        update: "UPDATE sessions SET context = $1 WHERE id = $2 AND context = $3",
        count_others:
            "SELECT count(*) FROM sessions WHERE context IS NOT NULL AND substr(context, 1, $1) <> $2",
    },
    Encrypted {
        name: "outbox.body",
        sealed_as: OUTBOX_BODY,
        identity: Identity::Session,
        select: "SELECT id, CAST(0 AS BIGINT) AS seq, tenant_id, body AS value \
         FROM outbox WHERE id > $2 ORDER BY id LIMIT $1",
        select_locking: "SELECT id, CAST(0 AS BIGINT) AS seq, tenant_id, body AS value \
         FROM outbox WHERE id > $2 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        update: "UPDATE outbox SET body = $1 WHERE id = $2 AND body = $3",
        count_others: "SELECT count(*) FROM outbox WHERE substr(body, 1, $1) <> $2",
    },
    Encrypted {
        name: "memory.value",
        sealed_as: MEMORY_VALUE,
        identity: Identity::Memory,
        select: "SELECT id, CAST(0 AS BIGINT) AS seq, tenant_id, value FROM memory \
         WHERE id > $2 ORDER BY id LIMIT $1",
        select_locking: "SELECT id, CAST(0 AS BIGINT) AS seq, tenant_id, value FROM memory \
         WHERE id > $2 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        update: "UPDATE memory SET value = $1 WHERE id = $2 AND value = $3",
        count_others: "SELECT count(*) FROM memory WHERE substr(value, 1, $1) <> $2",
    },
    Encrypted {
        name: "keycheck.canary",
        sealed_as: CANARY_COLUMN,
        identity: Identity::Canary,
        select: "SELECT kid AS id, CAST(0 AS BIGINT) AS seq, '' AS tenant_id, canary AS value \
         FROM keycheck WHERE kid > $2 ORDER BY kid LIMIT $1",
        select_locking: "SELECT kid AS id, CAST(0 AS BIGINT) AS seq, '' AS tenant_id, canary AS value \
         FROM keycheck WHERE kid > $2 ORDER BY kid LIMIT $1 FOR UPDATE SKIP LOCKED",
        update: "UPDATE keycheck SET canary = $1 WHERE kid = $2 AND canary = $3",
        count_others: "SELECT count(*) FROM keycheck WHERE substr(canary, 1, $1) <> $2",
    },
];

/// A stored value with its row's identity, as every `select` returns it.
#[derive(Debug, sqlx::FromRow)]
pub struct StoredValue {
    pub id: String,
    pub seq: i64,
    pub tenant_id: String,
    pub value: Option<Vec<u8>>,
}

/// Where a page ended: the next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub id: String,
    pub seq: i64,
}

impl Cursor {
    /// Before every row: ids are never empty.
    pub fn start() -> Self {
        Self { id: String::new(), seq: i64::MIN }
    }
}

/// One value to swap, if it is still `old` when the update runs.
#[derive(Debug)]
pub struct Rewrite {
    pub id: String,
    pub seq: i64,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

/// What to do with one page.
#[derive(Debug, Default)]
pub struct Plan {
    /// Non-null values read.
    pub examined: u64,
    pub rewrites: Vec<Rewrite>,
    /// Values that no configured key opens, described for the operator
    /// (where they are and why; never their bytes).
    pub unreadable: Vec<String>,
    /// The last row of the page; `None` when the page was empty.
    pub last: Option<Cursor>,
}

/// Decrypts every value of the page that is not under the active key and
/// seals it again under that key, at the same place.
pub fn plan(column: &Encrypted, rows: Vec<StoredValue>, cipher: &Cipher) -> Plan {
    let active = cipher.keyring().current_kid();
    // Two memos: opening under the old key and sealing under the new one
    // would otherwise evict each other's derived session key on every row.
    let (mut opener, mut sealer) = (cipher.keys(), cipher.keys());
    let mut plan = Plan::default();
    for mut row in rows {
        plan.last = Some(Cursor { id: row.id.clone(), seq: row.seq });
        let Some(old) = row.value.take() else { continue };
        plan.examined += 1;
        if stored_kid(&old) == Some(active) {
            continue;
        }
        let sealed = place(column, &row).and_then(|at| sealer.encrypt(&at, &opener.decrypt(&at, &old)?));
        match sealed {
            Ok(new) => plan.rewrites.push(Rewrite { id: row.id, seq: row.seq, old, new }),
            Err(e) => plan.unreadable.push(describe(column, &row, &old, &e)),
        }
    }
    plan
}

/// Where a row's value is sealed: the same associated data its writer used.
fn place<'a>(column: &Encrypted, row: &'a StoredValue) -> Result<Aad<'a>, CryptoError> {
    let session = || Uuid::parse_str(&row.id).map_err(|_| CryptoError::Format);
    let (session_id, seq) = match column.identity {
        Identity::Message => (session()?, row.seq),
        Identity::Session | Identity::Memory => (session()?, 0),
        Identity::Canary => return Ok(canary_place()),
    };
    Ok(Aad { tenant_id: &row.tenant_id, session_id, seq, column: column.sealed_as })
}

fn describe(column: &Encrypted, row: &StoredValue, old: &[u8], error: &CryptoError) -> String {
    let kid = stored_kid(old).unwrap_or("?");
    let (id, seq) = (&row.id, row.seq);
    let at = match column.identity {
        Identity::Message => format!("session {id} seq {seq}"),
        Identity::Session => format!("session {id}"),
        Identity::Memory => format!("memory entry {id}"),
        Identity::Canary => format!("kid {id}"),
    };
    match error {
        // The error names the key already.
        CryptoError::UnknownKid { .. } => format!("{} of {at}: {error}", column.name),
        _ => format!("{} of {at} (key {kid:?}): {error}", column.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locking_pages_are_the_pages_plus_the_lock() {
        for column in ENCRYPTED {
            assert_eq!(
                column.select_locking,
                format!("{} FOR UPDATE SKIP LOCKED", column.select),
                "{}",
                column.name
            );
        }
    }

    /// Binary columns that hold no ciphertext (a MAC, say), as `table.column`.
    const NOT_ENCRYPTED: &[&str] = &[];

    /// Every binary column of every migration is a column this module
    /// rotates: a new encrypted column must be added to `ENCRYPTED` (or, if
    /// it holds no ciphertext, to `NOT_ENCRYPTED`).
    #[test]
    fn every_binary_column_of_the_schema_is_rotated() {
        let known: Vec<&str> =
            ENCRYPTED.iter().map(|c| c.name).chain(NOT_ENCRYPTED.iter().copied()).collect();
        for (dir, binary) in [("sqlite", "BLOB"), ("postgres", "BYTEA")] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dir);
            let mut found = Vec::new();
            for entry in std::fs::read_dir(&path).unwrap() {
                let sql = std::fs::read_to_string(entry.unwrap().path()).unwrap();
                found.extend(binary_columns(&sql, binary));
            }
            found.sort();
            let mut expected: Vec<String> = known.iter().map(|s| (*s).to_owned()).collect();
            expected.sort();
            assert_eq!(found, expected, "{dir}: binary columns and rotated columns differ");
        }
    }

    /// `table.column` for each column declared with type `binary` in
    /// `CREATE TABLE` or `ALTER TABLE … ADD COLUMN` statements.
    fn binary_columns(sql: &str, binary: &str) -> Vec<String> {
        let mut table = String::new();
        let mut out = Vec::new();
        for line in sql.lines().map(str::trim) {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["CREATE", "TABLE", name, ..] => table = name.trim_matches('(').to_owned(),
                ["ALTER", "TABLE", name, "ADD", "COLUMN", column, ty, ..] if ty.starts_with(binary) => {
                    out.push(format!("{name}.{column}"));
                }
                [column, ty, ..] if !line.starts_with("--") && ty.trim_end_matches(',') == binary => {
                    out.push(format!("{table}.{column}"));
                }
                _ => {}
            }
        }
        out
    }
}
