//! A request to the HTTP port (method, path, query, headers, body), end to end through the
//! router: pages, metrics, the WebSocket upgrade, WHEP, CORS.
//! Input decoding: `rtcast::fuzzing::http` (the corpus replay in core/tests calls it too).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rtcast::fuzzing::http(data));
