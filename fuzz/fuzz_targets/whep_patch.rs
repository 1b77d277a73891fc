//! WHEP PATCH bodies (trickle-ice-sdpfrag, RFC 8840) to a live WHEP session, through the router
//! and the fragment parser alone.
//! Input decoding: `rtcast::fuzzing::whep_patch` (the corpus replay in core/tests calls it too).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rtcast::fuzzing::whep_patch(data));
