//! The streamed events of SPEC §5 in the description: `SseEvent`, the body
//! of every `text/event-stream` response, is one of the event types, each an
//! `event:` name with the schema of its `data:` line. The payload schemas are
//! derived from the structs the events are serialised from (core's
//! `events` module), so the description follows the wire.

use std::borrow::Cow;
use switchboard_core::events::{
    DeltaPayload, ErrorPayload, HandoffPayload, ReplacePayload, ResumePayload, SessionPayload, StartPayload,
    StreamEnd, StreamingPayload, TakeoverPayload, ToolEvent, TypingPayload,
};
use switchboard_core::Message;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{OpenApi, Ref, RefOr};
use utoipa::{Modify, PartialSchema, ToSchema};

/// Puts `T`'s schema and those it refers to into the components.
pub fn add_schema<T: ToSchema>(api: &mut OpenApi) {
    let components = api.components.get_or_insert_with(Default::default);
    let mut schemas = Vec::new();
    T::schemas(&mut schemas);
    components.schemas.insert(T::name().into_owned(), T::schema());
    components.schemas.extend(schemas);
}

/// Each event type and the schema(s) of its data.
fn catalogue() -> Vec<(&'static str, Vec<String>, &'static str)> {
    fn n<T: ToSchema>() -> String {
        T::name().into_owned()
    }
    vec![
        (
            "session",
            vec![n::<SessionPayload>()],
            "First event of a subscription; `id:` the highest final seq",
        ),
        ("resume_cursor", vec![n::<ResumePayload>()], "Before a replay"),
        (
            "message",
            vec![n::<Message>(), n::<StreamingPayload>()],
            "A durable message (`id:` its seq when final), or an answer still streaming with its revision",
        ),
        ("stream_start", vec![n::<StartPayload>()], "The assistant message was created"),
        ("stream_delta", vec![n::<DeltaPayload>()], "More assistant text at `offset` of `revision`"),
        ("stream_replace", vec![n::<ReplacePayload>()], "The text so far was replaced (revision + 1)"),
        ("stream_end", vec![n::<StreamEnd>()], "The answer finished or was stopped; `id:` its seq"),
        ("typing", vec![n::<TypingPayload>()], "Someone is typing, or the model is thinking"),
        ("takeover", vec![n::<TakeoverPayload>()], "An agent took the session over or released it"),
        ("handoff", vec![n::<HandoffPayload>()], "The model asked for a person"),
        ("tool", vec![n::<ToolEvent>()], "A tool call's progress and visible result"),
        ("error", vec![n::<ErrorPayload>()], "The error envelope; the stream ends"),
    ]
}

/// One SSE event: `event: <event>`, `data: <data as one line of JSON>`, and
/// `id: <seq>` where §5 gives one.
pub struct SseEvent;

impl PartialSchema for SseEvent {
    fn schema() -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new().description(Some(
            "One Server-Sent Event. Streams open with `retry: 2000` and carry `: heartbeat` comments.",
        ));
        for (name, data, what) in catalogue() {
            let data: RefOr<Schema> = match data.as_slice() {
                [one] => Ref::from_schema_name(one.clone()).into(),
                many => {
                    let mut either = OneOfBuilder::new();
                    for d in many {
                        either = either.item(Ref::from_schema_name(d.clone()));
                    }
                    RefOr::T(Schema::OneOf(either.build()))
                }
            };
            let event = ObjectBuilder::new()
                .title(Some(name))
                .description(Some(what))
                .property("event", ObjectBuilder::new().schema_type(Type::String).enum_values(Some([name])))
                .required("event")
                .property("data", data)
                .required("data")
                .property("id", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)));
            one_of = one_of.item(event);
        }
        RefOr::T(Schema::OneOf(one_of.build()))
    }
}

impl ToSchema for SseEvent {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SseEvent")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        fn push<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            schemas.push((T::name().into_owned(), T::schema()));
            T::schemas(schemas);
        }
        push::<SessionPayload>(schemas);
        push::<ResumePayload>(schemas);
        push::<Message>(schemas);
        push::<StreamingPayload>(schemas);
        push::<StartPayload>(schemas);
        push::<DeltaPayload>(schemas);
        push::<ReplacePayload>(schemas);
        push::<StreamEnd>(schemas);
        push::<TypingPayload>(schemas);
        push::<TakeoverPayload>(schemas);
        push::<HandoffPayload>(schemas);
        push::<ToolEvent>(schemas);
        push::<ErrorPayload>(schemas);
    }
}

/// Makes sure the event schemas are in the components even where no
/// operation's response names `SseEvent` directly.
pub struct Events;

impl Modify for Events {
    fn modify(&self, api: &mut OpenApi) {
        add_schema::<SseEvent>(api);
    }
}
