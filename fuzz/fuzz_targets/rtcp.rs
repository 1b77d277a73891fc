//! A viewer's decrypted RTCP compound packet (NACK, PLI/FIR, REMB, anything else).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rtcast::fuzzing::rtcp(data));
