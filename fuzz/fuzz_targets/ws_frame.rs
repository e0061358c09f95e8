//! libFuzzer entry of the `ws_frame` target (see `switchboard_fuzz::ws_frame`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::ws_frame(data));
