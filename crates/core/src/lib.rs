//! Switchboard's domain: tenants, subjects, sessions, messages, turns, and the
//! traits the outside must satisfy (`Store`, `Bus`, `Provider`, `Clock`).
//! Nothing here speaks HTTP, SQL or sockets.

pub mod audit;
pub mod bus;
pub mod error;
pub mod events;
pub mod feed;
pub mod ids;
pub mod lifecycle;
pub mod memory;
pub mod model;
pub mod origin;
pub mod outbound;
pub mod progress;
pub mod provider;
pub mod ratelimit;
pub mod retention;
pub mod store;
pub mod tenant;
pub mod time;
pub mod tools;
pub mod trace;
pub mod turn;
pub mod upstream;
pub mod usage;

pub use error::ErrorCode;
pub use ids::{Subject, TenantId};
pub use model::{FinishReason, Message, MessageStatus, Role, Session, SessionStatus, Usage};
pub use time::{Clock, SystemClock};
