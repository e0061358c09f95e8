//! Stopping an answer (SPEC §11.2–3): a client leaving under
//! `on_disconnect = "abort"`, a session deleted or closed, each stops the
//! provider at once and keeps the partial text as `aborted`; under
//! `continue` a client leaving changes nothing; a shutdown that outlives its
//! grace keeps what it has as `interrupted`.

use super::*;
use switchboard_core::events::SessionEvent;
use switchboard_core::model::{FinishReason, MessageStatus};
use switchboard_core::tenant::OnDisconnect;
use switchboard_core::turn::StopReason;
use switchboard_testkit::{tenant, Reply};

fn paced(p: ScriptedProvider) -> Arc<ScriptedProvider> {
    Arc::new(p.then(Reply::paced(&refs(&pieces(100)), ms(100))))
}

/// Reads the turn until `n` deltas came; returns their text.
async fn read_deltas(stream: &mut TurnStream, n: usize) -> String {
    let mut seen = Vec::new();
    while seen.len() < n {
        let event = stream.next().await.expect("the turn ended early");
        if matches!(&*event, SessionEvent::StreamDelta { .. }) {
            seen.push(event);
        }
    }
    text_of(&seen)
}

/// The final event of the session's turn, as other subscribers see it.
async fn final_event(events: &mut switchboard_core::bus::EventReceiver) -> Arc<SessionEvent> {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            // Only the end matters here: what this subscriber missed, it skips.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(e) => panic!("{e}"),
        };
        if matches!(&*event, SessionEvent::StreamEnd(_) | SessionEvent::Error { .. }) {
            return event;
        }
        if let SessionEvent::Message(m) = &*event {
            if m.status != MessageStatus::Streaming && m.role == switchboard_core::Role::Assistant {
                return event;
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_leaving_under_abort_stops_the_answer_and_keeps_the_partial() {
    let p = paced(ScriptedProvider::new("openai", "gpt-test"));
    let mut t = tenant("acme", route(&p, |_| {}), vec![]);
    t.on_disconnect = OnDisconnect::Abort;
    let h = Harness::new(t);
    let (sid, v) = h.session().await.unwrap();
    let mut others = h.bus.subscribe(sid);
    let t0 = Instant::now();
    let mut stream = start(&h, sid, &v, "hi").await;
    let seq = stream.seq();
    let seen = read_deltas(&mut stream, 3).await;
    drop(stream);

    let end = final_event(&mut others).await;
    assert_eq!(t0.elapsed(), ms(300), "stopped at once, not at the next piece");
    let SessionEvent::StreamEnd(end) = &*end else { panic!("{end:?}") };
    assert_eq!((end.finish_reason, end.message.status), (FinishReason::Aborted, MessageStatus::Aborted));
    assert_eq!(end.message.content, seen);
    let stored = h.stored(sid, seq).unwrap();
    assert_eq!((stored.status, stored.content.as_str()), (MessageStatus::Aborted, "w0 w1 w2 "));
    assert_eq!((p.dropped(), p.ended()), (1, 0), "the upstream stream was let go");
    // The session takes turns again.
    assert_eq!(turn(&h, sid, &v, "again").await.text, "ok");
}

#[tokio::test(start_paused = true)]
async fn under_continue_a_client_leaving_changes_nothing() {
    let p = paced(ScriptedProvider::new("openai", "gpt-test"));
    let h = Harness::new(tenant("acme", route(&p, |_| {}), vec![]));
    let (sid, v) = h.session().await.unwrap();
    let mut others = h.bus.subscribe(sid);
    let mut stream = start(&h, sid, &v, "hi").await;
    let seq = stream.seq();
    read_deltas(&mut stream, 3).await;
    drop(stream);
    let end = final_event(&mut others).await;
    assert!(matches!(&*end, SessionEvent::StreamEnd(e) if e.finish_reason == FinishReason::Stop), "{end:?}");
    let stored = h.stored(sid, seq).unwrap();
    assert_eq!((stored.status, stored.content), (MessageStatus::Complete, pieces(100).concat()));
    assert_eq!((p.dropped(), p.ended()), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn deleting_the_session_stops_its_answer() {
    let p = paced(ScriptedProvider::new("openai", "gpt-test"));
    let h = Harness::new(tenant("acme", route(&p, |_| {}), vec![]));
    let (sid, v) = h.session().await.unwrap();
    let mut stream = start(&h, sid, &v, "hi").await;
    let seq = stream.seq();
    read_deltas(&mut stream, 2).await;
    h.engine.stop_session_turn(sid, StopReason::SessionDeleted);
    let rest = drain(stream).await;
    let Some(SessionEvent::StreamEnd(end)) = rest.last().map(|e| &**e) else { panic!("{rest:?}") };
    assert_eq!(end.message.status, MessageStatus::Aborted);
    assert_eq!(h.stored(sid, seq).unwrap().content, "w0 w1 ");
    assert_eq!(h.engine.running(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_turn_stopped_while_waiting_to_retry_calls_no_more() {
    let p = Arc::new(ScriptedProvider::new("openai", "gpt-test").always(Reply::rate_limited(ms(1500))));
    let mut t = tenant("acme", route(&p, |_| {}), vec![]);
    t.on_disconnect = OnDisconnect::Abort;
    let h = Harness::new(t);
    let (sid, v) = h.session().await.unwrap();
    let mut others = h.bus.subscribe(sid);
    let stream = start(&h, sid, &v, "hello").await;
    let seq = stream.seq();
    tokio::time::sleep(ms(500)).await;
    assert_eq!(p.call_count(), 1);
    drop(stream);
    let end = final_event(&mut others).await;
    assert!(matches!(&*end, SessionEvent::StreamEnd(e) if e.message.status == MessageStatus::Aborted));
    // Long past the Retry-After: still the one call.
    tokio::time::sleep(secs(10)).await;
    assert_eq!(p.call_count(), 1, "the stopped turn retried anyway");
    assert_eq!(h.stored(sid, seq).unwrap().status, MessageStatus::Aborted);
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_interrupts_what_outlives_its_grace() {
    let p = paced(ScriptedProvider::new("openai", "gpt-test"));
    let h = Harness::new(tenant("acme", route(&p, |_| {}), vec![]));
    let (sid, v) = h.session().await.unwrap();
    let stream = start(&h, sid, &v, "hi").await;
    let seq = stream.seq();
    let t0 = Instant::now();
    h.engine.shutdown(ms(450)).await;
    assert_eq!(t0.elapsed(), ms(450), "the turn had its grace, no more");
    let stored = h.stored(sid, seq).unwrap();
    assert_eq!((stored.status, stored.content.as_str()), (MessageStatus::Interrupted, "w0 w1 w2 w3 "));
    let events = drain(stream).await;
    let last = events.last().unwrap();
    assert!(
        matches!(&**last, SessionEvent::Message(m) if m.status == MessageStatus::Interrupted),
        "{last:?}"
    );
}
