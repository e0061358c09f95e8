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
use switchboard_core::tenant::Tenant;
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
            if let Err(e) = look(state.store.as_ref(), tenant, events, state.clock.now()).await {
                tracing::warn!(tenant = %tenant.id, error = %e, "cannot look for idle sessions; will try again");
            }
        }
    }
}

/// Writes `session.idle` for the tenant's sessions quiet at `now`; returns
/// how many. Nothing during quiet hours.
pub async fn look(
    store: &dyn Store,
    tenant: &Tenant,
    events: &Outbound,
    now: Timestamp,
) -> Result<usize, StoreError> {
    if events.is_quiet(now) {
        return Ok(0);
    }
    let before = now - chrono::Duration::from_std(events.idle_after).unwrap_or_default();
    let idle = store.idle_sessions(&tenant.id, before - LOOK_BACK, before, PER_LOOK).await?;
    let mut written = 0;
    for session in &idle {
        let displays = displays(store, &tenant.id, session).await?;
        let subject = Subject::parse(&session.owner).map(|s| subject_json(&s)).unwrap_or(Value::Null);
        let data = json!({"subject": subject, "displays": displays});
        let event = events.event(EventType::SessionIdle, &tenant.id, session.session_id, now, data);
        if let Some(event) = event {
            written += usize::from(store.mark_idle(session, &event).await?);
        }
    }
    Ok(written)
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
