//! The byte stream of an ICE-TCP connection (RFC 4571 frames), and the STUN USERNAME the first
//! frame is routed by.
//! Input decoding: `rtcast::fuzzing::tcp_frames` (the corpus replay in core/tests calls it too).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rtcast::fuzzing::tcp_frames(data));
