//! The media path seen from viewers: raw frames are encoded once for everyone, a viewer that
//! joins an encoded stream with nothing to start on gets the host asked for a keyframe (once,
//! coalesced) and starts on it, and public IPs are announced as candidates.

use std::time::Duration;

use rtcast::demo::{DemoOptions, DemoSource};
use rtcast::{Event, Server, ServerConfig};
use rtcast_e2e::small_demo;
use rtcast_e2e::viewer::{run_viewer, ViewerOptions};
use rtcast_e2e::witness::misbehave;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_frames_are_encoded_once_whatever_the_number_of_viewers() {
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let stream = server.stream("raw").unwrap();
    let _source = small_demo(stream.clone());
    let viewers: Vec<_> = (0..3)
        .map(|_| {
            let mut opts = ViewerOptions::new(server.ws_url("raw"), Duration::from_secs(20));
            opts.stop_after_frames = Some(30);
            tokio::spawn(run_viewer(opts))
        })
        .collect();
    for v in viewers {
        assert_eq!(v.await.unwrap().unwrap().video_frames, 30);
    }
    let stats = stream.stats();
    assert!(stats.frames_encoded >= 30, "{stats:?}");
    assert!(
        stats.frames_encoded <= stats.video_frames,
        "each pushed frame is encoded at most once for 3 viewers: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_of_an_encoded_stream_without_keyframe_gets_one_requested_and_starts_on_it() {
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let stream = server.stream("enc").unwrap();
    let mut events = server.subscribe();
    // Delta frames only: nothing a new viewer could start on.
    let delta = [0u8, 0, 0, 1, 0x41, 0x9a, 0x22, 0x11];
    let keyframe = [
        0u8, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, 0, 0, 0, 1, 0x65,
        0x88, 0x84,
    ];
    let pusher = {
        let stream = stream.clone();
        std::thread::spawn(move || {
            for i in 0..150u64 {
                stream
                    .push_h264(&delta, Some(Duration::from_millis(33 * i)))
                    .unwrap();
                std::thread::sleep(Duration::from_millis(33));
            }
        })
    };
    let viewers: Vec<_> = (0..2)
        .map(|_| {
            let mut opts = ViewerOptions::new(server.ws_url("enc"), Duration::from_secs(15));
            opts.stop_after_frames = Some(5);
            opts.record = true;
            tokio::spawn(run_viewer(opts))
        })
        .collect();
    // Both join, and the host is asked for a keyframe once.
    let mut requests = 0;
    let mut joined = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while joined < 2 {
        let e = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("viewers did not join");
        match e {
            Some(Event::ViewerJoined { .. }) => joined += 1,
            Some(Event::KeyframeRequested { stream, rendition }) => {
                assert_eq!((stream.as_str(), rendition.as_str()), ("enc", "v1"));
                requests += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    while let Some(e) = events.try_recv() {
        requests += usize::from(matches!(e, Event::KeyframeRequested { .. }));
    }
    assert_eq!(requests, 1, "keyframe requests are coalesced");
    stream.push_h264(&keyframe, None).unwrap();
    for v in viewers {
        let report = v.await.unwrap().unwrap();
        assert!(report.video_frames >= 5, "{report:?}");
        // The first frame a viewer gets is the keyframe: deltas before it were never sent.
        assert_eq!(&report.access_units[0][..], &keyframe[..]);
    }
    pusher.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_ips_are_announced_as_candidates() {
    let mut config = ServerConfig::loopback();
    config.public_ips = vec!["203.0.113.7".parse().unwrap()];
    let server = Server::start(config).unwrap();
    server.stream("pub").unwrap();
    let udp = server.udp_addrs()[0];
    let r = misbehave(
        &server.ws_url("pub"),
        Some(tokio_tungstenite::tungstenite::Message::Text(
            r#"{"type":"bye"}"#.into(),
        )),
        Duration::from_secs(5),
    )
    .await;
    let candidates: Vec<String> = r
        .messages
        .iter()
        .filter(|m| m["type"] == "candidate")
        .map(|m| m["candidate"]["candidate"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        candidates
            .iter()
            .any(|c| c.contains(&format!(" 127.0.0.1 {} typ host", udp.port()))),
        "{candidates:?}"
    );
    assert!(
        candidates
            .iter()
            .any(|c| c.contains(&format!(" 203.0.113.7 {} typ srflx", udp.port()))),
        "{candidates:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_packets_are_retransmitted_on_nack() {
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let stream = server.stream("lossy").unwrap();
    let _source = DemoSource::start(
        stream,
        DemoOptions {
            width: 640,
            height: 360,
            ..DemoOptions::default()
        },
    );
    let mut opts = ViewerOptions::new(server.ws_url("lossy"), Duration::from_secs(6));
    opts.drop_every = Some(40);
    let report = run_viewer(opts).await.unwrap();
    assert!(report.datagrams_dropped > 5, "{report:?}");
    assert!(server.stats().nacks > 0, "{:?}", server.stats());
    assert!(
        report.video_packets_recovered > 0,
        "no retransmission arrived: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_server_closes_every_viewer_with_1001() {
    let mut server = Server::start(ServerConfig::loopback()).unwrap();
    let stream = server.stream("bye").unwrap();
    let _source = small_demo(stream);
    let mut events = server.subscribe();
    let viewers: Vec<_> = (0..5)
        .map(|_| {
            tokio::spawn(run_viewer(ViewerOptions::new(
                server.ws_url("bye"),
                Duration::from_secs(20),
            )))
        })
        .collect();
    let mut joined = 0;
    while joined < 5 {
        if let Some(Event::ViewerJoined { .. }) = events.recv().await {
            joined += 1;
        }
    }
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
    for v in viewers {
        let report = v.await.unwrap().unwrap();
        assert_eq!(report.close.as_ref().map(|c| c.0), Some(1001), "{report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_sends_nothing_to_addresses_a_viewer_names_in_its_candidates() {
    // ICE-lite: the server answers the viewer's checks and never sends checks of its own, so a
    // client cannot make it send datagrams to a third party by listing its address.
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let stream = server.stream("lite").unwrap();
    let _source = small_demo(stream);
    let mut victims = Vec::new();
    for ip in ["127.0.0.2", "127.0.0.3"] {
        victims.push(tokio::net::UdpSocket::bind((ip, 0)).await.unwrap());
    }
    let mut opts = ViewerOptions::new(server.ws_url("lite"), Duration::from_secs(4));
    opts.extra_candidates = victims.iter().map(|v| v.local_addr().unwrap()).collect();
    let report = run_viewer(opts).await.unwrap();
    assert!(report.video_frames > 10, "{report:?}");
    let mut buf = [0u8; 2048];
    for v in &victims {
        assert!(
            v.try_recv_from(&mut buf).is_err(),
            "the server sent a datagram to {}",
            v.local_addr().unwrap()
        );
    }
}
