//! Adaptive quality with real browsers: a stream of three renditions (1280x720 at 2 Mbit/s,
//! 640x360 at 600 kbit/s, 320x180 at 200 kbit/s) encoded by the built-in encoder from raw frames,
//! and two Chromium viewers. The server and one viewer share a network namespace (loopback); the
//! other viewer is in a second namespace, linked to the first by a veth pair whose server side is
//! limited to 800 kbit/s (`tc tbf`). The limited viewer must settle on the 600 kbit/s rendition
//! within 10 s of connecting and then play it at 25 frames/s or more without a freeze, while the
//! other stays on the best rendition. Skipped, saying why, where namespaces cannot be made.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rtcast::demo::{DemoOptions, DemoSource};
use rtcast::{Event, Rendition, Server, ServerConfig, StreamOptions};
use rtcast_e2e::netns::Netns;
use rtcast_e2e::{Chromium, Page};
use serde_json::Value;

const SERVER_SIDE: &str = "10.77.0.1";
const LIMITED_SIDE: &str = "10.77.0.2";
/// How long the limited viewer may take to settle, from its connection.
const SETTLE_WITHIN: Duration = Duration::from_secs(10);
/// How long its playback is measured once settled.
const MEASURE: Duration = Duration::from_secs(6);

/// The page's video receiver figures (Chromium's `inbound-rtp` statistics).
const INBOUND_JS: &str = r#"(async () => {
  const peers = window.__rtcastPeers || [];
  const pc = peers[peers.length - 1];
  if (!pc) return null;
  let r = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') r = {
      framesDecoded: s.framesDecoded ?? 0, freezeCount: s.freezeCount ?? 0,
      width: s.frameWidth ?? 0, height: s.frameHeight ?? 0,
    };
  });
  return r;
})()"#;

fn runtime() -> tokio::runtime::Runtime {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// What a page played over a window.
#[derive(Debug)]
struct Played {
    fps: f64,
    freezes: i64,
    width: i64,
    height: i64,
}

async fn measure(page: &Page, window: Duration) -> Played {
    let a = page.eval(INBOUND_JS).await.unwrap();
    tokio::time::sleep(window).await;
    let b = page.eval(INBOUND_JS).await.unwrap();
    let n = |v: &Value, k: &str| v[k].as_i64().unwrap_or(0);
    Played {
        fps: (n(&b, "framesDecoded") - n(&a, "framesDecoded")) as f64 / window.as_secs_f64(),
        freezes: n(&b, "freezeCount") - n(&a, "freezeCount"),
        width: n(&b, "width"),
        height: n(&b, "height"),
    }
}

/// One test at a time: each runs three 720p-ladder encoders and Chromium, and a second one
/// beside it on a 2-core machine would measure the machine, not rtcast.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The server's namespace and the limited viewer's, linked by a veth pair; the name of the
/// server side's interface. `None` (skipped, saying why) where namespaces cannot be made.
fn namespaces() -> Option<(Netns, Netns, String)> {
    let made = Netns::create("abr-s").and_then(|s| Ok((s, Netns::create("abr-c")?)));
    let (srv, cli) = match made {
        Ok(n) => n,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return None;
        }
    };
    let dev = srv
        .link_to(
            &cli,
            &format!("{SERVER_SIDE}/24"),
            &format!("{LIMITED_SIDE}/24"),
        )
        .unwrap();
    Some((srv, cli, dev))
}

/// A server on every interface of its namespace with a stream "demo" of three renditions
/// encoded from the 1280x720 demo pattern (with noise: the encoders spend their bitrate; the
/// bars alone take ~0.3 Mbit/s).
fn ladder_server() -> (Server, DemoSource) {
    let config = ServerConfig {
        bind: "0.0.0.0".parse().unwrap(),
        ..ServerConfig::loopback()
    };
    let server = Server::start(config).unwrap();
    let rendition = |width, height, bitrate_bps| Rendition {
        width,
        height,
        bitrate_bps,
    };
    let options = StreamOptions {
        renditions: vec![
            rendition(1280, 720, 2_000_000),
            rendition(640, 360, 600_000),
            rendition(320, 180, 200_000),
        ],
        ..StreamOptions::default()
    };
    let stream = server.stream_with("demo", options).unwrap();
    let demo = DemoOptions {
        noise: true,
        ..DemoOptions::default()
    };
    let source = DemoSource::start(stream, demo);
    (server, source)
}

#[test]
fn a_viewer_on_an_800_kbit_link_settles_on_the_600_kbit_rendition_the_other_keeps_the_best() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((srv, cli, dev)) = namespaces() else {
        return;
    };
    srv.limit_egress(&dev, "800kbit").unwrap();

    let (url_tx, url_rx) = mpsc::channel::<String>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (played_tx, played_rx) = mpsc::channel::<Played>();

    let cli = &cli;
    std::thread::scope(|scope| {
        let limited = scope.spawn(move || {
            cli.enter(move || {
                runtime().block_on(async move {
                    let url = url_rx.recv_timeout(Duration::from_secs(60)).unwrap();
                    let chromium = Chromium::launch_reaching(&[SERVER_SIDE]).await.unwrap();
                    let page = chromium.open(&url).await.unwrap();
                    page.wait_for_video(1, Duration::from_secs(30))
                        .await
                        .unwrap();
                    // Until the server side says the viewer has settled.
                    loop {
                        match go_rx.try_recv() {
                            Ok(()) => break,
                            Err(mpsc::TryRecvError::Empty) => {
                                tokio::time::sleep(Duration::from_millis(100)).await
                            }
                            // The server side failed: its panic is the test's failure.
                            Err(mpsc::TryRecvError::Disconnected) => return,
                        }
                    }
                    let played = measure(&page, MEASURE).await;
                    played_tx.send(played).unwrap();
                    // Open until the server side has read its last figures.
                    let _ = tokio::task::spawn_blocking(move || go_rx.recv()).await;
                    page.close().await.unwrap();
                })
            })
        });

        srv.enter(move || {
            runtime().block_on(async move {
                let (server, _source) = ladder_server();
                let mut events = server.subscribe();
                let port = server.http_addr().port();

                let chromium = Chromium::launch().await.unwrap();
                let page = chromium
                    .open(&format!("http://127.0.0.1:{port}/demo/embed.html"))
                    .await
                    .unwrap();
                page.wait_for_video(1, Duration::from_secs(30))
                    .await
                    .unwrap();
                url_tx
                    .send(format!("http://{SERVER_SIDE}:{port}/demo/embed.html"))
                    .unwrap();

                // Joins and switches as they happen.
                let mut joined = std::collections::HashMap::new();
                let mut switches = Vec::new();
                let mut settled = None;
                let deadline = Instant::now() + Duration::from_secs(60);
                while settled.is_none() && Instant::now() < deadline {
                    let event =
                        tokio::time::timeout(Duration::from_millis(500), events.recv()).await;
                    match event {
                        Ok(Some(Event::ViewerJoined { viewer, remote, .. })) => {
                            joined.insert(viewer, (remote, Instant::now()));
                        }
                        Ok(Some(Event::RenditionSwitched {
                            viewer,
                            from,
                            to,
                            estimate_bps,
                            ..
                        })) => {
                            let at = Instant::now();
                            println!("viewer {viewer}: {from} -> {to} (estimate {estimate_bps} bit/s)");
                            switches.push((viewer, to.clone(), at));
                        }
                        Ok(None) => break,
                        _ => {}
                    }
                    // Settled: the limited viewer has been on v2 for 3 s.
                    let limited = server
                        .viewer_stats()
                        .into_iter()
                        .find(|v| v.remote.ip().to_string() == LIMITED_SIDE);
                    if let Some(v) = limited {
                        let since = switches
                            .iter()
                            .rev()
                            .find(|(id, _, _)| *id == v.id)
                            .filter(|(_, to, _)| to == "v2")
                            .map(|(_, _, at)| *at);
                        if v.rendition == "v2"
                            && since.is_some_and(|t| t.elapsed() >= Duration::from_secs(3))
                        {
                            settled = Some(v.id);
                        }
                    }
                }
                let stats = server.viewer_stats();
                println!("viewers: {stats:#?}");
                let limited_id = settled.expect("the limited viewer never settled on v2");
                let (_, limited_joined) = joined[&limited_id];
                let first_move = switches
                    .iter()
                    .find(|(id, _, _)| *id == limited_id)
                    .map(|(_, _, at)| at.duration_since(limited_joined))
                    .unwrap();
                let last_move = switches
                    .iter()
                    .rev()
                    .find(|(id, _, _)| *id == limited_id)
                    .map(|(_, _, at)| at.duration_since(limited_joined))
                    .unwrap();
                println!("limited viewer: first switch {first_move:?}, on v2 since {last_move:?} after joining");
                assert!(
                    last_move <= SETTLE_WITHIN,
                    "settled on v2 only {last_move:?} after joining"
                );

                go_tx.send(()).unwrap();
                let played = played_rx.recv_timeout(Duration::from_secs(60)).unwrap();
                let mine = measure(&page, Duration::from_secs(2)).await;
                println!("limited viewer played {played:?}; the other {mine:?}");
                assert_eq!((played.width, played.height), (640, 360), "{played:?}");
                assert!(played.fps >= 25.0, "{played:?}");
                assert_eq!(played.freezes, 0, "{played:?}");

                // The other viewer: never moved, on the best rendition at 1280x720.
                let other = server
                    .viewer_stats()
                    .into_iter()
                    .find(|v| v.id != limited_id)
                    .expect("the loopback viewer");
                assert!(
                    switches.iter().all(|(id, _, _)| *id != other.id),
                    "{switches:?}"
                );
                assert_eq!(other.rendition, "v1");
                assert_eq!((mine.width, mine.height), (1280, 720), "{mine:?}");
                // Still on v2 after the measurement.
                let limited = server
                    .viewer_stats()
                    .into_iter()
                    .find(|v| v.id == limited_id)
                    .unwrap();
                assert_eq!(limited.rendition, "v2");
                go_tx.send(()).unwrap();
                page.close().await.unwrap();
            })
        });
        limited.join().unwrap();
    });
}

#[test]
fn a_viewer_whose_link_drops_to_800_kbit_is_moved_down_within_seconds() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((srv, cli, dev)) = namespaces() else {
        return;
    };
    let (url_tx, url_rx) = mpsc::channel::<String>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (cli, shaper) = (&cli, &srv);
    std::thread::scope(|scope| {
        let viewer = scope.spawn(move || {
            cli.enter(move || {
                runtime().block_on(async move {
                    let Ok(url) = url_rx.recv_timeout(Duration::from_secs(60)) else {
                        return;
                    };
                    let chromium = Chromium::launch_reaching(&[SERVER_SIDE]).await.unwrap();
                    let page = chromium.open(&url).await.unwrap();
                    page.wait_for_video(1, Duration::from_secs(30))
                        .await
                        .unwrap();
                    let _ = tokio::task::spawn_blocking(move || done_rx.recv()).await;
                    page.close().await.unwrap();
                })
            })
        });
        srv.enter(move || {
            runtime().block_on(async move {
                let (server, _source) = ladder_server();
                let mut events = server.subscribe();
                let port = server.http_addr().port();
                url_tx
                    .send(format!("http://{SERVER_SIDE}:{port}/demo/embed.html"))
                    .unwrap();
                // Five seconds on the best rendition over the unlimited link.
                let deadline = Instant::now() + Duration::from_secs(40);
                let mut since = None;
                while since.is_none_or(|t: Instant| t.elapsed() < Duration::from_secs(5)) {
                    assert!(Instant::now() < deadline, "{:?}", server.viewer_stats());
                    let on_v1 = server
                        .viewer_stats()
                        .first()
                        .is_some_and(|v| v.rendition == "v1" && v.estimate_bps.is_some());
                    since = if on_v1 {
                        since.or(Some(Instant::now()))
                    } else {
                        None
                    };
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                while events.try_recv().is_some() {}

                shaper.limit_egress(&dev, "800kbit").unwrap();
                let dropped = Instant::now();
                let moved = loop {
                    let event = tokio::time::timeout(Duration::from_secs(20), events.recv())
                        .await
                        .expect("no switch within 20 s of the drop");
                    if let Some(Event::RenditionSwitched {
                        from,
                        to,
                        estimate_bps,
                        ..
                    }) = event
                    {
                        break (from, to, estimate_bps, dropped.elapsed());
                    }
                };
                println!(
                    "bandwidth drop to 800 kbit/s: {} -> {} after {:?} (estimate {} bit/s)",
                    moved.0, moved.1, moved.3, moved.2
                );
                assert_eq!((moved.0.as_str(), moved.1.as_str()), ("v1", "v2"));
                assert!(moved.3 <= SETTLE_WITHIN, "{moved:?}");
                done_tx.send(()).unwrap();
            })
        });
        viewer.join().unwrap();
    });
}

/// The plain demo pattern (no noise) at 1280x720 takes ~0.22 Mbit/s at a 2 Mbit/s target, and
/// compresses further when asked: its encoder must come down under a 150 kbit/s link (video
/// only, so that the link is the video's). (Not the
/// demo's noise: with it, behind 800 kbit/s and the encoder's target lowered to 0.5-0.65 Mbit/s,
/// the viewer was still sent ~2.3 Mbit/s at 1280x720 and ~0.96 Mbit/s at 640x360; the noise
/// looks incompressible past a floor, not yet measured at the encoder's output itself.)
///
/// Known to fail (2026-12-02): the encoder's target follows (83-105 kbit/s in the logs,
/// `RUST_LOG=rtcast::media=debug`; hint 125 kbit/s) but the viewer is still sent ~157 kbit/s with
/// an RTT of ~0.7 s, ~1100 NACKs and a keyframe request every ~4 s: each 1280x720 IDR is a burst
/// of a second or more of this link, overflows its queue, and the losses ask for the next IDR.
/// What is missing: a pacer (send at the estimate, not at line rate) and a least interval between
/// IDRs forced by one congested viewer. A ladder does settle (the tests above): its lower
/// renditions' keyframes are small. Run with `--ignored`.
#[test]
#[ignore = "follow mode does not settle under a link the size of the stream yet (see above)"]
fn an_encoder_that_follows_its_viewers_comes_down_under_a_150_kbit_link() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((srv, cli, dev)) = namespaces() else {
        return;
    };
    srv.limit_egress(&dev, "150kbit").unwrap();
    let (url_tx, url_rx) = mpsc::channel::<String>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (played_tx, played_rx) = mpsc::channel::<Played>();
    let cli = &cli;
    std::thread::scope(|scope| {
        let viewer = scope.spawn(move || {
            cli.enter(move || {
                runtime().block_on(async move {
                    let Ok(url) = url_rx.recv_timeout(Duration::from_secs(60)) else {
                        return;
                    };
                    let chromium = Chromium::launch_reaching(&[SERVER_SIDE]).await.unwrap();
                    let page = chromium.open(&url).await.unwrap();
                    page.wait_for_video(1, Duration::from_secs(30))
                        .await
                        .unwrap();
                    if tokio::task::spawn_blocking(move || go_rx.recv())
                        .await
                        .is_ok_and(|r| r.is_ok())
                    {
                        played_tx.send(measure(&page, MEASURE).await).unwrap();
                    }
                    page.close().await.unwrap();
                })
            })
        });
        srv.enter(move || {
            runtime().block_on(async move {
                let config = ServerConfig {
                    bind: "0.0.0.0".parse().unwrap(),
                    ..ServerConfig::loopback()
                };
                let server = Server::start(config).unwrap();
                // One rendition at 2 Mbit/s whose encoder may go down to 50 kbit/s.
                let mut options = StreamOptions {
                    audio: false,
                    ..StreamOptions::default()
                };
                options.encoder.follow_viewers_floor_bps = Some(50_000);
                let stream = server.stream_with("demo", options).unwrap();
                let _source = DemoSource::start(stream, DemoOptions::default());
                let mut events = server.subscribe();
                let port = server.http_addr().port();
                url_tx
                    .send(format!("http://{SERVER_SIDE}:{port}/demo/embed.html"))
                    .unwrap();
                // The hint falls under what the link carries, and the encoder's output with it.
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut hint = None;
                loop {
                    assert!(
                        Instant::now() < deadline,
                        "hint {hint:?}; viewers {:?}",
                        server.viewer_stats()
                    );
                    if let Ok(Some(Event::BitrateHint { bps, .. })) =
                        tokio::time::timeout(Duration::from_millis(200), events.recv()).await
                    {
                        hint = Some(bps);
                    }
                    let sent = server.viewer_stats().first().map(|v| v.bitrate_bps);
                    if hint.is_some_and(|h| h < 150_000) && sent.is_some_and(|s| s < 150_000) {
                        println!("hint {hint:?} bit/s, the viewer is sent {sent:?} bit/s");
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                go_tx.send(()).unwrap();
                let played = played_rx.recv_timeout(Duration::from_secs(60)).unwrap();
                println!("it plays {played:?}");
                assert_eq!((played.width, played.height), (1280, 720), "{played:?}");
                assert!(played.fps >= 25.0, "{played:?}");
                assert_eq!(played.freezes, 0, "{played:?}");
            })
        });
        viewer.join().unwrap();
    });
}
