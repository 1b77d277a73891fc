//! A WebSocket text message from a viewer (Flussonic's protocol: answer, candidate).
//! Input decoding: `rtcast::fuzzing::ws_message` (the corpus replay in core/tests calls it too).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rtcast::fuzzing::ws_message(data));
