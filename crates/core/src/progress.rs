//! How much of a streaming answer's text a follower has handed out, and the
//! one rule for what comes next (SPEC §5): a newer revision replaces the
//! text, an older one is stale, and within a revision every delta is placed
//! by its character offset, so repeats are dropped, overlaps trimmed and
//! holes noticed. Both followers of a turn (`TurnStream`, the HTTP response
//! of `POST /v1/chat`) and of a session (`feed::Position`) use it.

/// A follower's place in an answer's text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextProgress {
    pub revision: u32,
    /// Characters (Unicode scalar values) of `revision` handed out.
    pub sent: u64,
}

/// What to do with a delta.
#[derive(Debug, PartialEq, Eq)]
pub enum Merge {
    /// Already handed out, or of an older revision.
    Drop,
    /// New from its first character: hand it out as it is.
    Pass,
    /// Partly handed out: hand out only `text`, which starts at `offset`.
    Trimmed { offset: u64, text: String },
    /// Something before it was missed (a hole, or a newer revision whose
    /// replace was not seen): catch up from the live text instead.
    Gap,
}

/// What a follower lacks of the live text.
#[derive(Debug, PartialEq, Eq)]
pub enum CatchUp {
    /// The rest of the same revision, from `offset`.
    Delta { offset: u64, text: String },
    /// A newer revision: its whole text replaces what was handed out.
    Replace,
}

fn chars(text: &str) -> u64 {
    text.chars().count() as u64
}

impl TextProgress {
    /// Places a delta of `revision` at `offset`, and moves on past it.
    pub fn merge(&mut self, revision: u32, offset: u64, text: &str) -> Merge {
        if revision < self.revision {
            return Merge::Drop;
        }
        if revision > self.revision || offset > self.sent {
            return Merge::Gap;
        }
        let end = offset + chars(text);
        if end <= self.sent {
            return Merge::Drop;
        }
        let skip = self.sent - offset;
        self.sent = end;
        if skip == 0 {
            return Merge::Pass;
        }
        Merge::Trimmed { offset: offset + skip, text: text.chars().skip(skip as usize).collect() }
    }

    /// A replace of the text with `revision`: `true` when it is news.
    pub fn replace(&mut self, revision: u32, text: &str) -> bool {
        if revision <= self.revision {
            return false;
        }
        *self = Self { revision, sent: chars(text) };
        true
    }

    /// What is missing of the live `text` of `revision`, if anything, and
    /// moves on to its end.
    pub fn catch_up(&mut self, revision: u32, text: &str) -> Option<CatchUp> {
        let len = chars(text);
        let missing = if revision == self.revision && len > self.sent {
            CatchUp::Delta { offset: self.sent, text: text.chars().skip(self.sent as usize).collect() }
        } else if revision > self.revision {
            CatchUp::Replace
        } else {
            return None;
        };
        *self = Self { revision, sent: len };
        Some(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_are_placed_by_revision_and_character_offset() {
        let mut p = TextProgress::default();
        assert_eq!(p.merge(0, 0, "héllo"), Merge::Pass);
        assert_eq!(p.merge(0, 0, "hé"), Merge::Drop);
        assert_eq!(p.merge(0, 3, "lo wörld"), Merge::Trimmed { offset: 5, text: " wörld".into() });
        assert_eq!(p.sent, 11);
        assert_eq!(p.merge(0, 20, "late"), Merge::Gap);
        assert_eq!(p.merge(1, 0, "newer"), Merge::Gap);
        assert!(p.replace(1, "new"));
        assert!(!p.replace(1, "new"));
        assert_eq!(p.merge(0, 11, "old"), Merge::Drop);
        assert_eq!(p.merge(1, 3, "er"), Merge::Pass);
        assert_eq!(p, TextProgress { revision: 1, sent: 5 });
    }

    #[test]
    fn catching_up_hands_out_only_what_is_missing() {
        let mut p = TextProgress { revision: 0, sent: 3 };
        assert_eq!(p.catch_up(0, "ab"), None);
        assert_eq!(p.catch_up(0, "abcdéf"), Some(CatchUp::Delta { offset: 3, text: "déf".into() }));
        assert_eq!(p.catch_up(0, "abcdéf"), None);
        assert_eq!(p.catch_up(2, "x"), Some(CatchUp::Replace));
        assert_eq!(p, TextProgress { revision: 2, sent: 1 });
        assert_eq!(p.catch_up(1, "older revision"), None);
    }
}
