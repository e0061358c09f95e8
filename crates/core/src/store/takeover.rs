//! What a takeover asks of the store (SPEC §12): an agent taking a session
//! over or giving it back, and an agent's message while it holds it. Each is
//! one transaction that takes the next seq (as `begin_turn` does, from
//! `sessions.latest_seq`) for the message it writes together with the change
//! of status, so no other write can slip between them. Only shapes and the
//! decision live here; the SQL is the store's, the HTTP the server's.

use crate::model::{Message, Session, SessionStatus, Takeover};
use crate::time::Timestamp;
use uuid::Uuid;

/// A change of who answers a session, and the `system` note that says so.
#[derive(Debug, Clone)]
pub struct HoldChange {
    pub tenant_id: String,
    pub session_id: Uuid,
    /// `Some`: an agent takes the session (status `human`, `admin_assisted`,
    /// `takeover` set). `None`: it goes back to the AI (status `active`,
    /// `takeover` cleared).
    pub takeover: Option<Takeover>,
    /// With no `takeover`: the model asked for a person (status `waiting`)
    /// instead of the session going back to the AI.
    pub waiting: bool,
    /// The note's text ("Ada joined the conversation").
    pub note: String,
    /// The tenant's `max_messages_per_session`: what falls beyond it goes
    /// with the note, as it does with a turn's messages.
    pub max_messages: u32,
    pub now: Timestamp,
    /// `takeover.started`, `takeover.ended` or `handoff.requested` (SPEC
    /// §19), written with the change.
    pub event: Option<crate::outbound::NewEvent>,
}

impl HoldChange {
    /// The session's status once the change is written.
    pub fn status(&self) -> SessionStatus {
        match (&self.takeover, self.waiting) {
            (Some(_), _) => SessionStatus::Human,
            (None, true) => SessionStatus::Waiting,
            (None, false) => SessionStatus::Active,
        }
    }
}

/// What a [`HoldChange`] did.
// Returned once per request and consumed at once: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum HoldOutcome {
    /// Written: the session as it is now and the note (with its seq).
    Changed {
        session: Session,
        note: Message,
    },
    /// Nothing to do: the same agent already holds it (a retried takeover).
    Unchanged {
        session: Session,
    },
    NotFound,
    Closed,
    /// A release of a session no agent holds.
    NotHuman,
    /// An answer is still streaming: the change would put the note's seq
    /// before the answer's end, so it waits until the answer is stopped.
    InProgress,
}

/// An agent's message into a session it holds.
#[derive(Debug, Clone)]
pub struct AgentMessage {
    pub tenant_id: String,
    pub session_id: Uuid,
    /// The agent's display name, stored as the message's `author`.
    pub author: String,
    pub content: String,
    pub token_count: i64,
    /// The tenant's `max_messages_per_session`, as in [`HoldChange`].
    pub max_messages: u32,
    pub now: Timestamp,
}

// Returned once per request and consumed at once: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AgentMessageOutcome {
    Stored(Message),
    NotFound,
    Closed,
    /// No agent holds the session.
    NotHuman,
}

/// What the session's state says a [`HoldChange`] does; the store asks this
/// inside its transaction, with the session row locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldDecision {
    Write,
    Unchanged,
    Refuse(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Closed,
    NotHuman,
    InProgress,
}

/// `status`, the current holder and whether an answer streams → what the
/// change does. Taking a session another agent holds hands it over (a new
/// note names the new agent); the same agent (by name) again changes nothing.
pub fn decide(
    status: SessionStatus,
    current: Option<&Takeover>,
    streaming: bool,
    change: &HoldChange,
) -> HoldDecision {
    match (status, &change.takeover) {
        (SessionStatus::Closed, _) => HoldDecision::Refuse(Refusal::Closed),
        (SessionStatus::Human, Some(new)) if current.is_some_and(|c| c.agent == new.agent) => {
            HoldDecision::Unchanged
        }
        // A handoff asked again, or while an agent already answers.
        (SessionStatus::Waiting | SessionStatus::Human, None) if change.waiting => HoldDecision::Unchanged,
        (SessionStatus::Active, None) if !change.waiting => HoldDecision::Refuse(Refusal::NotHuman),
        _ if streaming => HoldDecision::Refuse(Refusal::InProgress),
        _ => HoldDecision::Write,
    }
}

impl From<Refusal> for HoldOutcome {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Closed => Self::Closed,
            Refusal::NotHuman => Self::NotHuman,
            Refusal::InProgress => Self::InProgress,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AgentRef;

    fn hold(name: &str) -> Takeover {
        Takeover { agent: AgentRef { name: name.into() }, since: crate::time::from_millis(0).unwrap() }
    }

    fn change(takeover: Option<Takeover>) -> HoldChange {
        HoldChange {
            event: None,
            tenant_id: "acme".into(),
            session_id: Uuid::nil(),
            takeover,
            waiting: false,
            note: String::new(),
            max_messages: 1000,
            now: crate::time::from_millis(0).unwrap(),
        }
    }

    #[test]
    fn takeovers_and_releases_follow_the_status() {
        use SessionStatus::{Active, Closed, Human};
        let take = change(Some(hold("Ada")));
        let release = change(None);
        let ada = hold("Ada");
        let bob = hold("Bob");
        assert_eq!(decide(Active, None, false, &take), HoldDecision::Write);
        assert_eq!(decide(Active, None, true, &take), HoldDecision::Refuse(Refusal::InProgress));
        assert_eq!(decide(Human, Some(&ada), false, &take), HoldDecision::Unchanged);
        assert_eq!(decide(Human, Some(&bob), false, &take), HoldDecision::Write, "a handover");
        assert_eq!(decide(Closed, None, false, &take), HoldDecision::Refuse(Refusal::Closed));
        assert_eq!(decide(Human, Some(&ada), false, &release), HoldDecision::Write);
        assert_eq!(decide(Active, None, false, &release), HoldDecision::Refuse(Refusal::NotHuman));
        assert_eq!(decide(Closed, None, false, &release), HoldDecision::Refuse(Refusal::Closed));
    }
}

#[cfg(test)]
mod waiting_tests {
    use super::*;

    fn handoff() -> HoldChange {
        HoldChange {
            event: None,
            tenant_id: "acme".into(),
            session_id: Uuid::nil(),
            takeover: None,
            waiting: true,
            note: "Handoff requested".into(),
            max_messages: 1000,
            now: crate::time::from_millis(0).unwrap(),
        }
    }

    #[test]
    fn a_handoff_waits_for_an_agent_who_takes_over_or_releases() {
        use SessionStatus::{Active, Closed, Human, Waiting};
        let ask = handoff();
        assert_eq!(ask.status(), Waiting);
        assert_eq!(decide(Active, None, false, &ask), HoldDecision::Write);
        assert_eq!(decide(Waiting, None, false, &ask), HoldDecision::Unchanged, "asked twice");
        assert_eq!(decide(Human, None, false, &ask), HoldDecision::Unchanged, "an agent is there");
        assert_eq!(decide(Closed, None, false, &ask), HoldDecision::Refuse(Refusal::Closed));
        let release = HoldChange { waiting: false, ..handoff() };
        assert_eq!(release.status(), Active);
        assert_eq!(
            decide(Waiting, None, false, &release),
            HoldDecision::Write,
            "an agent sends it back to the AI"
        );
        let take = HoldChange {
            takeover: Some(Takeover {
                agent: crate::model::AgentRef { name: "Ada".into() },
                since: crate::time::from_millis(0).unwrap(),
            }),
            ..release
        };
        assert_eq!(take.status(), Human);
        assert_eq!(decide(Waiting, None, false, &take), HoldDecision::Write);
    }
}
