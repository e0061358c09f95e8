//! Text that comes in one read (SPEC §5: tokens are flushed as they arrive):
//! the first piece goes out alone at once; the pieces after it that the
//! provider's stream already holds go out together as one delta, at the
//! offset of the first of them; text that is not there yet is never waited for.

use super::*;
use switchboard_core::events::SessionEvent;
use switchboard_testkit::{tenant, Reply, Step};

/// The deltas of a turn: (offset, text).
fn deltas(done: &Done) -> Vec<(usize, String)> {
    done.events
        .iter()
        .filter_map(|e| match &**e {
            SessionEvent::StreamDelta { offset, text, .. } => Some((*offset as usize, text.clone())),
            _ => None,
        })
        .collect()
}

async fn answered(reply: Reply) -> Done {
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").then(reply));
    let h = Harness::new(tenant("acme", route(&p, |_| {}), vec![]));
    let (sid, v) = h.session().await.unwrap();
    turn(&h, sid, &v, "hi").await
}

#[tokio::test(start_paused = true)]
async fn pieces_that_came_together_go_out_as_one_delta_after_the_first() {
    let done = answered(Reply::text(&["Hé", "llo", " the", "re"])).await;
    assert_eq!(deltas(&done), [(0, "Hé".to_owned()), (2, "llo there".to_owned())]);
    assert_eq!(done.end().unwrap().message.content, "Héllo there");
}

#[tokio::test(start_paused = true)]
async fn pieces_that_come_apart_go_out_apart() {
    let done = answered(Reply::paced(&["a", "b", "c"], ms(5))).await;
    assert_eq!(deltas(&done), [(0, "a".to_owned()), (1, "b".to_owned()), (2, "c".to_owned())]);
    // A piece that is late is not waited for: what is there goes first.
    let steps = [Step::delta("a"), Step::delta("b"), Step::delta("c"), Step::wait_ms(50), Step::delta("d")];
    let done = answered(Reply::steps(steps)).await;
    assert_eq!(deltas(&done), [(0, "a".to_owned()), (1, "bc".to_owned()), (3, "d".to_owned())]);
}

#[tokio::test(start_paused = true)]
async fn a_joined_delta_stops_growing_past_four_kilobytes() {
    let piece = "x".repeat(1000);
    let done = answered(Reply::text(&[piece.as_str(); 10])).await;
    let sizes: Vec<usize> = deltas(&done).iter().map(|(_, t)| t.len()).collect();
    assert_eq!(sizes, [1000, 5000, 4000]);
    assert_eq!(done.text, piece.repeat(10));
}

#[tokio::test(start_paused = true)]
async fn text_joined_before_a_failure_is_kept() {
    let failure = Step::Fail(switchboard_core::provider::ProviderError::Unavailable("reset".into()));
    let done = answered(Reply::steps([Step::delta("a"), Step::delta("b"), Step::delta("c"), failure])).await;
    assert_eq!(deltas(&done), [(0, "a".to_owned()), (1, "bc".to_owned())]);
    assert!(done.error().is_some(), "the failure still ends the turn");
    assert_eq!(done.text, "abc");
}
