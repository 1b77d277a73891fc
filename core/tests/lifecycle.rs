//! A server's life from the host's side: start, push, stop, and what works after stop.

use std::time::Duration;

use rtcast::{Error, PixelFormat, RawFrame, Recv, Server, ServerConfig, StreamOptions, VideoCodec};

#[test]
fn after_stop_pushes_fail_events_end_and_the_ports_are_free() {
    let mut server = Server::start(ServerConfig::loopback()).unwrap();
    let http = server.http_addr();
    let udp = server.udp_addrs()[0];
    let stream = server.stream("cam").unwrap();
    let mut events = server.subscribe();
    let rgba = vec![0u8; 64 * 48 * 4];
    let frame = RawFrame::packed(PixelFormat::Rgba, 64, 48, &rgba).unwrap();
    stream.push_frame(&frame, None).unwrap();

    server.stop();
    server.stop(); // idempotent

    assert!(matches!(
        stream.push_frame(&frame, None),
        Err(Error::StreamClosed(_))
    ));
    assert!(matches!(
        stream.push_h264(&[0, 0, 0, 1, 0x65, 1], None),
        Err(Error::StreamClosed(_))
    ));
    assert!(stream.is_closed());
    assert!(matches!(server.stream("cam"), Err(Error::ServerStopped)));
    assert_eq!(events.recv_blocking(Duration::from_secs(2)), Recv::Closed);
    std::net::TcpListener::bind(http).expect("HTTP port released");
    std::net::UdpSocket::bind(udp).expect("UDP port released");
}

#[test]
fn port_in_use_and_bad_names_are_clear_errors() {
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let mut config = ServerConfig::loopback();
    config.port = server.http_addr().port();
    let err = Server::start(config).unwrap_err();
    assert!(matches!(err, Error::Bind { what: "HTTP", .. }), "{err}");
    assert!(err.to_string().contains("cannot bind HTTP"), "{err}");

    let err = server.stream("a/b").unwrap_err().to_string();
    assert!(err.contains("stream name \"a/b\" is not valid"), "{err}");
}

/// A host that starts servers from its own async code (a tokio task) gets errors, not a panic
/// from dropping rtcast's runtime inside its context.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_failed_start_inside_the_callers_async_context_is_an_error_not_a_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = ServerConfig::loopback();
    config.port = taken.local_addr().unwrap().port();
    config.udp_port = Some(0);
    let err = Server::start(config).unwrap_err();
    assert!(matches!(err, Error::Bind { what: "HTTP", .. }), "{err}");

    // And a server started there runs and stops (in the background: blocking is not allowed).
    let mut server = Server::start(ServerConfig::loopback()).unwrap();
    assert!(server.stream("cam").is_ok());
    server.stop();
}

#[test]
fn bad_pushes_are_refused_and_the_stream_keeps_working() {
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let stream = server.stream("cam").unwrap();
    let err = stream
        .push_h264(&[0x00, 0x00, 0x00, 0x05, 0x65], None)
        .unwrap_err();
    assert!(err.to_string().contains("not H.264 Annex B"), "{err}");
    let err = stream.push_opus(&[], None).unwrap_err();
    assert!(err.to_string().contains("Opus packet"), "{err}");
    let err = RawFrame::packed(PixelFormat::Rgba, 1280, 720, &[0u8; 100]).unwrap_err();
    assert!(err.to_string().contains("needs 3686400 bytes"), "{err}");
    stream
        .push_h264(
            &[
                0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88,
            ],
            None,
        )
        .unwrap();
    stream.push_opus(&[0xf8, 0xff, 0xfe], None).unwrap();
}

#[test]
fn a_vp8_stream_takes_vp8_only_and_codec_mismatches_say_what_to_do() {
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let vp8 = StreamOptions {
        video: VideoCodec::Vp8,
        ..StreamOptions::default()
    };
    let stream = server.stream_with("v", vp8.clone()).unwrap();
    // A keyframe header of 16x16 with a 1-byte first partition.
    let keyframe = [0x30, 0x00, 0x00, 0x9d, 0x01, 0x2a, 16, 0, 16, 0, 0xaa];
    stream.push_vp8(&keyframe, None).unwrap();

    let annex_b = [0, 0, 0, 1, 0x65, 0x88];
    match stream.push_h264(&annex_b, None) {
        Err(Error::UnsupportedCodec(m)) => {
            assert!(
                m.contains("'v' carries VP8") && m.contains("VideoCodec::H264"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    let rgba = [0u8; 16 * 16 * 4];
    let frame = RawFrame::packed(PixelFormat::Rgba, 16, 16, &rgba).unwrap();
    match stream.push_frame(&frame, None) {
        Err(Error::UnsupportedCodec(m)) => assert!(m.contains("built-in encoder"), "{m}"),
        other => panic!("{other:?}"),
    }
    match stream.push_vp8(&annex_b, None) {
        Err(Error::InvalidData(m)) => assert!(m.contains("not a VP8 frame"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Asking for the same name with other tracks is refused; the same options are fine.
    match server.stream_with("v", StreamOptions::default()) {
        Err(Error::InvalidConfig(m)) => assert!(m.contains("exists with VP8 video"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(server.stream_with("v", vp8).is_ok());
    assert!(server.stream("v").is_ok());

    let h264 = server.stream("h").unwrap();
    match h264.push_vp8(&keyframe, None) {
        Err(Error::UnsupportedCodec(m)) => assert!(m.contains("'h' carries H.264"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Still serving after all that.
    stream.push_vp8(&keyframe, None).unwrap();
    assert_eq!(stream.stats().video_frames, 2);
}
