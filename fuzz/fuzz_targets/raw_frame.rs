//! Raw frame geometry from a host: format, width, height, strides and plane lengths that need
//! not agree; what validates is converted to I420 as the encoder thread would, the rest refused.
//! Input decoding: `rtcast::fuzzing::raw_frame` (the corpus replay in core/tests calls it too).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rtcast::fuzzing::raw_frame(data));
