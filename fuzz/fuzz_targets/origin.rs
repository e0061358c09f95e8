//! libFuzzer entry of the `origin` target (see `switchboard_fuzz::origin`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::origin(data));
