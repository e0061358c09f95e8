//! The `anthropic` provider (Messages API streaming).
