//! Decoder tests: one case per framing rule of the SSE reference, plus a
//! property test that chunk boundaries never change what is decoded.

use super::*;
use proptest::prelude::*;

fn ev(event: Option<&str>, data: &str, id: Option<&str>) -> SseEvent {
    SseEvent { event: event.map(str::to_owned), data: data.to_owned(), id: id.map(str::to_owned) }
}

fn data(d: &str) -> SseEvent {
    ev(None, d, None)
}

/// Decodes the given chunks in order, then finishes.
fn decode_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    for c in chunks {
        dec.push(c, &mut out).unwrap();
    }
    dec.finish(&mut out);
    out
}

fn decode(bytes: &[u8]) -> Vec<SseEvent> {
    decode_chunks(&[bytes])
}

#[test]
fn lf_cr_and_crlf_line_endings() {
    let expected = vec![data("a"), data("b")];
    assert_eq!(decode(b"data: a\n\ndata: b\n\n"), expected);
    assert_eq!(decode(b"data: a\r\rdata: b\r\r"), expected);
    assert_eq!(decode(b"data: a\r\n\r\ndata: b\r\n\r\n"), expected);
    assert_eq!(decode(b"data: a\r\n\ndata: b\r\r\n"), expected);
}

#[test]
fn crlf_split_across_chunks_is_one_line_end() {
    // Were the LF taken as a second line end, the blank line would split
    // this into two events.
    let out = decode_chunks(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
    assert_eq!(out, vec![data("a\nb")]);
    // A CR at a chunk end followed by something other than LF.
    let out = decode_chunks(&[b"data: a\r", b"data: b\r", b"\r"]);
    assert_eq!(out, vec![data("a\nb")]);
    // An empty read between the CR and the LF changes nothing.
    let out = decode_chunks(&[b"data: a\r", b"", b"\ndata: b\r\n\r\n"]);
    assert_eq!(out, vec![data("a\nb")]);
}

#[test]
fn multi_line_data_joins_with_newline() {
    assert_eq!(decode(b"data: one\ndata: two\ndata:\ndata: four\n\n"), vec![data("one\ntwo\n\nfour")]);
}

#[test]
fn data_with_and_without_space() {
    assert_eq!(decode(b"data:x\n\n"), vec![data("x")]);
    assert_eq!(decode(b"data: x\n\n"), vec![data("x")]);
    // Only one space is stripped.
    assert_eq!(decode(b"data:  x\n\n"), vec![data(" x")]);
    // A colon inside the value stays.
    assert_eq!(decode(b"data: {\"a\":1}\n\n"), vec![data("{\"a\":1}")]);
}

#[test]
fn field_without_colon_has_empty_value() {
    assert_eq!(decode(b"data\ndata\n\n"), vec![data("\n")]);
}

#[test]
fn comments_are_ignored() {
    let out = decode(b": OPENROUTER PROCESSING\n\n:keep-alive\ndata: x\n: in between\n\n");
    assert_eq!(out, vec![data("x")]);
}

#[test]
fn event_without_data_is_still_an_event() {
    assert_eq!(decode(b"event: ping\n\n"), vec![ev(Some("ping"), "", None)]);
    assert_eq!(decode(b"event: message_start\ndata: {}\n\n"), vec![ev(Some("message_start"), "{}", None)]);
}

#[test]
fn blank_lines_alone_emit_nothing() {
    assert_eq!(decode(b"\n\n\r\n\r\r"), vec![]);
    assert_eq!(decode(b"data: a\n\n\n\n\ndata: b\n\n"), vec![data("a"), data("b")]);
}

#[test]
fn unknown_fields_and_retry_are_ignored() {
    assert_eq!(decode(b"retry: 2000\nfoo: bar\ndata: x\nDATA: y\n\n"), vec![data("x")]);
    assert_eq!(decode(b"retry: 2000\n\n"), vec![]);
}

#[test]
fn ids_are_per_event_and_last_id_persists() {
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    dec.push(b"id: 7\nevent: message\ndata: m\n\ndata: n\n\nid: bad\0id\ndata: o\n\n", &mut out).unwrap();
    assert_eq!(out, vec![ev(Some("message"), "m", Some("7")), data("n"), data("o")]);
    assert_eq!(dec.last_event_id(), Some("7"));
}

#[test]
fn empty_event_name_means_default_type() {
    assert_eq!(decode(b"event:\ndata: x\n\n"), vec![data("x")]);
}

#[test]
fn utf8_split_across_chunks() {
    let bytes = "data: héllo 🌍 wörld\n\n".as_bytes();
    for split in 0..=bytes.len() {
        let (a, b) = bytes.split_at(split);
        assert_eq!(decode_chunks(&[a, b]), vec![data("héllo 🌍 wörld")], "split at {split}");
    }
}

#[test]
fn invalid_utf8_is_replaced() {
    assert_eq!(decode(b"data: a\xFFb\n\n"), vec![data("a\u{FFFD}b")]);
}

#[test]
fn leading_bom_is_skipped() {
    assert_eq!(decode_chunks(&[b"\xEF\xBB", b"\xBFdata: x\n\n"]), vec![data("x")]);
}

#[test]
fn unterminated_last_event_is_emitted_at_finish() {
    assert_eq!(decode(b"data: a\n\ndata: [DONE]"), vec![data("a"), data("[DONE]")]);
    assert_eq!(decode(b"data: a\n"), vec![data("a")]);
}

#[test]
fn oversize_event_is_dropped_and_decoding_resumes() {
    let mut dec = Decoder::with_max_event_bytes(16);
    let mut out = Vec::new();
    let err = dec.push(b"data: ok\n\ndata: 0123456789\ndata: 0123456789\n\ndata: next\n\n", &mut out);
    assert_eq!(err, Err(SseError::EventTooLarge { limit: 16 }));
    assert_eq!(out, vec![data("ok"), data("next")]);

    // A single endless line is not buffered past the limit.
    let mut dec = Decoder::with_max_event_bytes(16);
    let mut out = Vec::new();
    assert!(dec.push(b"data: aaaaaaaaaaaaaaaaaaaaaaa", &mut out).is_err());
    for _ in 0..100 {
        dec.push(&[b'a'; 1024], &mut out).unwrap();
    }
    assert!(dec.line.capacity() <= 64);
    dec.push(b"\n\ndata: after\n\n", &mut out).unwrap();
    assert_eq!(out, vec![data("after")]);
}

/// Found by fuzzing (`fuzz/corpus/sse/invalid_utf8_past_the_limit`): each
/// invalid byte decodes to U+FFFD (three bytes), so a line within the limit
/// as received passed it once decoded, and the event came out larger than
/// the limit allows.
#[test]
fn invalid_utf8_counts_as_decoded_against_the_limit() {
    let mut dec = Decoder::with_max_event_bytes(16);
    let mut out = Vec::new();
    let err = dec.push(b"data: \xea\xea\xea\xea\xea\xea\n\ndata: \xea\n\ndata: next\n\n", &mut out);
    assert_eq!(err, Err(SseError::EventTooLarge { limit: 16 }));
    assert_eq!(out, vec![data("\u{fffd}"), data("next")]);
    assert!(out.iter().all(|e| e.data.len() <= 16));
}

#[test]
fn recorded_openai_stream() {
    let body = b"data: {\"choices\":[{\"delta\":{\"content\":\"I'm\"}}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n\
data: [DONE]\n\n";
    let out = decode(body);
    assert_eq!(out.len(), 3);
    assert_eq!(out[2], data("[DONE]"));
}

#[tokio::test]
async fn stream_adapter_yields_events_then_body_error() {
    use futures_util::StreamExt;
    let chunks: Vec<Result<&[u8], &str>> =
        vec![Ok(b"data: a\n\nda"), Ok(b"ta: b\n\ndata: c"), Err("dropped")];
    let items: Vec<_> = decode_stream(futures_util::stream::iter(chunks)).collect().await;
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].as_ref().unwrap(), &data("a"));
    assert_eq!(items[1].as_ref().unwrap(), &data("b"));
    assert!(matches!(items[2], Err(SseStreamError::Body("dropped"))));
}

#[tokio::test]
async fn stream_adapter_finishes_at_body_end() {
    use futures_util::StreamExt;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(b"data: a\r".to_vec()), Ok(b"\ndata: b".to_vec())];
    let items: Vec<_> = decode_stream(futures_util::stream::iter(chunks)).map(Result::unwrap).collect().await;
    assert_eq!(items, vec![data("a\nb")]);
}

/// A generated event and how to write it.
#[derive(Debug, Clone)]
struct Spec {
    event: SseEvent,
    /// Per data line: whether to write `data:` without the space.
    tight: Vec<bool>,
    comment: Option<String>,
}

fn line_text() -> impl Strategy<Value = String> {
    "[^\r\n]{0,12}"
}

fn spec() -> impl Strategy<Value = Spec> {
    let name = proptest::option::of("[a-z_]{1,10}");
    let id = proptest::option::of("[^\r\n\0]{0,6}");
    let lines = proptest::collection::vec((line_text(), any::<bool>()), 0..4);
    let comment = proptest::option::of(line_text());
    (name, id, lines, comment).prop_filter_map(
        "an event needs data or a name",
        |(name, id, lines, comment)| {
            if name.is_none() && lines.is_empty() {
                return None;
            }
            let data = lines.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>().join("\n");
            // Without the space, a value that starts with one would lose it.
            let tight = lines.iter().map(|(l, t)| *t && !l.starts_with(' ')).collect();
            Some(Spec { event: SseEvent { event: name, data, id }, tight, comment })
        },
    )
}

/// Writes the events with the given line endings (cycled), never a lone CR
/// right before a lone LF, since that pair reads as one CRLF.
fn encode(specs: &[Spec], endings: &[u8]) -> Vec<u8> {
    let mut lines: Vec<String> = Vec::new();
    for s in specs {
        if let Some(c) = &s.comment {
            lines.push(format!(":{c}"));
        }
        if let Some(name) = &s.event.event {
            lines.push(format!("event: {name}"));
        }
        if let Some(id) = &s.event.id {
            lines.push(format!("id: {id}"));
        }
        // With no data lines `tight` is empty and the zip writes nothing.
        for (text, tight) in s.event.data.split('\n').zip(&s.tight) {
            lines.push(if *tight { format!("data:{text}") } else { format!("data: {text}") });
        }
        lines.push(String::new());
    }
    let mut out = Vec::new();
    let mut prev_cr = false;
    for (i, line) in lines.iter().enumerate() {
        out.extend_from_slice(line.as_bytes());
        let ending: &[u8] = match endings.get(i % endings.len().max(1)).copied().unwrap_or(0) % 3 {
            0 if prev_cr => b"\r\n",
            0 => b"\n",
            1 => b"\r",
            _ => b"\r\n",
        };
        prev_cr = ending == b"\r";
        out.extend_from_slice(ending);
    }
    out
}

proptest! {
    #[test]
    fn any_chunking_decodes_the_same(
        specs in proptest::collection::vec(spec(), 0..6),
        endings in proptest::collection::vec(any::<u8>(), 1..16),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let bytes = encode(&specs, &endings);
        let whole = decode(&bytes);
        let expected: Vec<SseEvent> = specs.iter().map(|s| s.event.clone()).collect();
        prop_assert_eq!(&whole, &expected);

        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut start = 0;
        for p in points {
            chunks.push(&bytes[start..p]);
            // Empty reads happen too; they must change nothing.
            chunks.push(&[]);
            start = p;
        }
        chunks.push(&bytes[start..]);
        prop_assert_eq!(&decode_chunks(&chunks), &whole);

        // One byte at a time is the harshest split.
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(&decode_chunks(&bytewise), &whole);
    }
}
