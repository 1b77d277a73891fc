//! H.264 Annex B pushed by a host: the parser, the access-unit splitter, and `push_h264` with
//! everything it validates and packetizes.
//! Input decoding: `rtcast::fuzzing::h264` (the corpus replay in core/tests calls it too).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rtcast::fuzzing::h264(data));
