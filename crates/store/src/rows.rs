//! Rows as both backends read them, and their decoding (decryption included)
//! into the domain's types, so SQLite and PostgreSQL share one definition of
//! what a stored session, message or tenant means.

use crate::crypto::{Aad, Cipher, CryptoError, SessionKeys};
use switchboard_core::model::{Message, MessageStatus, Role, Session, SessionStatus, Takeover, TurnMeta};
use switchboard_core::store::{StoreError, TenantRecord};
use switchboard_core::time::{from_millis, Timestamp};
use switchboard_core::tools::{ToolCallRecord, ToolStatus};
use uuid::Uuid;

/// Column names of encrypted values, part of their associated data.
pub const CONTENT: &str = "content";
pub const METADATA: &str = "metadata";
pub const TOOLS: &str = "tools";
pub const CONTEXT: &str = "context";

/// The columns `MessageRow` reads. Column lists are the one thing kept as
/// macros: `concat!` splices only literals into a `const` statement, and a
/// list written out in every statement would drift from its row type.
macro_rules! message_columns {
    () => {
        "session_id, seq, tenant_id, role, content, author, status, created_at, token_count, \
         client_message_id, turn_id, meta, tools"
    };
}
pub(crate) use message_columns;

macro_rules! session_columns {
    () => {
        "id, tenant_id, owner, status, created_at, last_activity_at, message_count, latest_seq, \
         admin_assisted, takeover"
    };
}
pub(crate) use session_columns;

macro_rules! tenant_columns {
    () => {
        "id, name, source, config, kill_switch, created_at, updated_at"
    };
}
pub(crate) use tenant_columns;

#[derive(Debug, sqlx::FromRow)]
pub struct MessageRow {
    pub session_id: String,
    pub seq: i64,
    pub tenant_id: String,
    pub role: String,
    pub content: Vec<u8>,
    pub author: Option<String>,
    pub status: String,
    pub created_at: i64,
    pub token_count: i64,
    pub client_message_id: Option<String>,
    pub turn_id: Option<String>,
    pub meta: Option<String>,
    /// The answer's tool calls, encrypted JSON (`ToolCallRecord`s).
    pub tools: Option<Vec<u8>>,
}

impl MessageRow {
    pub fn decode(self, keys: &mut SessionKeys<'_>) -> Result<Message, StoreError> {
        let session_id = parse_uuid(&self.session_id)?;
        let at = Aad { tenant_id: &self.tenant_id, session_id, seq: self.seq, column: CONTENT };
        let content = keys.decrypt_string(&at, &self.content).map_err(crypto_err)?;
        let status = MessageStatus::parse(&self.status).ok_or_else(|| corrupt("status", &self.status))?;
        let tool_calls: Vec<ToolCallRecord> = match &self.tools {
            Some(sealed) => {
                let at = Aad { column: TOOLS, ..at };
                let records: Vec<ToolCallRecord> =
                    parse_json(&keys.decrypt_string(&at, sealed).map_err(crypto_err)?)?;
                records.into_iter().map(|r| ended(r, status)).collect()
            }
            None => Vec::new(),
        };
        Ok(Message {
            tools: tool_calls.iter().map(ToolCallRecord::visible).collect(),
            tool_calls,
            session_id,
            seq: self.seq,
            role: Role::parse(&self.role).ok_or_else(|| corrupt("role", &self.role))?,
            content,
            author: self.author,
            status,
            created_at: time_of("created_at", self.created_at)?,
            token_count: self.token_count,
            client_message_id: self.client_message_id,
            turn_id: self.turn_id.as_deref().map(parse_uuid).transpose()?,
            meta: self.meta.as_deref().map(parse_json::<TurnMeta>).transpose()?,
        })
    }
}

/// A call still running in an answer that no longer streams was cut by a
/// crash or a stop: it is an error, "interrupted" (SPEC §16).
fn ended(mut record: ToolCallRecord, status: MessageStatus) -> ToolCallRecord {
    if record.status == ToolStatus::Running && status != MessageStatus::Streaming {
        record.status = ToolStatus::Error;
        record.error = Some("interrupted".into());
    }
    record
}

/// An answer's tool calls as stored: encrypted JSON, none as NULL.
pub fn encrypt_tools(
    cipher: &Cipher,
    tenant_id: &str,
    session_id: Uuid,
    seq: i64,
    tools: &[ToolCallRecord],
) -> Result<Option<Vec<u8>>, StoreError> {
    if tools.is_empty() {
        return Ok(None);
    }
    let at = Aad { tenant_id, session_id, seq, column: TOOLS };
    cipher.encrypt_str(&at, &to_json(&tools)?).map(Some).map_err(crypto_err)
}

/// Decodes rows read newest first into messages in the same order.
pub fn decode_messages(rows: Vec<MessageRow>, cipher: &Cipher) -> Result<Vec<Message>, StoreError> {
    let mut keys = cipher.keys();
    rows.into_iter().map(|row| row.decode(&mut keys)).collect()
}

/// A message as `json_array(seq, role, hex(content), author, status,
/// created_at, token_count, client_message_id, turn_id, meta, hex(tools))`.
type JsonMessage = (
    i64,
    String,
    String,
    Option<String>,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Rows of one session that SQLite packed into one JSON array (one value
/// crosses from sqlx's thread instead of a row per message).
pub fn message_rows_from_json(
    json: &str,
    session_id: &str,
    tenant_id: &str,
) -> Result<Vec<MessageRow>, StoreError> {
    let packed: Vec<JsonMessage> = parse_json(json)?;
    packed
        .into_iter()
        .map(
            |(
                seq,
                role,
                content,
                author,
                status,
                created_at,
                token_count,
                client_message_id,
                turn_id,
                meta,
                tools,
            )| {
                Ok(MessageRow {
                    session_id: session_id.to_owned(),
                    seq,
                    tenant_id: tenant_id.to_owned(),
                    role,
                    content: from_hex(&content).ok_or_else(|| corrupt("hex content", &content))?,
                    author,
                    status,
                    created_at,
                    token_count,
                    client_message_id,
                    turn_id,
                    meta,
                    tools: tools.map(|t| from_hex(&t).ok_or_else(|| corrupt("hex tools", &t))).transpose()?,
                })
            },
        )
        .collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'A'..=b'F' => Some(c - b'A' + 10),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes.chunks_exact(2).map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?)).collect()
}

#[derive(Debug, sqlx::FromRow)]
pub struct SessionRow {
    pub id: String,
    pub tenant_id: String,
    pub owner: String,
    pub status: String,
    pub created_at: i64,
    pub last_activity_at: i64,
    pub message_count: i64,
    pub latest_seq: i64,
    pub admin_assisted: bool,
    pub takeover: Option<String>,
}

impl SessionRow {
    pub fn decode(self) -> Result<Session, StoreError> {
        Ok(Session {
            id: parse_uuid(&self.id)?,
            tenant_id: self.tenant_id,
            status: SessionStatus::parse(&self.status).ok_or_else(|| corrupt("status", &self.status))?,
            created_at: time_of("created_at", self.created_at)?,
            last_activity_at: time_of("last_activity_at", self.last_activity_at)?,
            message_count: self.message_count,
            admin_assisted: self.admin_assisted,
            latest_seq: self.latest_seq,
            takeover: self.takeover.as_deref().map(parse_json::<Takeover>).transpose()?,
            owner: self.owner,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub source: String,
    pub config: String,
    pub kill_switch: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TenantRow {
    pub fn decode(self) -> Result<TenantRecord, StoreError> {
        Ok(TenantRecord {
            config: parse_json(&self.config)?,
            id: self.id,
            name: self.name,
            source: self.source,
            kill_switch: self.kill_switch,
            created_at: time_of("created_at", self.created_at)?,
            updated_at: time_of("updated_at", self.updated_at)?,
        })
    }
}

/// The session row fields `begin_turn` decides on.
#[derive(Debug, sqlx::FromRow)]
pub struct TurnSessionRow {
    pub owner: String,
    pub status: String,
    pub latest_seq: i64,
    /// The session's latest page context, still sealed: a turn whose message
    /// carries none passes it to its tools without a read of its own.
    pub context: Option<Vec<u8>>,
}

/// What `begin_turn` checks in the session's messages.
#[derive(Debug, sqlx::FromRow)]
pub struct TurnCheckRow {
    pub duplicate_seq: Option<i64>,
    pub streaming: bool,
}

/// Everything `begin_turn` decides on.
#[derive(Debug, sqlx::FromRow)]
pub struct TurnStateRow {
    #[sqlx(flatten)]
    pub session: TurnSessionRow,
    #[sqlx(flatten)]
    pub check: TurnCheckRow,
}

/// What counts against a tenant's budgets today (each backend's turn
/// statement reads it).
#[derive(Debug, sqlx::FromRow)]
pub struct CountedRow {
    pub tenant_tokens: i64,
    pub tenant_cost_micro_usd: i64,
    pub subject_tokens: i64,
}

impl From<CountedRow> for switchboard_core::usage::Counted {
    fn from(c: CountedRow) -> Self {
        Self {
            tenant_tokens: c.tenant_tokens,
            tenant_cost_micro_usd: c.tenant_cost_micro_usd,
            subject_tokens: c.subject_tokens,
        }
    }
}

pub fn millis(t: &Timestamp) -> i64 {
    t.timestamp_millis()
}

/// A stored time (milliseconds since the epoch) back to a timestamp; one no
/// timestamp can hold is a corrupt value, not 1970.
pub fn time_of(column: &str, ms: i64) -> Result<Timestamp, StoreError> {
    from_millis(ms).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("cannot encode json: {e}")))
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("stored json: {e}")))
}

fn parse_uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|_| StoreError::Corrupt(format!("stored uuid {text:?}")))
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("unknown {what} {value:?}"))
}

/// A message's content as stored: encrypted for its row.
pub fn encrypt_content(
    cipher: &Cipher,
    tenant_id: &str,
    session_id: Uuid,
    seq: i64,
    content: &str,
) -> Result<Vec<u8>, StoreError> {
    cipher.encrypt_str(&Aad { tenant_id, session_id, seq, column: CONTENT }, content).map_err(crypto_err)
}

/// A session's page context, opened (sealed like its metadata: seq 0, the
/// column [`CONTEXT`]).
pub fn open_context(
    cipher: &Cipher,
    tenant_id: &str,
    session_id: Uuid,
    sealed: &[u8],
) -> Result<serde_json::Value, StoreError> {
    let at = Aad { tenant_id, session_id, seq: 0, column: CONTEXT };
    parse_json(&cipher.decrypt_string(&at, sealed).map_err(crypto_err)?)
}

pub fn crypto_err(e: CryptoError) -> StoreError {
    StoreError::Crypto(e.to_string())
}

pub fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// A unique index refused the write: for `begin_turn`, a concurrent request
/// with the same `client_message_id` won.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| d.is_unique_violation())
}

pub fn status_of(status: &str) -> Result<SessionStatus, StoreError> {
    SessionStatus::parse(status).ok_or_else(|| corrupt("status", status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decodes_both_cases_and_refuses_junk() {
        assert_eq!(from_hex("00ff7Fa0"), Some(vec![0, 255, 127, 160]));
        assert_eq!(from_hex(""), Some(vec![]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn packed_rows_unpack_with_their_session() {
        let json = r#"[[3,"assistant","0102",null,"complete",5,7,null,"t1","{}","0A"],[2,"user","",null,"complete",4,1,"c1","t1",null,null]]"#;
        let rows = message_rows_from_json(json, "s", "acme").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].seq, rows[0].content.as_slice(), rows[0].meta.as_deref()),
            (3, &[1u8, 2][..], Some("{}"))
        );
        assert_eq!((rows[1].session_id.as_str(), rows[1].tenant_id.as_str()), ("s", "acme"));
        assert_eq!(rows[1].client_message_id.as_deref(), Some("c1"));
        assert!(message_rows_from_json("[[1]]", "s", "acme").is_err());
    }

    #[test]
    fn a_stored_time_no_timestamp_can_hold_is_corrupt() {
        assert_eq!(time_of("created_at", 1_700_000_000_123).unwrap().timestamp_millis(), 1_700_000_000_123);
        let err = time_of("created_at", i64::MAX).unwrap_err();
        assert!(matches!(&err, StoreError::Corrupt(m) if m.starts_with("created_at: ")), "{err}");
        let row = SessionRow {
            id: Uuid::nil().to_string(),
            tenant_id: "acme".into(),
            owner: "visitor:x".into(),
            status: "active".into(),
            created_at: 0,
            last_activity_at: i64::MIN,
            message_count: 0,
            latest_seq: 0,
            admin_assisted: false,
            takeover: None,
        };
        assert!(matches!(row.decode(), Err(StoreError::Corrupt(m)) if m.starts_with("last_activity_at: ")));
    }
}
