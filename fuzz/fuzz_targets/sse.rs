//! libFuzzer entry of the `sse` target (see `switchboard_fuzz::sse`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::sse(data));
