//! The harness itself, without rtcast: it must see a page that plays and fail on one that does not.

use std::time::{Duration, Instant};

use rtcast_e2e::{page_url, Chromium};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread")]
async fn canvas_capture_is_reported_as_playing_640x360() {
    let chromium = Chromium::launch().await.unwrap();
    let page = chromium
        .open(&page_url("selftest-canvas.html", ""))
        .await
        .unwrap();

    let report = page
        .wait_for_video(30, Duration::from_secs(20))
        .await
        .unwrap();

    assert!(report.frames_presented >= 30, "{report}");
    assert_eq!((report.width, report.height), (640, 360), "{report}");
    assert!(
        report.first_frame_ms > 0.0 && report.first_frame_ms < 10_000.0,
        "{report}"
    );
    assert!(
        page.console()
            .iter()
            .any(|line| line.contains("capturing the canvas")),
        "console: {:?}",
        page.console()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn video_that_never_plays_times_out_with_the_console_in_the_error() {
    let chromium = Chromium::launch().await.unwrap();
    let page = chromium
        .open(&page_url("selftest-no-video.html", ""))
        .await
        .unwrap();

    let timeout = Duration::from_secs(3);
    let started = Instant::now();
    let error = page.wait_for_video(1, timeout).await.unwrap_err();
    let waited = started.elapsed();

    assert!(
        waited >= timeout,
        "gave up early, after {waited:?}: {error}"
    );
    assert!(waited < timeout + Duration::from_secs(2), "took {waited:?}");
    let message = error.to_string();
    assert!(message.contains("did not present 1 frames"), "{message}");
    assert!(message.contains("0 frames presented"), "{message}");
    assert!(message.contains("this video has no source"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn eval_returns_values_and_turns_exceptions_into_errors() {
    let chromium = Chromium::launch().await.unwrap();
    let page = chromium
        .open(&page_url("selftest-no-video.html", ""))
        .await
        .unwrap();

    let value = page
        .eval("new Promise(resolve => setTimeout(() => resolve({answer: 6 * 7}), 10))")
        .await
        .unwrap();
    assert_eq!(value["answer"], 42);
    assert!(page.eval("undefined").await.unwrap().is_null());

    let error = page
        .eval("throw new TypeError('boom from the page')")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("TypeError: boom from the page"),
        "{error}"
    );
    let rejected = page
        .eval("Promise.reject(new Error('rejected in the page'))")
        .await
        .unwrap_err();
    assert!(
        rejected.to_string().contains("rejected in the page"),
        "{rejected}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_loopback_is_reachable() {
    let chromium = Chromium::launch().await.unwrap();
    let page = chromium
        .open(&page_url("selftest-no-video.html", ""))
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 1024];
        let _ = tcp.read(&mut request).await.unwrap();
        tcp.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
    });
    let fetch = |url: String| {
        format!("fetch('{url}', {{mode: 'no-cors'}}).then(() => 'reached', e => 'failed: ' + e.message)")
    };

    let remote = page
        .eval(&fetch("http://example.com/".into()))
        .await
        .unwrap();
    let loopback = page
        .eval(&fetch(format!("http://127.0.0.1:{port}/")))
        .await
        .unwrap();

    assert!(remote.as_str().unwrap().starts_with("failed"), "{remote}");
    assert_eq!(loopback, "reached");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_page_is_an_error_naming_it() {
    let chromium = Chromium::launch().await.unwrap();

    let error = chromium
        .open(&page_url("no-such-page.html", ""))
        .await
        .err()
        .expect("opening a missing file must fail");

    assert!(error.to_string().contains("no-such-page.html"), "{error}");
}
