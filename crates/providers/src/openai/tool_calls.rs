//! Tool calls assembled from the `delta.tool_calls` fragments of a Chat
//! Completions stream: by `index`, with a new `id` on an index already in
//! use starting a new call (Ollama-compatible servers put every call of a
//! parallel batch on index 0). Calls are handed out whole, in the order they
//! were started; whether their arguments are JSON is the engine's to check.

use serde::Deserialize;
use switchboard_core::tools::ToolCall;

/// One fragment of `delta.tool_calls`; every field may be absent or `null`.
#[derive(Debug, Deserialize)]
pub(crate) struct CallFragment {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionFragment>,
}

#[derive(Debug, Deserialize)]
struct FunctionFragment {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Debug)]
struct Pending {
    index: u32,
    /// Empty until the server names the call.
    id: String,
    name: String,
    arguments: String,
}

/// Adds a piece to a field being assembled; the first piece is moved in,
/// not copied.
fn append(field: &mut String, piece: Option<String>) {
    match piece {
        Some(piece) if field.is_empty() => *field = piece,
        Some(piece) => field.push_str(&piece),
        None => {}
    }
}

impl Pending {
    fn new(index: u32) -> Self {
        Self { index, id: String::new(), name: String::new(), arguments: String::new() }
    }

    /// Whether a fragment on this call's index with `id` continues it: one
    /// without an id, or with the same id again (some servers repeat it on
    /// every fragment), does; a new id starts a call of its own.
    fn goes_on_with(&self, id: Option<&str>) -> bool {
        id.is_none_or(|id| self.id.is_empty() || self.id == id)
    }
}

/// The calls of one answer so far.
#[derive(Debug, Default)]
pub(crate) struct ToolCalls {
    /// In the order they were started; an index may appear more than once
    /// (reused), the latest one taking its fragments.
    calls: Vec<Pending>,
}

impl ToolCalls {
    /// Adds the fragments of one chunk, in their order.
    pub fn add(&mut self, fragments: Vec<CallFragment>) {
        for (position, fragment) in fragments.into_iter().enumerate() {
            // Without an index (some compatible servers), the place in the
            // chunk's list is the best guess of which call it continues.
            let index = fragment.index.unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
            let id = fragment.id.filter(|id| !id.is_empty());
            let at = match self.calls.iter().rposition(|c| c.index == index) {
                Some(at) if self.calls[at].goes_on_with(id.as_deref()) => at,
                _ => {
                    self.calls.push(Pending::new(index));
                    self.calls.len() - 1
                }
            };
            let call = &mut self.calls[at];
            if let Some(id) = id {
                if call.id.is_empty() {
                    call.id = id;
                }
            }
            if let Some(function) = fragment.function {
                append(&mut call.name, function.name);
                append(&mut call.arguments, function.arguments);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Hands out every call so far, whole, in the order they were started;
    /// a call the server gave no id gets one of ours.
    pub fn drain(&mut self) -> impl Iterator<Item = ToolCall> + '_ {
        self.calls.drain(..).map(|c| ToolCall {
            id: if c.id.is_empty() { crate::new_call_id() } else { c.id },
            name: c.name,
            arguments: c.arguments,
        })
    }
}
