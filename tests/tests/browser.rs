//! Real headless Chromium playing rtcast streams over Flussonic's WebSocket protocol: the client
//! code of Flussonic's documentation, rtcast's own embed.html, and a late joiner mid-GOP.

use std::time::Duration;

use rtcast::demo::{DemoOptions, DemoSource};
use rtcast::media::encoder::{EncoderConfig, H264Encoder};
use rtcast::media::pattern::TestPattern;
use rtcast::{Event, Server, ServerConfig, StreamOptions};
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
    assert_shows_colour_bars(&page).await;
}

/// Reads the picture back from the page: the top of the demo pattern is seven 75% colour bars
/// (white, yellow, cyan, green, magenta, red, blue), so a decoded frame that is black, grey or
/// scrambled fails here even though frames are "presented".
async fn assert_shows_colour_bars(page: &rtcast_e2e::Page) {
    let js = r#"(() => {
        const v = document.querySelector('video');
        const c = document.createElement('canvas');
        c.width = v.videoWidth; c.height = v.videoHeight;
        const g = c.getContext('2d');
        g.drawImage(v, 0, 0);
        const out = [];
        for (let i = 0; i < 7; i++) {
            const d = g.getImageData(Math.floor((i + 0.5) * c.width / 7), Math.floor(c.height * 0.05), 1, 1).data;
            out.push([d[0], d[1], d[2]]);
        }
        if (window.location.search.includes('shot')) { window.__shot = c.toDataURL('image/png'); }
        return out;
    })()"#;
    let samples = page.eval(js).await.unwrap();
    let want: [[bool; 3]; 7] = [
        [true, true, true],
        [true, true, false],
        [false, true, true],
        [false, true, false],
        [true, false, true],
        [true, false, false],
        [false, false, true],
    ];
    let mut matching = 0;
    for (sample, want) in samples.as_array().unwrap().iter().zip(want) {
        let rgb: Vec<u64> = sample
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        // 75% bars: a lit channel is ~191, a dark one ~16 (limited range, after decoding).
        if rgb
            .iter()
            .zip(want)
            .all(|(&c, lit)| if lit { c > 140 } else { c < 70 })
        {
            matching += 1;
        }
    }
    assert_eq!(
        matching, 7,
        "colour bars not found in the decoded picture: {samples}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_page_plays_the_demo_at_1280x720() {
    let (server, _source) = demo_server();
    let chromium = Chromium::launch().await.unwrap();
    let page = chromium.open(&server.url("demo")).await.unwrap();
    let report = page.wait_for_video(30, PLAY_TIMEOUT).await.unwrap();
    assert!(report.frames_presented >= 30, "{report:?}");
    assert_eq!((report.width, report.height), (1280, 720), "{report:?}");
    let ttff = page.time_to_first_frame(&report).await;
    assert!(ttff.is_some_and(|ms| ms > 0.0), "{ttff:?} {report:?}");
    // The page attaches the audio once the first video frame is shown.
    assert_eq!(page.played_track_kinds().await.unwrap(), ["audio", "video"]);
    // A second viewer in the same (now warm) browser: Chromium's first peer connection of a
    // process costs it ~150 ms of setup that later ones do not pay.
    let second = chromium.open(&server.url("demo")).await.unwrap();
    let report = second.wait_for_video(10, PLAY_TIMEOUT).await.unwrap();
    let ttff = second.time_to_first_frame(&report).await;
    assert!(ttff.is_some_and(|ms| ms > 0.0), "{ttff:?} {report:?}");
}

/// A host pushing encoded H.264 with a keyframe every 10 s that ignores keyframe requests: a
/// viewer joining between keyframes is served from the GOP cache and shows a picture at once.
/// Chromium sends its receive-side bandwidth estimate (REMB, negotiated by rtcast's offer); the
/// host gets it as the stream's bitrate hint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_bandwidth_estimate_reaches_the_host_as_a_bitrate_hint() {
    let (server, _source) = demo_server();
    let mut events = server.subscribe();
    let chromium = Chromium::launch().await.unwrap();
    let page = chromium.open(&server.url("demo")).await.unwrap();
    page.wait_for_video(1, PLAY_TIMEOUT).await.unwrap();
    let hint = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match events.recv().await {
                Some(Event::BitrateHint { stream, bps }) => break (stream, bps),
                Some(_) => continue,
                None => panic!("events ended"),
            }
        }
    })
    .await
    .expect("no bitrate hint within 15 s of playing");
    assert_eq!(hint.0, "demo");
    // Loopback: the estimate is at least what the pattern needs, and not absurd.
    assert!((100_000..10_000_000_000).contains(&hint.1), "{hint:?}");
}

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
