//! Datagrams (and ICE-TCP frames) reaching the media plane from three viewers' addresses:
//! STUN, DTLS, SRTP/SRTCP and anything else (RFC 7983 demultiplexing).
#![no_main]
use std::sync::Mutex;

static TARGET: Mutex<Option<rtcast::fuzzing::PlaneTarget>> = Mutex::new(None);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut t = TARGET.lock().unwrap_or_else(|e| e.into_inner());
    t.get_or_insert_with(rtcast::fuzzing::PlaneTarget::new)
        .datagram(data);
});
