//! Pushed VP8: frames made by libvpx (the fixture, see tests/fixtures/make_vp8_fixture.py) reach
//! a native viewer byte for byte and in order, and Chromium plays them over both protocols with
//! the right picture.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rtcast::{Server, ServerConfig, Stream, StreamOptions, VideoCodec};
use rtcast_e2e::ivf::{fixture, read_ivf};
use rtcast_e2e::viewer::{run_viewer, ViewerOptions};
use rtcast_e2e::whep::http;
use rtcast_e2e::Chromium;

const FIXTURE: &str = "halves-320x240.ivf";

/// The fixture's frames, pushed in a loop at 30 fps until told to stop.
struct Pusher {
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Pusher {
    fn start(stream: Stream, frames: Vec<Vec<u8>>) -> Pusher {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            for i in 0u64.. {
                if stopped.try_recv().is_ok() {
                    break;
                }
                let frame = &frames[i as usize % frames.len()];
                let pts = Duration::from_millis(i * 1000 / 30);
                stream.push_vp8(frame, Some(pts)).unwrap();
                std::thread::sleep(Duration::from_millis(33));
            }
        });
        Pusher {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn vp8_server() -> (Server, Vec<Vec<u8>>, Pusher) {
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let stream = server
        .stream_with(
            "vp8",
            StreamOptions {
                video: VideoCodec::Vp8,
                ..StreamOptions::default()
            },
        )
        .unwrap();
    let frames = read_ivf(&fixture(FIXTURE)).unwrap();
    assert_eq!(frames.len(), 60);
    let pusher = Pusher::start(stream, frames.clone());
    (server, frames, pusher)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_viewer_receives_pushed_vp8_frames_byte_identical_and_in_order() {
    let (server, frames, _pusher) = vp8_server();
    let mut opts = ViewerOptions::new(server.ws_url("vp8"), Duration::from_secs(20));
    opts.record = true;
    opts.stop_after_frames = Some(90);
    let report = run_viewer(opts).await.unwrap();
    assert_eq!(report.video_frames, 90, "{report:?}");
    let received = &report.access_units;
    // The viewer starts on a keyframe (the GOP replay starts at the last one), then follows the
    // loop through the fixture frame by frame.
    let start = frames
        .iter()
        .position(|f| f[..] == received[0][..])
        .expect("the first received frame is not one of the pushed frames");
    assert_eq!(frames[start][0] & 1, 0, "the first frame is not a keyframe");
    for (i, got) in received.iter().enumerate() {
        let want = &frames[(start + i) % frames.len()];
        assert!(
            got[..] == want[..],
            "frame {i} differs: {} bytes received, {} pushed",
            got.len(),
            want.len()
        );
    }
    assert_eq!(report.video_packets_lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_pushed_vp8_over_websocket_and_whep_with_the_right_picture() {
    let (server, _frames, _pusher) = vp8_server();
    let info = http(server.http_addr(), "GET", "/vp8/media_info.json", &[], "")
        .await
        .unwrap();
    assert!(info.body.contains(r#""codec":"vp8""#), "{}", info.body);

    let chromium = Chromium::launch().await.unwrap();
    for url in [
        server.url("vp8"),
        format!("{}?proto=whep", server.url("vp8")),
    ] {
        let page = chromium.open(&url).await.unwrap();
        let report = page
            .wait_for_video(30, Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!((report.width, report.height), (320, 240), "{url}: {report}");
        // Top half red, bottom half blue (the moving white square stays in the middle band).
        let pixels = page.video_pixels(&[(0.5, 0.2), (0.5, 0.8)]).await.unwrap();
        let [top, bottom] = [pixels[0], pixels[1]];
        assert!(
            top[0] > 200 && top[1] < 60 && top[2] < 60,
            "{url}: top is not red: {pixels:?}"
        );
        assert!(
            bottom[0] < 60 && bottom[1] < 60 && bottom[2] > 200,
            "{url}: bottom is not blue: {pixels:?}"
        );
        page.close().await.unwrap();
    }
}
