//! A WebSocket text message from a viewer (Flussonic's protocol: answer, candidate).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rtcast::fuzzing::ws_message(data));
