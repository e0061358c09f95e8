//! What a client rebuilds of a session from its event stream (SPEC §5, §6),
//! with the rules a correct stream must keep: messages replace by seq,
//! deltas append exactly at the current length of their revision, a final
//! state is never delivered twice, durable events come in seq order, and
//! SSE ids sit exactly on the events whose seq is final.

use super::sse::SseEvent;
use serde_json::Value;
use std::collections::BTreeMap;

/// One message as the client shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub role: String,
    pub content: String,
    pub status: String,
    pub revision: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Transcript {
    pub messages: BTreeMap<i64, Entry>,
    /// The last SSE `id:` seen, as `EventSource` keeps `lastEventId`.
    pub last_id: Option<i64>,
    /// Every event applied, as `kind data`, for failure messages.
    pub log: Vec<String>,
    /// The cursor the current connection was opened with, if any: its
    /// `session` event's id must then not run ahead of it.
    pub resumed_from: Option<i64>,
}

fn chars(s: &str) -> u64 {
    s.chars().count() as u64
}

fn seq_of(payload: &Value) -> i64 {
    payload["seq"].as_i64().unwrap_or_else(|| panic!("no integer seq in {payload}"))
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_else(|| panic!("no string {key} in {v}")).to_owned()
}

impl Transcript {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one SSE event, checking its `id:` against SPEC §5.
    pub fn apply_sse(&mut self, ev: &SseEvent) {
        let id = ev.id.as_deref().map(|s| s.parse::<i64>().unwrap_or_else(|_| panic!("id {s:?} of {ev:?}")));
        let payload = if ev.data.is_empty() { Value::Null } else { ev.json() };
        let expected_id = match ev.event.as_str() {
            "session" => {
                let latest = payload["latest_seq"].as_i64().expect("latest_seq");
                match self.resumed_from {
                    None => Some(latest),
                    // The cursor (or no id, which keeps the client's at the cursor).
                    Some(c) if id.is_none() => {
                        self.log.push(format!("session {payload} (no id; resumed from {c})"));
                        return;
                    }
                    Some(c) => Some(c.min(latest)),
                }
            }
            "message" if payload["status"] != "streaming" => Some(seq_of(&payload)),
            "stream_end" => Some(seq_of(&payload)),
            _ => None,
        };
        assert_eq!(id, expected_id, "SSE id of {ev:?}\nafter: {:#?}", self.log);
        if id.is_some() {
            self.last_id = id;
        }
        self.apply(&ev.event, &payload);
    }

    /// Applies one event given by kind and payload (a WebSocket frame's
    /// fields, or an SSE event's data).
    pub fn apply(&mut self, kind: &str, payload: &Value) {
        self.log.push(format!("{kind} {payload}"));
        match kind {
            "message" => self.message(payload),
            "stream_start" => {
                let seq = seq_of(payload);
                assert!(
                    !self.messages.contains_key(&seq),
                    "stream_start of seq {seq} that the client already has\n{:#?}",
                    self.log
                );
                self.assert_in_order(seq);
                let entry = Entry {
                    role: "assistant".into(),
                    content: String::new(),
                    status: "streaming".into(),
                    revision: 0,
                };
                self.messages.insert(seq, entry);
            }
            "stream_delta" => {
                let seq = seq_of(payload);
                let log = self.log.clone();
                let entry = self
                    .messages
                    .get_mut(&seq)
                    .unwrap_or_else(|| panic!("delta of unknown seq {seq}\n{log:#?}"));
                assert_eq!(entry.status, "streaming", "delta for a final message\n{log:#?}");
                let revision = payload["revision"].as_u64().expect("revision");
                if revision < entry.revision {
                    return; // an older revision's delta is dropped (SPEC §5)
                }
                assert_eq!(revision, entry.revision, "delta of an unknown revision\n{log:#?}");
                let offset = payload["offset"].as_u64().expect("offset");
                assert_eq!(offset, chars(&entry.content), "gap or overlap at {payload}\n{log:#?}");
                entry.content.push_str(&text(payload, "text"));
            }
            "stream_replace" => {
                let seq = seq_of(payload);
                let entry = self.messages.get_mut(&seq).expect("replace of an unknown seq");
                entry.revision = payload["revision"].as_u64().expect("revision");
                entry.content = text(payload, "text");
            }
            "stream_end" => {
                let seq = seq_of(payload);
                let message = &payload["message"];
                assert_eq!(seq_of(message), seq, "stream_end seq vs its message: {payload}");
                if let Some(entry) = self.messages.get(&seq) {
                    assert_eq!(
                        entry.status, "streaming",
                        "stream_end of a final message (duplicate)\n{:#?}",
                        self.log
                    );
                    assert_eq!(
                        entry.content,
                        text(message, "content"),
                        "the deltas did not add up to the final text\n{:#?}",
                        self.log
                    );
                }
                self.finalize(message);
            }
            _ => {}
        }
    }

    fn message(&mut self, m: &Value) {
        let seq = seq_of(m);
        let status = text(m, "status");
        if status == "streaming" {
            if let Some(entry) = self.messages.get(&seq) {
                assert_eq!(
                    entry.status, "streaming",
                    "a final message replayed as streaming\n{:#?}",
                    self.log
                );
            } else {
                self.assert_in_order(seq);
            }
            let revision =
                m["revision"].as_u64().unwrap_or_else(|| panic!("streaming message without revision: {m}"));
            let entry = Entry { role: text(m, "role"), content: text(m, "content"), status, revision };
            self.messages.insert(seq, entry);
        } else {
            self.finalize(m);
        }
    }

    /// A message in its final state; never twice, never past a gap.
    fn finalize(&mut self, m: &Value) {
        let seq = seq_of(m);
        if let Some(old) = self.messages.get(&seq) {
            assert_eq!(old.status, "streaming", "seq {seq} delivered final twice\n{:#?}", self.log);
        } else {
            self.assert_in_order(seq);
        }
        let entry = Entry {
            role: text(m, "role"),
            content: text(m, "content"),
            status: text(m, "status"),
            revision: 0,
        };
        self.messages.insert(seq, entry);
    }

    /// A new seq comes right after the highest one the client has (once it
    /// has any: a subscription without cursor starts wherever it starts).
    fn assert_in_order(&self, seq: i64) {
        if let Some((&last, _)) = self.messages.last_key_value() {
            assert_eq!(seq, last + 1, "seq {seq} after {last}: a gap or reordering\n{:#?}", self.log);
        }
    }

    /// `(seq, role, content, status)` of every message.
    pub fn rows(&self) -> Vec<(i64, String, String, String)> {
        self.messages.iter().map(|(s, e)| (*s, e.role.clone(), e.content.clone(), e.status.clone())).collect()
    }

    /// The same rows from REST history (any order).
    pub fn rows_of_history(history: &[Value]) -> Vec<(i64, String, String, String)> {
        let mut rows: Vec<_> = history
            .iter()
            .map(|m| (seq_of(m), text(m, "role"), text(m, "content"), text(m, "status")))
            .collect();
        rows.sort();
        rows
    }

    /// Whether every message up to `seq` is there in a final state.
    pub fn final_upto(&self, seq: i64) -> bool {
        (1..=seq).all(|s| self.messages.get(&s).is_some_and(|e| e.status != "streaming"))
    }
}
