//! libFuzzer entry of the `jwt` target (see `switchboard_fuzz::jwt`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::jwt(data));
