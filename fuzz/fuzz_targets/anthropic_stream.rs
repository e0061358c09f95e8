//! libFuzzer entry of the `anthropic_stream` target (see `switchboard_fuzz::anthropic_stream`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::anthropic_stream(data));
