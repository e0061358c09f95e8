//! `session.idle` (SPEC §19): the runtime's part of abandoned-cart
//! recovery. For each tenant that wants it, every `min(idle_after / 2, 30 s)`
//! this node looks for sessions quiet for `idle_after` that have had no
//! `session.idle` since their last activity, and writes one for each (with
//! the subject and the last `display` of each tool the session used, e.g.
//! the cart). The mark and the event are one transaction that only the
//! first node to get there writes, so there is one event per quiet stretch
//! whichever nodes look. During the tenant's quiet hours nothing is
//! written: the next look after they end finds the sessions still quiet
//! (and skips those whose visitor came back).
//!
//! Sessions quiet for more than a day past `idle_after` are not looked at
//! (an endpoint added later is not told about every old session).

use crate::state::AppState;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use switchboard_core::outbound::{subject_json, EventType, Outbound};
use switchboard_core::store::outbox::IdleSession;
use switchboard_core::store::{Store, StoreError};
use switchboard_core::time::Timestamp;
use switchboard_core::Subject;
use tokio::time::Instant;

/// Idle sessions written per tenant per look.
const PER_LOOK: u32 = 100;
/// The messages read back for a session's displays.
const DISPLAY_MESSAGES: u32 = 50;
/// How far past `idle_after` a session is still looked at.
const LOOK_BACK: chrono::Duration = chrono::Duration::days(1);

/// When each tenant is looked at next.
#[derive(Default)]
pub struct IdleChecks {
    next: HashMap<String, Instant>,
}

impl IdleChecks {
    /// Looks at every tenant whose turn has come.
    pub async fn run_due(&mut self, state: &AppState) {
        let tenants = state.tenants.snapshot();
        self.next.retain(|id, _| tenants.contains_key(id));
        for tenant in tenants.values() {
            let Some(events) = tenant.events.as_ref().filter(|e| e.wants(EventType::SessionIdle)) else {
                continue;
            };
            let due = self.next.get(&tenant.id).is_none_or(|at| Instant::now() >= *at);
            if !due {
                continue;
            }
            self.next.insert(tenant.id.clone(), Instant::now() + events.idle_check_every());
            if let Err(e) = look(state.store.as_ref(), &tenant.id, events, state.clock.now()).await {
                tracing::warn!(tenant = %tenant.id, error = %e, "cannot look for idle sessions; will try again");
            }
        }
    }
}

/// Writes `session.idle` for the tenant's sessions quiet at `now`; returns
/// how many. Nothing during quiet hours.
pub async fn look(
    store: &dyn Store,
    tenant_id: &str,
    events: &Outbound,
    now: Timestamp,
) -> Result<usize, StoreError> {
    if events.is_quiet(now) {
        return Ok(0);
    }
    let before = now - chrono::Duration::from_std(events.idle_after).unwrap_or_default();
    let idle = store.idle_sessions(tenant_id, before - LOOK_BACK, before, PER_LOOK).await?;
    let mut written = 0;
    for session in &idle {
        // One session that cannot be read holds up none of the others.
        match tell(store, tenant_id, events, session, now).await {
            Ok(marked) => written += usize::from(marked),
            Err(e) => {
                tracing::warn!(session_id = %session.session_id, error = %e, "cannot write session.idle")
            }
        }
    }
    Ok(written)
}

/// Writes the session's `session.idle`; false when another node did first.
async fn tell(
    store: &dyn Store,
    tenant_id: &str,
    events: &Outbound,
    session: &IdleSession,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let displays = displays(store, tenant_id, session).await?;
    let subject = Subject::parse(&session.owner).map(|s| subject_json(&s)).unwrap_or(Value::Null);
    let data = json!({"subject": subject, "displays": displays});
    match events.event(EventType::SessionIdle, tenant_id, session.session_id, now, data) {
        Some(event) => store.mark_idle(session, &event).await,
        None => Ok(false),
    }
}

/// Each tool's last `display` in the session's recent messages, by name.
async fn displays(store: &dyn Store, tenant_id: &str, session: &IdleSession) -> Result<Value, StoreError> {
    let newest_first = store.list_messages(tenant_id, session.session_id, DISPLAY_MESSAGES, None).await?;
    let mut displays = Map::new();
    for tool in newest_first.iter().flat_map(|m| m.tools.iter().rev()) {
        if let (Some(name), Some(display)) = (tool["name"].as_str(), tool.get("display")) {
            displays.entry(name.to_owned()).or_insert_with(|| display.clone());
        }
    }
    Ok(Value::Object(displays))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;
    use switchboard_core::outbound::QuietHours;
    use switchboard_core::store::NewSession;
    use switchboard_testkit::MemoryStore;

    fn utc(day: u32, hour: u32, minute: u32) -> Timestamp {
        chrono::Utc.with_ymd_and_hms(2026, 12, day, hour, minute, 0).unwrap()
    }

    async fn session(store: &MemoryStore, owner: &str, at: Timestamp) -> uuid::Uuid {
        let new = NewSession {
            id: uuid::Uuid::new_v4(),
            tenant_id: "acme".into(),
            owner: owner.into(),
            metadata: None,
            now: at,
            event: None,
        };
        store.create_session(&new).await.unwrap().id
    }

    async fn sent(store: &MemoryStore, now: Timestamp) -> Vec<Value> {
        let leased =
            store.lease_deliveries("test", now, now + chrono::Duration::minutes(1), 100).await.unwrap();
        leased.iter().map(|d| serde_json::from_str(&d.body).unwrap()).collect()
    }

    /// Time moves by the `now` each look is given, as a test clock would.
    #[tokio::test]
    async fn quiet_hours_put_session_idle_off_until_they_end_and_it_is_sent_once() {
        let store = MemoryStore::default();
        let mut events =
            Outbound::new("https://shop.example/hooks".into(), String::new(), &[EventType::SessionIdle]);
        events.idle_after = Duration::from_secs(1800);
        events.quiet_hours = Some(QuietHours::parse("21-08").unwrap());
        events.time_zone = chrono_tz::Europe::Paris;
        // 20:50 in Paris; the visitor leaves.
        let sid = session(&store, "user:alice", utc(7, 19, 50)).await;
        // 21:10 in Paris: quiet for only 20 minutes.
        assert_eq!(look(&store, "acme", &events, utc(7, 20, 10)).await.unwrap(), 0);
        // 21:30 in Paris: quiet long enough, but within the quiet hours.
        assert_eq!(look(&store, "acme", &events, utc(7, 20, 30)).await.unwrap(), 0);
        assert_eq!(look(&store, "acme", &events, utc(8, 6, 59)).await.unwrap(), 0, "07:59 in Paris");
        // 08:00 in Paris: the quiet hours are over.
        assert_eq!(look(&store, "acme", &events, utc(8, 7, 0)).await.unwrap(), 1);
        let idle = sent(&store, utc(8, 7, 0)).await;
        assert_eq!(idle.len(), 1);
        assert_eq!((&idle[0]["type"], &idle[0]["session_id"]), (&json!("session.idle"), &json!(sid)));
        assert_eq!(idle[0]["data"], json!({"subject": {"kind": "user", "id": "alice"}, "displays": {}}));
        // Once per quiet stretch.
        assert_eq!(look(&store, "acme", &events, utc(8, 7, 30)).await.unwrap(), 0);
        // The same hours in UTC: 20:30 UTC is 21:30 in Paris but not quiet in UTC.
        events.time_zone = chrono_tz::UTC;
        session(&store, "visitor:00000000-0000-4000-8000-000000000001", utc(8, 19, 50)).await;
        assert_eq!(look(&store, "acme", &events, utc(8, 20, 30)).await.unwrap(), 1);
    }
}
