//! ICE-TCP (RFC 6544, passive): the native viewer carries its media over TCP to the server's
//! `tcptype passive` candidate, over the WebSocket protocol and WHEP, on a port of its own and on
//! the HTTP port shared with pages and signalling; a viewer whose connection closes is gone at
//! once; the candidate policy decides what is offered.
//!
//! The native viewer's webrtc-rs agent has no ICE-TCP of its own: it is shown the server's TCP
//! candidate as a UDP one and its datagrams are framed onto a TCP connection (see
//! `ViewerOptions::ice_tcp`). The server side is real ICE-TCP; Chromium's own ICE-TCP is tested
//! in `hostile_network.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use rtcast::{CandidatePolicy, Event, LeaveReason, Server, ServerConfig};
use rtcast_e2e::small_demo;
use rtcast_e2e::viewer::{run_viewer, Leave, ViewerOptions};

fn start(config: ServerConfig) -> Server {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    Server::start(config).unwrap()
}

async fn play_over_tcp(url: String, frames: u64) -> rtcast_e2e::viewer::ViewerReport {
    let mut opts = ViewerOptions::new(url, Duration::from_secs(20));
    opts.ice_tcp = true;
    opts.stop_after_frames = Some(frames);
    run_viewer(opts).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_whep_viewers_play_over_ice_tcp_on_its_own_port() {
    let server = start(ServerConfig::loopback());
    let stream = server.stream("demo").unwrap();
    let _source = small_demo(stream);
    let tcp = server.tcp_addrs().to_vec();
    assert_eq!(tcp.len(), 1, "{tcp:?}");
    assert_ne!(tcp[0].port(), server.http_addr().port());

    let ws = play_over_tcp(server.ws_url("demo"), 30).await;
    assert!(ws.connected, "{ws:?}");
    assert_eq!(ws.video_frames, 30);
    assert!(ws.tcp_packets >= ws.video_packets, "{ws:?}");

    let whep = play_over_tcp(server.whep_url("demo"), 30).await;
    assert!(whep.connected, "{whep:?}");
    assert_eq!(whep.video_frames, 30);
    assert!(whep.tcp_packets >= whep.video_packets, "{whep:?}");
}

/// A port number free for both TCP and UDP on 127.0.0.1 right now.
fn free_port_for_both() -> u16 {
    for _ in 0..50 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_tcp_shares_the_http_port_by_default_and_pages_still_load() {
    let mut config = ServerConfig::loopback();
    config.port = free_port_for_both();
    config.udp_port = None;
    let server = start(config);
    let port = server.http_addr().port();
    assert_eq!(server.udp_addrs()[0].port(), port);
    assert_eq!(
        server.tcp_addrs(),
        &[SocketAddr::from(([127, 0, 0, 1], port))]
    );
    let stream = server.stream("demo").unwrap();
    let _source = small_demo(stream);

    // Pages, WHEP and the WebSocket on the port, and media over TCP on it too.
    let page = rtcast_e2e::whep::http(server.http_addr(), "GET", "/demo/embed.html", &[], "")
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    let ws = play_over_tcp(server.ws_url("demo"), 20).await;
    assert_eq!(ws.video_frames, 20, "{ws:?}");
    assert!(ws.tcp_packets > 0);
    let whep = play_over_tcp(server.whep_url("demo"), 20).await;
    assert_eq!(whep.video_frames, 20, "{whep:?}");
    // And a UDP viewer at the same time.
    let mut udp = ViewerOptions::new(server.ws_url("demo"), Duration::from_secs(20));
    udp.stop_after_frames = Some(20);
    let udp = run_viewer(udp).await.unwrap();
    assert_eq!(udp.video_frames, 20, "{udp:?}");
    assert_eq!(udp.tcp_packets, 0);
    // Something that is neither HTTP, TLS nor ICE-TCP is closed without harm.
    let mut junk = tokio::net::TcpStream::connect(server.http_addr())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut junk, &[0, 2, 9, 9, 0, 0])
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut junk, &mut buf),
    )
    .await
    .expect("the server should close a connection that is not ICE-TCP")
    .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_whose_tcp_connection_closes_is_gone_at_once() {
    let mut config = ServerConfig::loopback();
    // Far beyond the test: only the closed connection can end the session in time.
    config.limits.consent_timeout = Duration::from_secs(60);
    let server = start(config);
    let stream = server.stream("demo").unwrap();
    let _source = small_demo(stream);
    let mut events = server.subscribe();
    let mut opts = ViewerOptions::new(server.whep_url("demo"), Duration::from_secs(20));
    opts.ice_tcp = true;
    opts.stop_after_frames = Some(10);
    opts.leave = Leave::Vanish;
    let report = run_viewer(opts).await.unwrap();
    assert_eq!(report.video_frames, 10);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let e = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("the viewer was not closed with its connection")
            .unwrap();
        if let Event::ViewerLeft { reason, .. } = e {
            assert_eq!(reason, LeaveReason::ConnectionLost);
            break;
        }
    }
    for _ in 0..100 {
        if server.census().unwrap().sessions == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sessions left: {:?}", server.census());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_candidate_policy_decides_what_is_offered_udp_first() {
    let server = start(ServerConfig::loopback());
    let stream = server.stream("demo").unwrap();
    let _source = small_demo(stream);
    let r = rtcast_e2e::whep::http(
        server.http_addr(),
        "POST",
        "/demo/whep",
        &[("Content-Type", "application/sdp")],
        &rtcast_e2e::whep::client_offer().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{r:?}");
    let cands: Vec<&str> = r
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .collect();
    let udp = cands.iter().position(|c| c.contains(" udp ")).unwrap();
    let tcp = cands
        .iter()
        .position(|c| c.contains(" tcp ") && c.contains("tcptype passive"))
        .unwrap_or_else(|| panic!("{cands:?}"));
    let prio = |c: &str| c.split_whitespace().nth(3).unwrap().parse::<u32>().unwrap();
    assert!(prio(cands[udp]) > prio(cands[tcp]), "{cands:?}");
    drop(server);

    let mut config = ServerConfig::loopback();
    config.candidates = "udp".parse::<CandidatePolicy>().unwrap();
    let server = start(config);
    assert!(server.tcp_addrs().is_empty());
    let stream = server.stream("demo").unwrap();
    let _source = small_demo(stream);
    let r = rtcast_e2e::whep::http(
        server.http_addr(),
        "POST",
        "/demo/whep",
        &[("Content-Type", "application/sdp")],
        &rtcast_e2e::whep::client_offer().unwrap(),
    )
    .await
    .unwrap();
    assert!(
        r.body.contains(" udp ") && !r.body.contains(" tcp "),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_viewer_that_stops_reading_loses_only_its_own_packets() {
    let server = start(ServerConfig::loopback());
    let stream = server.stream("demo").unwrap();
    // ~2 Mbit/s: enough to fill a stalled connection's socket buffers and its queue in seconds.
    let _source = rtcast::demo::DemoSource::start(
        stream,
        rtcast::demo::DemoOptions {
            width: 640,
            height: 360,
            noise: true,
            ..Default::default()
        },
    );
    let mut stalled = ViewerOptions::new(server.ws_url("demo"), Duration::from_secs(16));
    stalled.ice_tcp = true;
    stalled.stall_after_frames = Some(10);
    let stalled = tokio::spawn(run_viewer(stalled));
    // Its queue (512 packets) and kernel buffers (~0.5 MB) fill in a few seconds at 2 Mbit/s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    // A viewer of the same stream, over TCP too, while the stalled one's queue is full.
    let seconds = 6;
    let mut witness = ViewerOptions::new(server.ws_url("demo"), Duration::from_secs(seconds));
    witness.ice_tcp = true;
    let started = std::time::Instant::now();
    let witness = run_viewer(witness).await.unwrap();
    let played =
        started.elapsed().as_secs_f64() - witness.time_to_first_frame.unwrap().as_secs_f64();
    let fps = witness.video_frames as f64 / played;
    let stats = server.stats();
    println!(
        "witness {fps:.1} fps, {} packets lost; server send drops {}, keyframe requests {}",
        witness.video_packets_lost, stats.send_drops, stats.keyframe_requests
    );
    assert!(fps >= 27.0, "the witness played {fps:.1} fps: {witness:?}");
    assert!(
        stats.send_drops > 0,
        "the stalled viewer's queue never filled: {stats:?}"
    );
    // Its drops ask for a keyframe at most every 3 s (two viewers joining ask for one each).
    assert!(stats.keyframe_requests <= 2 + 12 / 3 + 1, "{stats:?}");
    let stalled = stalled.await.unwrap().unwrap();
    assert!(
        stalled.connected && stalled.video_frames < 100,
        "{stalled:?}"
    );
}
