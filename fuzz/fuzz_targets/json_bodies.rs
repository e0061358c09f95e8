//! libFuzzer entry of the `json_bodies` target (see `switchboard_fuzz::json_bodies`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::json_bodies(data));
