//! libFuzzer entry of the `dify_stream` target (see `switchboard_fuzz::dify_stream`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::dify_stream(data));
