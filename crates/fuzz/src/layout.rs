//! How a target reads its input as a body and the chunks it arrives in:
//! the first byte says how many chunk lengths follow (its low four bits),
//! each next byte is one chunk's length (0 is an empty read), and the rest
//! is the body; what the lengths leave over is the last chunk. The fuzzer
//! thus picks the split points itself.

/// The body and the same bytes cut into chunks.
pub struct Layout<'a> {
    pub body: &'a [u8],
    pub chunks: Vec<&'a [u8]>,
}

pub fn layout(data: &[u8]) -> Layout<'_> {
    let Some((&head, rest)) = data.split_first() else {
        return Layout { body: data, chunks: Vec::new() };
    };
    let count = usize::from(head & 0x0f).min(rest.len());
    let (lengths, body) = rest.split_at(count);
    let mut chunks = Vec::with_capacity(count + 1);
    let mut left = body;
    for &len in lengths {
        let (chunk, tail) = left.split_at(usize::from(len).min(left.len()));
        chunks.push(chunk);
        left = tail;
    }
    chunks.push(left);
    Layout { body, chunks }
}

/// The high bit of the first byte: a flag a target may use for a variant.
pub fn flag(data: &[u8]) -> bool {
    data.first().is_some_and(|b| b & 0x80 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_body_in_order() {
        let l = layout(b"\x03\x02\x00\x01abcdef");
        assert_eq!(l.body, b"abcdef");
        assert_eq!(l.chunks, [&b"ab"[..], b"", b"c", b"def"]);
        assert_eq!(layout(b"").chunks.len(), 0);
        assert_eq!(layout(b"\x0fab").body, b"");
    }
}
