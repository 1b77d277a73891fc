//! Real headless Chromium playing rtcast streams over Flussonic's WebSocket protocol: the client
//! code of Flussonic's documentation, rtcast's own embed.html, and a late joiner mid-GOP.

use std::time::Duration;

use rtcast::demo::{DemoOptions, DemoSource};
use rtcast::media::encoder::{EncoderConfig, H264Encoder};
use rtcast::media::pattern::TestPattern;
use rtcast::{Server, ServerConfig, StreamOptions};
use rtcast_e2e::{page_url, Chromium};

const PLAY_TIMEOUT: Duration = Duration::from_secs(30);

fn demo_server() -> (Server, DemoSource) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let stream = server.stream("demo").unwrap();
    let source = DemoSource::start(stream, DemoOptions::default());
    (server, source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flussonic_documented_client_plays_the_demo_at_1280x720() {
    let (server, _source) = demo_server();
    let chromium = Chromium::launch().await.unwrap();
    let url = page_url(
        "flussonic-ws-client.html",
        &format!("src={}", server.ws_url("demo")),
    );
    let page = chromium.open(&url).await.unwrap();
    let report = page.wait_for_video(30, PLAY_TIMEOUT).await.unwrap();
    assert!(report.frames_presented >= 30, "{report:?}");
    assert_eq!((report.width, report.height), (1280, 720), "{report:?}");
    assert_eq!(server.stats().viewers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_page_plays_the_demo_at_1280x720() {
    let (server, _source) = demo_server();
    let chromium = Chromium::launch().await.unwrap();
    let page = chromium.open(&server.url("demo")).await.unwrap();
    let report = page.wait_for_video(30, PLAY_TIMEOUT).await.unwrap();
    assert!(report.frames_presented >= 30, "{report:?}");
    assert_eq!((report.width, report.height), (1280, 720), "{report:?}");
}

/// A host pushing encoded H.264 with a keyframe every 10 s that ignores keyframe requests: a
/// viewer joining between keyframes is served from the GOP cache and shows a picture at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_mid_gop_shows_a_picture_within_a_second() {
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let stream = server
        .stream_with(
            "gop",
            StreamOptions {
                audio: false,
                ..StreamOptions::default()
            },
        )
        .unwrap();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let pusher = std::thread::spawn(move || {
        let mut encoder = H264Encoder::new(EncoderConfig {
            keyframe_interval: Duration::from_secs(10),
            ..EncoderConfig::default()
        });
        let mut pattern = TestPattern::new(640, 360);
        for i in 0u64.. {
            if stop_rx.try_recv().is_ok() {
                break;
            }
            let pts = Duration::from_millis(i * 1000 / 30);
            let picture = pattern.render(i, pts);
            if let Some(out) = encoder.encode(&picture.as_raw_frame(), false).unwrap() {
                stream.push_h264(&out.data, Some(pts)).unwrap();
            }
            std::thread::sleep(Duration::from_millis(33));
        }
    });
    let source_start = std::time::Instant::now();
    // Join 3 s into the 10 s GOP.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let chromium = Chromium::launch().await.unwrap();
    let url = page_url(
        "flussonic-ws-client.html",
        &format!("src={}", server.ws_url("gop")),
    );
    let page = chromium.open(&url).await.unwrap();
    let report = page.wait_for_video(10, PLAY_TIMEOUT).await.unwrap();
    let opened_after = source_start.elapsed();
    stop_tx.send(()).unwrap();
    pusher.join().unwrap();
    // The only keyframe the viewer could have started on without the cache comes at 10 s.
    assert!(
        opened_after.as_secs_f64() * 1000.0 + report.first_frame_ms < 9000.0,
        "the test ran too late to prove anything: page opened {opened_after:?} into the GOP"
    );
    assert_eq!((report.width, report.height), (640, 360), "{report:?}");
    assert!(
        report.first_frame_ms < 1000.0,
        "first frame after {} ms (page open to first presented frame)",
        report.first_frame_ms
    );
}
