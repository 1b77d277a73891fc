//! A viewer's decrypted RTCP compound packet (NACK, PLI/FIR, REMB, anything else).
//! Input decoding: `rtcast::fuzzing::rtcp` (the corpus replay in core/tests calls it too).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rtcast::fuzzing::rtcp(data));
