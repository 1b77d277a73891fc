//! H.264 Annex B pushed by a host: the parser, the access-unit splitter, and `push_h264` with
//! everything it validates and packetizes.
#![no_main]
use std::sync::Mutex;

/// One server for the whole run (`Server` is `Send`, not `Sync`).
static STREAM: Mutex<Option<(rtcast::Server, rtcast::Stream)>> = Mutex::new(None);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = rtcast::media::h264::split_annex_b(data);
    let _ = rtcast::media::h264::access_units(data);
    let mut held = STREAM.lock().unwrap_or_else(|e| e.into_inner());
    let (_, stream) = held.get_or_insert_with(|| {
        let server = rtcast::Server::start(rtcast::ServerConfig::loopback()).expect("a server");
        let stream = server.stream("fuzz").expect("a stream");
        (server, stream)
    });
    let _ = stream.push_h264(data, None);
});
