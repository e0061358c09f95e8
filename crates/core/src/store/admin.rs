//! What the admin API asks of the store (SPEC §12): the tenant-wide session
//! list with its filters, sort keys and keyset position, and small runtime
//! settings every node must agree on (the global kill switch). Only shapes
//! live here; the SQL is the store's, the HTTP the server's.

use crate::model::SessionStatus;
use crate::time::Timestamp;
use uuid::Uuid;

/// The key the admin session list is ordered by; ties always break by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(rename_all = "snake_case"))]
pub enum SessionSort {
    CreatedAt,
    LastActivityAt,
    MessageCount,
}

impl SessionSort {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::LastActivityAt => "last_activity_at",
            Self::MessageCount => "message_count",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::CreatedAt, Self::LastActivityAt, Self::MessageCount].into_iter().find(|k| k.as_str() == s)
    }

    /// The key's value for `session`, as the store orders it (milliseconds
    /// for times).
    pub fn key_of(self, session: &crate::model::Session) -> i64 {
        match self {
            Self::CreatedAt => session.created_at.timestamp_millis(),
            Self::LastActivityAt => session.last_activity_at.timestamp_millis(),
            Self::MessageCount => session.message_count,
        }
    }
}

/// Where the previous page ended: the last row's sort key and id. The next
/// page starts strictly after it in the list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionKey {
    pub key: i64,
    pub id: Uuid,
}

/// One page of a tenant's sessions, filtered and ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSessionQuery {
    pub tenant_id: String,
    /// The owner subject (`user:<sub>`), when filtering by user.
    pub owner: Option<String>,
    pub status: Option<SessionStatus>,
    pub admin_assisted: Option<bool>,
    /// `created_at >= created_from`.
    pub created_from: Option<Timestamp>,
    /// `created_at <= created_to`.
    pub created_to: Option<Timestamp>,
    pub sort: SessionSort,
    pub descending: bool,
    pub after: Option<SessionKey>,
    pub limit: u32,
}

impl AdminSessionQuery {
    /// The first page of a tenant's sessions as the API lists them by
    /// default: newest created first, 50 of them, no filter.
    pub fn new(tenant_id: impl Into<String>) -> Self {
        Self {
            tenant_id: tenant_id.into(),
            owner: None,
            status: None,
            admin_assisted: None,
            created_from: None,
            created_to: None,
            sort: SessionSort::CreatedAt,
            descending: true,
            after: None,
            limit: 50,
        }
    }
}

/// A small JSON value kept under a name, shared by every node (the global
/// kill switch, say). `updated_at` says which of two writes is later.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeSetting {
    pub key: String,
    pub value: serde_json::Value,
    pub updated_at: Timestamp,
}
