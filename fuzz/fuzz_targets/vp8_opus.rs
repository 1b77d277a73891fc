//! VP8 frames and Opus packets pushed by a host (the first byte picks which).
//! Input decoding: `rtcast::fuzzing::vp8_opus` (the corpus replay in core/tests calls it too).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rtcast::fuzzing::vp8_opus(data));
