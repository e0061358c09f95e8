//! The HTTP edge: the accept loop, errors as envelopes, trace ids, request
//! extractors, SSE framing. Nothing here knows about sessions or turns.

pub mod error;
pub mod extract;
pub mod json;
pub mod listen;
pub mod parse_refusal;
pub mod request_body;
pub mod sse;
pub mod stream_first;
pub mod trace;

pub use error::ApiError;
