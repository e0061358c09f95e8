//! Request handlers: each runs the gate, calls one core or store function and
//! maps the result. Routing lives in `routes.rs`.

pub mod chat;
pub mod chat_body;
pub mod health;
pub mod link;
pub mod me;
pub mod memory;
pub mod sessions;
pub mod tickets;
