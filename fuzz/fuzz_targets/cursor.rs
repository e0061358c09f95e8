//! libFuzzer entry of the `cursor` target (see `switchboard_fuzz::cursor`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::cursor(data));
