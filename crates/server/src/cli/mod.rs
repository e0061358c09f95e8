//! Subcommands other than `serve` and `migrate`: each lives in its own file
//! and works against the configured database.

pub mod keys;
pub mod tenant;
mod tenant_input;
pub mod token;
