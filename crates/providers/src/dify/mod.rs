//! The `dify` provider (chat-messages streaming).
