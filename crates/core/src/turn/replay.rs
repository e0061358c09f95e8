//! The events of a turn that already ended, for a retried request (same
//! `client_message_id`): the same vocabulary as a live turn, rebuilt from
//! what was stored.

use super::run::final_event;
use crate::events::SessionEvent;
use crate::model::Message;

pub fn finished_turn_events(
    user: &Message,
    assistant: Option<&Message>,
    trace_id: &str,
) -> Vec<SessionEvent> {
    let mut events = vec![SessionEvent::Message(user.clone())];
    if let Some(answer) = assistant {
        let turn_id = answer.turn_id.unwrap_or_default();
        events.push(SessionEvent::StreamStart { turn_id, seq: answer.seq, user_seq: user.seq });
        if !answer.content.is_empty() {
            events.push(SessionEvent::StreamDelta {
                turn_id,
                seq: answer.seq,
                revision: 0,
                offset: 0,
                text: answer.content.clone(),
            });
        }
        events.push(final_event(answer.clone(), trace_id));
    }
    events
}
