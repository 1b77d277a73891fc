//! End-to-end over the Flussonic WebSocket protocol with a native WebRTC client (webrtc-rs):
//! ICE + DTLS on loopback, H.264 access units pushed by the host arrive intact and in order.

use std::time::Duration;

use rtcast::{Server, ServerConfig};
use rtcast_e2e::viewer::{run_viewer, ViewerOptions};

/// Access units shaped like an encoder's output: a keyframe with parameter sets, then deltas.
/// Sizes span single-packet and fragmented (FU-A) cases.
fn access_units(n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut au = Vec::new();
        if i % 30 == 0 {
            au.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01]);
            au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
            au.extend_from_slice(&[0, 0, 0, 1, 0x65]);
            au.extend((0..6000).map(|k| ((k * 7 + i) % 251) as u8 | 1));
        } else {
            au.extend_from_slice(&[0, 0, 0, 1, 0x41]);
            au.extend((0..(200 + i * 37 % 3000)).map(|k| ((k + i) % 253) as u8 | 1));
        }
        out.push(au);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_h264_access_units_arrive_intact_and_in_order() {
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let stream = server.stream("cam").unwrap();
    let aus = access_units(90);
    let mut opts = ViewerOptions::new(server.ws_url("cam"), Duration::from_secs(20));
    opts.record = true;
    opts.stop_after_frames = Some(60);
    let viewer = tokio::spawn(run_viewer(opts));

    // Push the first keyframe repeatedly until the viewer is connected, then the sequence.
    // (The host is asked for a keyframe as soon as the viewer signals: skip that event.)
    let mut events = server.subscribe();
    let joined = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Some(rtcast::Event::KeyframeRequested { .. }) => continue,
                other => break other,
            }
        }
    })
    .await;
    assert!(
        matches!(joined, Ok(Some(rtcast::Event::ViewerJoined { .. }))),
        "{joined:?}"
    );
    let pusher = {
        let stream = stream.clone();
        let aus = aus.clone();
        tokio::task::spawn_blocking(move || {
            for (i, au) in aus.iter().enumerate() {
                stream
                    .push_h264(au, Some(Duration::from_millis(33 * i as u64)))
                    .unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let report = viewer.await.unwrap().unwrap();
    pusher.await.unwrap();
    assert!(report.connected);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.access_units.len(), 60, "frames received");
    for (i, got) in report.access_units.iter().enumerate() {
        let want = &aus[i];
        // The depacketizer writes 4-byte start codes; the pushed units use them too.
        assert_eq!(got.len(), want.len(), "access unit {i} length");
        assert!(got[..] == want[..], "access unit {i} differs");
    }
}
