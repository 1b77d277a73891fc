//! WHEP (`/STREAM/whep`): every status code and header over plain HTTP/1.1, a native WHEP viewer
//! with payload types of its own, a WHEP and a WebSocket viewer of the same stream receiving the
//! same frames, sessions reaped without DELETE, and Chromium playing through a plain WHEP page.

use std::sync::Arc;
use std::time::Duration;

use rtcast::demo::{DemoOptions, DemoSource};
use rtcast::{Event, IceServer, LeaveReason, Server, ServerConfig, StreamOptions};
use rtcast_e2e::small_demo;
use rtcast_e2e::viewer::{run_viewer, ViewerOptions};
use rtcast_e2e::whep::{
    client_offer, http, run_whep_viewer, HttpResponse, WhepLeave, CLIENT_H264_PT, CLIENT_OPUS_PT,
};
use rtcast_e2e::witness::Witness;
use rtcast_e2e::{page_url, Chromium};

const SDP: (&str, &str) = ("Content-Type", "application/sdp");
const FRAG: (&str, &str) = ("Content-Type", "application/trickle-ice-sdpfrag");

fn start(config: ServerConfig) -> Server {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    Server::start(config).unwrap()
}

async fn post(server: &Server, path: &str, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    http(server.http_addr(), "POST", path, headers, body)
        .await
        .unwrap()
}

/// A viewer of stream `watched` (its own demo source) that must keep playing while another
/// client is refused: refusals touch nobody else.
async fn witness(server: &Server) -> (DemoSource, Witness) {
    let source = small_demo(server.stream("watched").unwrap());
    (source, Witness::start(server.ws_url("watched")).await)
}

async fn census_sessions_reach_zero(server: &Server) {
    census_sessions_reach(server, 0).await
}

async fn census_sessions_reach(server: &Server, n: usize) {
    for _ in 0..100 {
        if server.census().unwrap().sessions == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sessions left: {:?}", server.census());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_answers_201_with_candidates_and_every_header_then_patch_and_delete() {
    let mut config = ServerConfig::loopback();
    config.ice_servers = vec![
        IceServer {
            urls: vec!["stun:stun.example.org:3478".into()],
            ..Default::default()
        },
        IceServer {
            urls: vec!["turn:turn.example.org:3478?transport=udp".into()],
            username: Some("user".into()),
            credential: Some("secret".into()),
        },
    ];
    let server = start(config);
    server.stream("demo").unwrap();
    let (_source, watched) = witness(&server).await;
    let udp_port = server.udp_addrs()[0].port();
    let offer = client_offer().unwrap();
    let r = post(
        &server,
        "/demo/whep",
        &[SDP, ("Origin", "http://page.example")],
        &offer,
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/sdp"));
    // The answer carries our candidates: the client needs no trickle.
    assert!(
        r.body.contains(&format!("127.0.0.1 {udp_port} typ host")),
        "{}",
        r.body
    );
    assert!(r.body.contains("a=end-of-candidates"), "{}", r.body);
    // Offered payload types answered, send-only.
    assert!(
        r.body
            .contains(&format!("a=rtpmap:{CLIENT_H264_PT} H264/90000")),
        "{}",
        r.body
    );
    assert!(r.body.contains("a=sendonly"), "{}", r.body);
    let location = r.header("location").unwrap().to_owned();
    let id = location.strip_prefix("/demo/whep/").unwrap().to_owned();
    assert!(
        id.len() >= 32 && id.chars().all(|c| c.is_ascii_alphanumeric()),
        "{id}"
    );
    assert_eq!(r.header("x-sid"), Some(id.as_str()));
    let etag = r.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.len() > 8, "{etag}");
    assert_eq!(
        r.header("accept-patch"),
        Some("application/trickle-ice-sdpfrag")
    );
    let links = r.headers("link");
    assert_eq!(links.len(), 2, "{links:?}");
    assert_eq!(links[0], "<stun:stun.example.org:3478>; rel=\"ice-server\"");
    assert_eq!(
        links[1],
        "<turn:turn.example.org:3478?transport=udp>; rel=\"ice-server\"; username=\"user\"; \
         credential=\"secret\"; credential-type=\"password\""
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let expose = r.header("access-control-expose-headers").unwrap();
    for h in ["Location", "ETag", "Link", "X-Sid", "Accept-Patch"] {
        assert!(expose.contains(h), "{expose}");
    }
    assert_eq!(
        server.census().unwrap().sessions,
        2,
        "the witness and this one"
    );

    let addr = server.http_addr();
    let frag =
        "a=ice-ufrag:{UFRAG}\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n";
    let ufrag = offer
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .unwrap()
        .trim()
        .to_owned();
    let good = frag.replace("{UFRAG}", &ufrag);
    let r = http(
        addr,
        "PATCH",
        &location,
        &[FRAG, ("If-Match", &etag)],
        &good,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 204, "{r:?}");
    let r = http(addr, "PATCH", &location, &[FRAG], &good)
        .await
        .unwrap();
    assert_eq!(r.status, 204, "no If-Match is fine: {r:?}");
    let r = http(addr, "PATCH", &location, &[SDP], &good).await.unwrap();
    assert_eq!(r.status, 415, "{r:?}");
    let r = http(
        addr,
        "PATCH",
        &location,
        &[FRAG, ("If-Match", "\"other\"")],
        &good,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 412, "{r:?}");
    // ICE restart (a new ufrag): not supported, said so.
    let restart = frag.replace("{UFRAG}", "newufrag");
    let r = http(addr, "PATCH", &location, &[FRAG], &restart)
        .await
        .unwrap();
    assert_eq!(r.status, 501, "{r:?}");
    assert!(r.body.contains("ICE restart"), "{r:?}");
    let r = http(addr, "GET", &location, &[], "").await.unwrap();
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("allow"), Some("PATCH, DELETE, OPTIONS"));

    let r = http(addr, "DELETE", &location, &[], "").await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    census_sessions_reach(&server, 1).await; // the witness
    let r = http(addr, "DELETE", &location, &[], "").await.unwrap();
    assert_eq!(r.status, 404, "{r:?}");
    let r = http(addr, "PATCH", &location, &[FRAG], &good)
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{r:?}");
    let r = http(addr, "DELETE", "/demo/whep/nosuchsession", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{r:?}");
    watched.assert_receiving("after the WHEP refusals").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_have_their_status_codes_and_say_why() {
    let mut config = ServerConfig::loopback();
    config.limits.max_viewers_per_stream = 1;
    config.authorize = Some(Arc::new(|req: &rtcast::AuthRequest| {
        if req.stream != "watched" {
            assert_eq!(req.protocol, rtcast::Protocol::Whep);
        }
        req.stream != "locked" || req.token.as_deref() == Some("good")
    }));
    let server = start(config);
    server.stream("demo").unwrap();
    server.stream("locked").unwrap();
    let (_source, watched) = witness(&server).await;
    let offer = client_offer().unwrap();

    let r = post(&server, "/nope/whep", &[SDP], &offer).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.body.contains("demo, locked"), "{r:?}");
    let r = http(server.http_addr(), "GET", "/demo/whep", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
    let r = post(
        &server,
        "/demo/whep",
        &[("Content-Type", "text/plain")],
        &offer,
    )
    .await;
    assert_eq!(r.status, 415, "{r:?}");
    assert!(r.body.contains("application/sdp"), "{r:?}");
    let huge = format!("{offer}{}", "a=x\r\n".repeat(20_000));
    let r = post(&server, "/demo/whep", &[SDP], &huge).await;
    assert_eq!(r.status, 413, "{r:?}");
    let r = post(&server, "/demo/whep", &[SDP], "hello").await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = post(&server, "/demo/whep", &[SDP], "v=0\r\nthis is not sdp\r\n").await;
    assert_eq!(r.status, 400, "{r:?}");
    let vp8_only = offer.replace("H264/90000", "VP8/90000");
    let r = post(&server, "/demo/whep", &[SDP], &vp8_only).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body
            .contains("offer has no H.264 (packetization-mode=1) video"),
        "{r:?}"
    );

    let r = post(&server, "/locked/whep", &[SDP], &offer).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = post(
        &server,
        "/locked/whep",
        &[SDP, ("Authorization", "Bearer bad")],
        &offer,
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = post(
        &server,
        "/locked/whep",
        &[SDP, ("Authorization", "Bearer good")],
        &offer,
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    let location = r.header("location").unwrap().to_owned();
    let r = http(server.http_addr(), "DELETE", &location, &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    census_sessions_reach(&server, 1).await; // the witness
    let r = post(&server, "/locked/whep?token=bad", &[SDP], &offer).await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = post(&server, "/locked/whep?token=good", &[SDP], &offer).await;
    assert_eq!(r.status, 201, "?token= works too: {r:?}");

    // One viewer per stream: the second is refused while the first session lives.
    let r = post(&server, "/demo/whep", &[SDP], &offer).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = post(&server, "/demo/whep", &[SDP], &offer).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("maximum"), "{r:?}");
    // Errors carry CORS headers too, so a page can read them.
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    watched.assert_receiving("after the WHEP refusals").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_and_cors_origins() {
    let server = start(ServerConfig::loopback());
    server.stream("demo").unwrap();
    let addr = server.http_addr();
    let r = http(
        addr,
        "OPTIONS",
        "/demo/whep",
        &[
            ("Origin", "null"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "content-type,authorization",
            ),
        ],
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let methods = r.header("access-control-allow-methods").unwrap();
    for m in ["POST", "PATCH", "DELETE", "OPTIONS"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = r.header("access-control-allow-headers").unwrap();
    for h in ["Content-Type", "Authorization", "If-Match"] {
        assert!(headers.contains(h), "{headers}");
    }
    assert_eq!(r.header("accept-post"), Some("application/sdp"));
    let r = http(
        addr,
        "OPTIONS",
        "/demo/whep/someid",
        &[("Origin", "null")],
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 204, "{r:?}");

    let mut config = ServerConfig::loopback();
    config.cors_origins = vec!["http://good.example".into()];
    let server = start(config);
    server.stream("demo").unwrap();
    let addr = server.http_addr();
    let r = http(
        addr,
        "OPTIONS",
        "/demo/whep",
        &[("Origin", "http://good.example")],
        "",
    )
    .await
    .unwrap();
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://good.example")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = post(
        &server,
        "/demo/whep",
        &[SDP, ("Origin", "http://evil.example")],
        &client_offer().unwrap(),
    )
    .await;
    assert_eq!(r.header("access-control-allow-origin"), None, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_info_lists_the_tracks_and_session_stats_are_accepted() {
    let server = start(ServerConfig::loopback());
    server.stream("av").unwrap();
    server
        .stream_with(
            "v",
            StreamOptions {
                audio: false,
                ..StreamOptions::default()
            },
        )
        .unwrap();
    let addr = server.http_addr();
    let r = http(addr, "GET", "/av/media_info.json", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let tracks = v["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 2, "{v}");
    assert_eq!(
        (tracks[0]["content"].as_str(), tracks[0]["codec"].as_str()),
        (Some("video"), Some("h264"))
    );
    assert_eq!(
        (tracks[1]["content"].as_str(), tracks[1]["codec"].as_str()),
        (Some("audio"), Some("opus"))
    );
    let r = http(addr, "GET", "/v/media_info.json", &[], "")
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["tracks"].as_array().unwrap().len(), 1, "{v}");
    let r = http(addr, "GET", "/nope/media_info.json", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{r:?}");
    let r = http(
        addr,
        "PUT",
        "/av/sessions/abc",
        &[("Content-Type", "application/json")],
        "{\"bitrate\":1}",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 204, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_whep_viewer_receives_h264_with_its_own_payload_types_and_delete_closes() {
    let server = start(ServerConfig::loopback());
    let stream = server.stream("demo").unwrap();
    let _source = small_demo(stream);
    let mut events = server.subscribe();
    let report = run_whep_viewer(
        server.http_addr(),
        "/demo/whep",
        30,
        Duration::from_secs(20),
        true,
        WhepLeave::Delete,
    )
    .await
    .unwrap();
    assert_eq!(report.status, 201, "{report:?}");
    assert!(report.connected);
    assert_eq!(report.video_frames, 30);
    assert_eq!(report.video_pts, vec![CLIENT_H264_PT]);
    // The first frame is a keyframe (an SPS first).
    assert_eq!(report.access_units[0][4] & 0x1f, 7);
    let mut joined = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let e = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("no ViewerLeft")
            .unwrap();
        match e {
            Event::ViewerJoined {
                viewer, protocol, ..
            } => {
                assert_eq!(protocol, rtcast::Protocol::Whep);
                joined = Some(viewer);
            }
            Event::ViewerLeft { viewer, reason, .. } => {
                assert_eq!(Some(viewer), joined);
                assert_eq!(reason, LeaveReason::Closed);
                break;
            }
            _ => {}
        }
    }
    census_sessions_reach_zero(&server).await;
    // Audio flowed too, with the offer's Opus payload type (if any arrived yet).
    assert!(
        report.audio_pts.iter().all(|pt| *pt == CLIENT_OPUS_PT),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_session_is_reaped_when_the_client_just_closes() {
    let mut config = ServerConfig::loopback();
    config.limits.consent_timeout = Duration::from_secs(3);
    let server = start(config);
    let stream = server.stream("demo").unwrap();
    let _source = small_demo(stream);
    let report = run_whep_viewer(
        server.http_addr(),
        "/demo/whep",
        5,
        Duration::from_secs(20),
        false,
        WhepLeave::CloseOnly,
    )
    .await
    .unwrap();
    assert_eq!(report.video_frames, 5);
    let location = report.location.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = http(
            server.http_addr(),
            "PATCH",
            &location,
            &[FRAG],
            "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n",
        )
        .await
        .unwrap();
        if r.status == 404 {
            break;
        }
        assert_eq!(r.status, 204, "{r:?}");
        assert!(std::time::Instant::now() < deadline, "session never reaped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    census_sessions_reach_zero(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_and_websocket_viewers_of_one_stream_get_every_frame_in_order() {
    let server = start(ServerConfig::loopback());
    let stream = server
        .stream_with(
            "both",
            StreamOptions {
                audio: false,
                ..StreamOptions::default()
            },
        )
        .unwrap();
    let mut events = server.subscribe();
    let sps_pps = [
        0u8, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80,
    ];
    let keyframe = |n: u8| {
        let mut k = sps_pps.to_vec();
        k.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84, n]);
        k
    };
    let delta = |n: u8| vec![0u8, 0, 0, 1, 0x41, 0x9a, 0x22, n];
    stream.push_h264(&keyframe(0), None).unwrap();
    const N: usize = 40;
    let ws = {
        let mut opts = ViewerOptions::new(server.ws_url("both"), Duration::from_secs(20));
        opts.record = true;
        opts.stop_after_frames = Some(N as u64 + 1);
        tokio::spawn(run_viewer(opts))
    };
    let addr = server.http_addr();
    let whep = tokio::spawn(async move {
        run_whep_viewer(
            addr,
            "/both/whep",
            N as u64 + 1,
            Duration::from_secs(20),
            true,
            WhepLeave::Delete,
        )
        .await
    });
    let mut joined = 0;
    while joined < 2 {
        let e = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("viewers did not join");
        if let Some(Event::ViewerJoined { .. }) = e {
            joined += 1;
        }
    }
    let pushed: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            if i % 10 == 0 {
                keyframe(i as u8 + 1)
            } else {
                delta(i as u8 + 1)
            }
        })
        .collect();
    for (i, au) in pushed.iter().enumerate() {
        stream
            .push_h264(au, Some(Duration::from_millis(100 + 33 * i as u64)))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ws = ws.await.unwrap().unwrap();
    let whep = whep.await.unwrap().unwrap();
    for (name, aus) in [
        ("websocket", &ws.access_units),
        ("whep", &whep.access_units),
    ] {
        let got: Vec<Vec<u8>> = aus.iter().map(|b| b.to_vec()).collect();
        assert!(got.len() > N, "{name} got {} frames", got.len());
        assert_eq!(&got[got.len() - N..], &pushed[..], "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_the_demo_through_a_plain_whep_page_at_1280x720() {
    let server = start(ServerConfig::loopback());
    let stream = server.stream("demo").unwrap();
    let _source = DemoSource::start(stream, DemoOptions::default());
    let chromium = Chromium::launch().await.unwrap();
    let url = page_url(
        "whep-client.html",
        &format!("src={}", server.whep_url("demo")),
    );
    let page = chromium.open(&url).await.unwrap();
    let report = page
        .wait_for_video(30, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e:?}; console: {:?}", page.console()));
    assert!(report.frames_presented >= 30, "{report:?}");
    assert_eq!((report.width, report.height), (1280, 720), "{report:?}");
    assert_eq!(server.stats().viewers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_page_with_proto_whep_plays_the_demo() {
    let server = start(ServerConfig::loopback());
    let stream = server.stream("demo").unwrap();
    let _source = DemoSource::start(stream, DemoOptions::default());
    let mut events = server.subscribe();
    let chromium = Chromium::launch().await.unwrap();
    let page = chromium
        .open(&format!("{}?proto=whep", server.url("demo")))
        .await
        .unwrap();
    let report = page
        .wait_for_video(30, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e:?}; console: {:?}", page.console()));
    assert_eq!((report.width, report.height), (1280, 720), "{report:?}");
    let ttff = page.time_to_first_frame(&report).await;
    assert!(ttff.is_some_and(|ms| ms > 0.0), "{ttff:?} {report:?}");
    // The page attaches the audio once the first video frame is shown.
    assert_eq!(page.played_track_kinds().await.unwrap(), ["audio", "video"]);
    assert_eq!(server.stats().viewers, 1);
    let joined = std::iter::from_fn(|| events.try_recv()).find_map(|e| match e {
        Event::ViewerJoined { protocol, .. } => Some(protocol),
        _ => None,
    });
    assert_eq!(joined, Some(rtcast::Protocol::Whep));
}

/// Installs the official Flussonic player from npm into tests/flussonic-player (once; npm keeps
/// it) and returns whether its bundle is there. One install at a time: two tests of this file
/// run at once, and two `npm install` in one directory trip over each other.
async fn install_flussonic_player() -> Result<(), String> {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("flussonic-player");
    let bundle = dir.join("node_modules/@flussonic/flussonic-webrtc-player/dist/index.js");
    if bundle.exists() {
        return Ok(());
    }
    let out = tokio::process::Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--ignore-scripts"])
        .current_dir(&dir)
        .output()
        .await
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if !out.status.success() || !bundle.exists() {
        return Err(format!(
            "npm install in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_flussonic_player_from_npm_plays_the_demo_over_whep() {
    install_flussonic_player().await.unwrap();
    let server = start(ServerConfig::loopback());
    let stream = server.stream("demo").unwrap();
    let _source = DemoSource::start(stream, DemoOptions::default());
    let mut events = server.subscribe();
    let chromium = Chromium::launch().await.unwrap();
    let base = server.whep_url("demo");
    let src = base.strip_suffix("/whep").unwrap();
    let page = chromium
        .open(&page_url("flussonic-player.html", &format!("src={src}")))
        .await
        .unwrap();
    let report = page
        .wait_for_video(30, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e:?}; console: {:?}", page.console()));
    assert!(report.frames_presented >= 30, "{report:?}");
    assert_eq!((report.width, report.height), (1280, 720), "{report:?}");
    let joined = std::iter::from_fn(|| events.try_recv()).find_map(|e| match e {
        Event::ViewerJoined { protocol, .. } => Some(protocol),
        _ => None,
    });
    assert_eq!(joined, Some(rtcast::Protocol::Whep));
}

/// A ladder of three renditions from the built-in encoder, as the Flussonic player tests use.
fn ladder_stream(server: &Server) -> rtcast::Stream {
    let r = |width, height, bitrate_bps| rtcast::Rendition {
        width,
        height,
        bitrate_bps,
    };
    let options = rtcast::StreamOptions {
        renditions: vec![
            r(1280, 720, 2_000_000),
            r(640, 360, 600_000),
            r(320, 180, 200_000),
        ],
        ..rtcast::StreamOptions::default()
    };
    server.stream_with("demo", options).unwrap()
}

/// Waits until the page's video has this size.
async fn wait_for_size(page: &rtcast_e2e::Page, size: (u32, u32), within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let report = page
            .wait_for_video(1, Duration::from_secs(10))
            .await
            .unwrap();
        if (report.width, report.height) == size {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the video stayed {}x{}, not {size:?}; console: {:?}",
            report.width,
            report.height,
            page.console()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_flussonic_player_lists_the_renditions_and_switches_tracks_with_request_tracks() {
    install_flussonic_player().await.unwrap();
    let server = start(ServerConfig::loopback());
    let stream = ladder_stream(&server);
    let _source = DemoSource::start(stream, DemoOptions::default());
    let mut events = server.subscribe();
    let base = server.whep_url("demo");
    let src = base.strip_suffix("/whep").unwrap();

    let addr = server.http_addr();
    let r = http(addr, "GET", "/demo/media_info.json", &[], "")
        .await
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let tracks: Vec<_> = info["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["track_id"].as_str().unwrap().to_owned(),
                t["width"].as_u64(),
                t["bitrate"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        tracks,
        [
            ("v1".into(), Some(1280), Some(2000)),
            ("v2".into(), Some(640), Some(600)),
            ("v3".into(), Some(320), Some(200)),
            ("a1".into(), None, None),
        ]
    );

    // request_tracks refusals, on a session of a native WHEP client.
    let r = post(&server, "/demo/whep", &[SDP], &client_offer().unwrap()).await;
    assert_eq!(r.status, 201, "{r:?}");
    let sid = r.header("x-sid").unwrap().to_owned();
    let json = ("Content-Type", "application/json");
    for (path, body, status) in [
        (
            format!("/demo/sessions/{sid}/request_tracks"),
            r#"{"tracks":["v2","a1"]}"#,
            204,
        ),
        (
            format!("/demo/sessions/{sid}/request_tracks"),
            r#"{"tracks":[]}"#,
            204,
        ),
        (
            format!("/demo/sessions/{sid}/request_tracks"),
            r#"{"tracks":["v4"]}"#,
            400,
        ),
        (
            format!("/demo/sessions/{sid}/request_tracks"),
            "tracks",
            400,
        ),
        (
            "/demo/sessions/nope/request_tracks".to_owned(),
            r#"{"tracks":[]}"#,
            404,
        ),
    ] {
        let r = http(addr, "PUT", &path, &[json], body).await.unwrap();
        assert_eq!(r.status, status, "{path} {body}: {r:?}");
    }

    let chromium = Chromium::launch().await.unwrap();
    let page = chromium
        .open(&page_url("flussonic-player.html", &format!("src={src}")))
        .await
        .unwrap();
    wait_for_size(&page, (1280, 720), Duration::from_secs(30)).await;
    // The player's own call: PUT /demo/sessions/<X-Sid>/request_tracks {"tracks":["v3","a1"]}.
    page.eval("window.__player.changeTracks(['v3', 'a1'])")
        .await
        .unwrap();
    wait_for_size(&page, (320, 180), Duration::from_secs(10)).await;
    let switched = std::iter::from_fn(|| events.try_recv()).find_map(|e| match e {
        Event::RenditionSwitched { from, to, .. } => Some((from, to)),
        _ => None,
    });
    assert_eq!(switched, Some(("v1".into(), "v3".into())));
    // Its figures say so too, from their next publication (once a second).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let viewers = server.viewer_stats();
        if viewers.iter().any(|v| v.rendition == "v3") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{viewers:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    page.close().await.unwrap();

    // start_track: the player starts on v2 and stays there.
    let page = chromium
        .open(&page_url(
            "flussonic-player.html",
            &format!("src={src}&start_track=v2a1"),
        ))
        .await
        .unwrap();
    wait_for_size(&page, (640, 360), Duration::from_secs(30)).await;
}
