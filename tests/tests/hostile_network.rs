//! Viewers behind a firewall that blocks UDP: Chromium and the server in a network namespace the
//! test makes (nothing but its own loopback), every UDP packet dropped by nftables. The seed page
//! and `embed.html` play the 1280x720 demo over ICE-TCP, and Chromium's `getStats()` says the
//! selected candidate pair is TCP. Skipped, saying why, where namespaces cannot be made.

use std::time::Duration;

use rtcast::demo::{DemoOptions, DemoSource};
use rtcast::{Server, ServerConfig};
use rtcast_e2e::netns::Netns;
use rtcast_e2e::{page_url, Chromium, Page};

const PLAY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `body` in a new namespace whose UDP is dropped; `None` (skipped) when no namespace can be
/// made here.
fn without_udp<F: std::future::Future<Output = ()>>(
    tag: &str,
    body: impl FnOnce() -> F + Send,
) -> Option<()> {
    let ns = match Netns::create(tag) {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return None;
        }
    };
    ns.drop_udp().unwrap();
    ns.enter(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(body());
    });
    Some(())
}

async fn assert_plays_over_tcp(page: &Page, what: &str) {
    let report = page.wait_for_video(30, PLAY_TIMEOUT).await.unwrap();
    assert!(report.frames_presented >= 30, "{what}: {report:?}");
    assert_eq!(
        (report.width, report.height),
        (1280, 720),
        "{what}: {report:?}"
    );
    let pair = page.selected_candidate_pair().await.unwrap();
    println!("{what}: selected pair {pair}");
    assert_eq!(pair["local"]["protocol"], "tcp", "{what}: {pair}");
    assert_eq!(pair["remote"]["protocol"], "tcp", "{what}: {pair}");
    assert_eq!(pair["remote"]["address"], "127.0.0.1", "{what}: {pair}");
}

#[test]
fn chromium_plays_the_seed_page_and_embed_html_over_ice_tcp_when_udp_is_dropped() {
    without_udp("tcp", || async {
        let server = Server::start(ServerConfig::loopback()).unwrap();
        let stream = server.stream("demo").unwrap();
        let _source = DemoSource::start(stream, DemoOptions::default());
        let chromium = Chromium::launch().await.unwrap();

        let seed = page_url(
            "flussonic-ws-client.html",
            &format!("src={}", server.ws_url("demo")),
        );
        let page = chromium.open(&seed).await.unwrap();
        assert_plays_over_tcp(&page, "seed page").await;
        page.close().await.unwrap();

        let page = chromium.open(&server.url("demo")).await.unwrap();
        assert_plays_over_tcp(&page, "embed.html").await;
        let report = page.wait_for_video(1, PLAY_TIMEOUT).await.unwrap();
        page.time_to_first_frame(&report).await;
    });
}

#[test]
fn a_viewer_that_cannot_reach_any_candidate_is_told_what_was_tried() {
    // UDP dropped and TCP left out of the offer: nothing can connect.
    without_udp("none", || async {
        let mut config = ServerConfig::loopback();
        config.candidates = "udp".parse().unwrap();
        config.limits.connect_timeout = Duration::from_secs(3);
        let server = Server::start(config).unwrap();
        let stream = server.stream("demo").unwrap();
        let _source = rtcast_e2e::small_demo(stream);
        let mut opts =
            rtcast_e2e::viewer::ViewerOptions::new(server.ws_url("demo"), Duration::from_secs(10));
        opts.stop_after_frames = Some(1);
        let report = rtcast_e2e::viewer::run_viewer(opts).await.unwrap();
        assert!(!report.connected);
        let (code, _) = report.close.clone().expect("a close frame");
        assert_eq!(code, 4408, "{report:?}");
        let error = report.errors.first().expect("an error message");
        let text = error.to_string();
        assert!(
            text.contains("no ICE connectivity check")
                && text.contains(&format!("UDP {}", server.udp_addrs()[0]))
                && text.contains("TURN"),
            "{text}"
        );
    });
}
