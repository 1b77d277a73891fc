//! SDP from a viewer: a WHEP offer, and a WebSocket answer to the server's offer.
//! Input decoding: `rtcast::fuzzing::sdp` (the corpus replay in core/tests calls it too).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rtcast::fuzzing::sdp(data));
