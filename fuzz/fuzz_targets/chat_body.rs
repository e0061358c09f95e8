//! libFuzzer entry of the `chat_body` target (see `switchboard_fuzz::chat_body`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::chat_body(data));
