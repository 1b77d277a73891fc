//! SDP from a viewer: a WHEP offer, and a WebSocket answer to the server's offer.
#![no_main]
use std::sync::Mutex;

static TARGET: Mutex<Option<rtcast::fuzzing::SdpTarget>> = Mutex::new(None);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut t = TARGET.lock().unwrap_or_else(|e| e.into_inner());
    t.get_or_insert_with(rtcast::fuzzing::SdpTarget::new).run(data);
});
