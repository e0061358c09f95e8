//! `[tenants.events]` (SPEC §19): where a tenant's outbound events go and
//! when, checked as far as can be without the secret (read from the
//! environment when the tenant is built, `tenancy::events`).

use super::raw::RawEvents;
use std::time::Duration;
use switchboard_core::outbound::{EventType, Outbound, QuietHours};

/// The checked section: everything but the secret's value.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// The variable holding the `whsec_` secret.
    pub secret_env: String,
    /// The settings, with an empty `secret` until the tenant is built.
    pub outbound: Outbound,
}

/// The longest delay a retry schedule may hold: a day.
const MAX_DELAY_SECS: u64 = 86_400;
/// The longest `idle_after_secs`: thirty days.
const MAX_IDLE_SECS: u64 = 30 * 86_400;

pub fn events(raw: Option<&RawEvents>) -> Result<Option<EventsConfig>, String> {
    let Some(raw) = raw else { return Ok(None) };
    super::tools::http_url("`events.url`", &raw.url)?;
    let secret_env = raw.secret_env.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
        "`events.secret_env`: is required (the variable holding the endpoint's whsec_ secret)".to_owned()
    })?;
    let mut types = Vec::new();
    for name in raw.types.iter().flatten() {
        let kind = EventType::parse(name).ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            format!("`events.types`: `{name}` is not an event type ({})", known.join(", "))
        })?;
        types.push(kind);
    }
    if raw.types.as_ref().is_some_and(Vec::is_empty) {
        return Err("`events.types`: leave it out for every type; an empty list sends nothing".into());
    }
    let mut outbound = Outbound::new(raw.url.clone(), String::new(), &types);
    if let Some(secs) = raw.idle_after_secs {
        if secs == 0 || secs > MAX_IDLE_SECS {
            return Err("`events.idle_after_secs`: must be 1 to 2592000 (thirty days)".into());
        }
        outbound.idle_after = Duration::from_secs(secs);
    }
    if let Some(hours) = &raw.quiet_hours {
        outbound.quiet_hours =
            Some(QuietHours::parse(hours).map_err(|e| format!("`events.quiet_hours`: {e}"))?);
    }
    if let Some(zone) = &raw.time_zone {
        outbound.time_zone = zone.parse().map_err(|_| {
            format!("`events.time_zone`: `{zone}` is not an IANA time zone (e.g. Europe/Paris)")
        })?;
    }
    if let Some(schedule) = &raw.retry_schedule_secs {
        if schedule.is_empty() || schedule.iter().any(|s| *s == 0 || *s > MAX_DELAY_SECS) {
            return Err("`events.retry_schedule_secs`: one or more delays of 1 to 86400 seconds".into());
        }
        outbound.retry_schedule = schedule.iter().map(|s| Duration::from_secs(*s)).collect();
    }
    Ok(Some(EventsConfig { secret_env, outbound }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(extra: &str) -> RawEvents {
        let text = format!("url = \"https://shop.example/hooks\"\nsecret_env = \"HOOK_SECRET\"\n{extra}");
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn defaults_and_every_setting() {
        let plain = events(Some(&raw(""))).unwrap().unwrap();
        assert_eq!(plain.secret_env, "HOOK_SECRET");
        assert!(EventType::ALL.iter().all(|t| plain.outbound.wants(*t)));
        assert_eq!(plain.outbound.idle_after, Duration::from_secs(1800));
        assert_eq!(plain.outbound.retry_schedule.len(), 5);
        let set =
            events(Some(&raw("types = [\"session.idle\"]\nidle_after_secs = 60\nquiet_hours = \"21-08\"\n\
             time_zone = \"Europe/Paris\"\nretry_schedule_secs = [1, 2]")))
            .unwrap()
            .unwrap();
        assert!(set.outbound.wants(EventType::SessionIdle) && !set.outbound.wants(EventType::TurnCompleted));
        assert_eq!(set.outbound.idle_after, Duration::from_secs(60));
        assert_eq!(set.outbound.time_zone, chrono_tz::Europe::Paris);
        assert_eq!(set.outbound.retry_schedule, [Duration::from_secs(1), Duration::from_secs(2)]);
    }

    #[test]
    fn each_mistake_is_named() {
        for (extra, needle) in [
            ("types = [\"turn.started\"]", "events.types"),
            ("types = []", "events.types"),
            ("idle_after_secs = 0", "idle_after_secs"),
            ("idle_after_secs = 2592001", "idle_after_secs"),
            ("quiet_hours = \"9pm-8am\"", "quiet_hours"),
            ("time_zone = \"Mars/Olympus\"", "time_zone"),
            ("retry_schedule_secs = []", "retry_schedule_secs"),
            ("retry_schedule_secs = [0]", "retry_schedule_secs"),
        ] {
            let err = events(Some(&raw(extra))).unwrap_err();
            assert!(err.contains(needle), "{extra}: {err}");
        }
        let no_secret: RawEvents = toml::from_str("url = \"https://shop.example/hooks\"").unwrap();
        assert!(events(Some(&no_secret)).unwrap_err().contains("secret_env"));
        let bad_url: RawEvents = toml::from_str("url = \"ftp://x\"\nsecret_env = \"S\"").unwrap();
        assert!(events(Some(&bad_url)).unwrap_err().contains("events.url"));
    }
}
