//! The HTTP edge: errors as envelopes, trace ids, request extractors, SSE
//! framing. Nothing here knows about sessions or turns.

pub mod error;
pub mod extract;
pub mod sse;
pub mod trace;

pub use error::ApiError;
