//! Datagrams (and ICE-TCP frames) reaching the media plane from three viewers' addresses:
//! STUN, DTLS, SRTP/SRTCP and anything else (RFC 7983 demultiplexing).
//! Input decoding: `rtcast::fuzzing::datagram` (the corpus replay in core/tests calls it too).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rtcast::fuzzing::datagram(data));
