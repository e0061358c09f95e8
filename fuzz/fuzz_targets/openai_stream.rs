//! libFuzzer entry of the `openai_stream` target (see `switchboard_fuzz::openai_stream`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::openai_stream(data));
