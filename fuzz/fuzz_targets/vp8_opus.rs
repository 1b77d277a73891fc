//! VP8 frames and Opus packets pushed by a host (the first byte picks which).
#![no_main]
use std::sync::Mutex;

use rtcast::{StreamOptions, VideoCodec};

/// One server for the whole run (`Server` is `Send`, not `Sync`).
static STREAMS: Mutex<Option<(rtcast::Server, rtcast::Stream)>> = Mutex::new(None);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    let mut held = STREAMS.lock().unwrap_or_else(|e| e.into_inner());
    let (_, stream) = held.get_or_insert_with(|| {
        let server = rtcast::Server::start(rtcast::ServerConfig::loopback()).expect("a server");
        let options = StreamOptions {
            video: VideoCodec::Vp8,
            ..StreamOptions::default()
        };
        let stream = server.stream_with("fuzz", options).expect("a stream");
        (server, stream)
    });
    if which & 1 == 0 {
        let _ = rtcast::media::vp8::parse_frame(data);
        let _ = stream.push_vp8(data, None);
    } else {
        let _ = stream.push_opus(data, None);
    }
});
