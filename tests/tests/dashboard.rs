//! The dashboard at `GET /`, in headless Chromium: two streams fed by the demo source and native
//! viewers joining while the page is open. The page lists both streams with their viewer counts
//! and viewer tables, its figures move from one second to the next, and it throws nothing. Also
//! the shape of `/stats.json`, which the page polls.
//!
//! `RTCAST_SCREENSHOT=docs/dashboard.png` (relative to the repository) also writes a 1280x800
//! screenshot of the page, taken after a minute and a half of plots.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rtcast::{Server, ServerConfig};
use rtcast_e2e::viewer::{run_viewer, ViewerOptions};
use rtcast_e2e::whep::http;
use rtcast_e2e::{small_demo, Chromium, Page};
use serde_json::Value;

/// What the page shows, read from its DOM.
const READ_PAGE_JS: &str = r#"(() => ({
  status: document.getElementById('status').textContent,
  viewers: document.getElementById('s-viewers').textContent,
  empty: !document.getElementById('empty').hidden,
  streams: [...document.querySelectorAll('section.stream')].map((s) => ({
    name: s.querySelector('h2').textContent,
    player: s.querySelector('a.play').getAttribute('href'),
    urls: [...s.querySelectorAll('.head code')].map((c) => c.textContent),
    viewers: s.querySelector('.plot.viewers .value').textContent,
    bitrate: s.querySelector('.plot.bps .value').textContent,
    ttff: s.querySelector('.plot.ttff .value').textContent,
    sent: s.querySelector('.sent').textContent,
    points: Number(s.querySelector('.plot.bps path:last-child').dataset.points || 0),
    no_viewer: !s.querySelector('.none').hidden,
    rows: [...s.querySelectorAll('tbody tr')].map((tr) => [...tr.cells].map((td) => td.textContent)),
  })),
}))()"#;

async fn read(page: &Page) -> Value {
    page.eval(READ_PAGE_JS).await.unwrap()
}

/// Reads the page until `ok` holds, for at most `timeout`.
async fn wait_for(
    page: &Page,
    timeout: Duration,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let shown = read(page).await;
        if ok(&shown) {
            return shown;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard did not show {what} within {timeout:?}: {shown:#}\nconsole: {:#?}",
            page.console()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn stream<'a>(shown: &'a Value, name: &str) -> &'a Value {
    shown["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or(&Value::Null)
}

async fn stats_json(server: &Server) -> Value {
    let r = http(server.http_addr(), "GET", "/stats.json", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    serde_json::from_str(&r.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_each_stream_its_viewers_and_figures_that_move() {
    let screenshot = std::env::var_os("RTCAST_SCREENSHOT").map(|p| {
        // Relative to the repository, not to tests/ where cargo runs the test.
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
    });
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let _studio = small_demo(server.stream("studio").unwrap());
    let _lobby = small_demo(server.stream("lobby").unwrap());

    // /stats.json with no viewer yet: the server, then each stream by name.
    let json = stats_json(&server).await;
    assert!(json["time_ms"].as_u64().unwrap() > 0, "{json:#}");
    assert_eq!(json["server"]["streams"], 2, "{json:#}");
    assert_eq!(json["server"]["viewers"], 0, "{json:#}");
    let names: Vec<&str> = json["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lobby", "studio"], "{json:#}");
    let lobby = &json["streams"][0];
    assert_eq!(lobby["stats"]["name"], "lobby");
    assert_eq!(lobby["stats"]["viewers"], 0);
    assert_eq!(lobby["viewers"], serde_json::json!([]));
    assert_eq!(lobby["ttff"]["count"], 0);
    assert!(lobby["ttff"]["mean_ms"].is_null(), "{json:#}");
    assert!(lobby["egress"]["bytes_sent"].is_u64(), "{json:#}");

    // The page with no viewer: both streams, "no viewer connected", no error.
    let chromium = Chromium::launch().await.unwrap();
    let url = format!("http://{}/", server.http_addr());
    let page = chromium.open(&url).await.unwrap();
    page.set_viewport(1280, 800).await.unwrap();
    let shown = wait_for(&page, Duration::from_secs(10), "two streams", |s| {
        s["streams"].as_array().map(Vec::len) == Some(2)
            && s["streams"][0]["no_viewer"] == true
            && s["streams"][1]["no_viewer"] == true
    })
    .await;
    assert_eq!(shown["streams"][0]["name"], "lobby");
    assert_eq!(shown["streams"][1]["name"], "studio");
    assert_eq!(stream(&shown, "studio")["player"], "/studio/embed.html");
    let urls = &stream(&shown, "studio")["urls"];
    let host = server.http_addr();
    assert_eq!(
        urls,
        &serde_json::json!([
            format!("ws://{host}/studio/webrtc"),
            format!("http://{host}/studio/whep")
        ]),
        "the page's URLs are the server's: {}",
        server.ws_url("studio")
    );

    // Viewers join one after the other while the page is open (further apart for a screenshot,
    // so that the viewer plots show the steps).
    let gap = if screenshot.is_some() { 8 } else { 1 };
    let mut viewers = Vec::new();
    for name in ["studio", "lobby", "studio"] {
        let o = ViewerOptions::new(server.ws_url(name), Duration::from_secs(150));
        viewers.push(tokio::spawn(run_viewer(o)));
        tokio::time::sleep(Duration::from_secs(gap)).await;
    }
    let first = wait_for(&page, Duration::from_secs(20), "2 + 1 viewers", |s| {
        let (studio, lobby) = (stream(s, "studio"), stream(s, "lobby"));
        s["viewers"] == "3"
            && studio["viewers"] == "2"
            && lobby["viewers"] == "1"
            && studio["rows"].as_array().map(Vec::len) == Some(2)
            && lobby["rows"].as_array().map(Vec::len) == Some(1)
            && studio["ttff"] != "–"
            && lobby["ttff"] != "–"
    })
    .await;
    let row = &stream(&first, "lobby")["rows"][0];
    assert_eq!(row[1], "websocket", "protocol: {row}");
    assert_eq!(row[2], "udp", "transport: {row}");
    assert!(row[3].as_str().unwrap().starts_with("127.0.0.1:"), "{row}");

    // Figures move: two reads a couple of seconds apart.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let second = read(&page).await;
    for name in ["studio", "lobby"] {
        let (a, b) = (stream(&first, name), stream(&second, name));
        assert_ne!(a["sent"], b["sent"], "{name}: the bytes sent did not move");
        assert!(
            b["points"].as_u64() > a["points"].as_u64(),
            "{name}: the bitrate plot did not grow: {a} then {b}"
        );
        assert!(
            b["bitrate"].as_str().unwrap().ends_with("b/s"),
            "{name}: no bitrate shown: {b}"
        );
        assert_ne!(
            a["rows"][0][4], b["rows"][0][4],
            "{name}: connected-for did not move"
        );
        println!(
            "{name}: {} viewers, {}, mean TTFF {}; {}",
            b["viewers"], b["bitrate"], b["ttff"], b["sent"]
        );
    }
    assert!(
        second["status"].as_str().unwrap().starts_with("live"),
        "{second:#}"
    );

    // /stats.json with the viewers: each in its stream's list, TTFF counted for each.
    let json = stats_json(&server).await;
    assert_eq!(json["server"]["viewers"], 3, "{json:#}");
    for (i, (name, n)) in [("lobby", 1), ("studio", 2)].into_iter().enumerate() {
        let s = &json["streams"][i];
        assert_eq!(s["name"], name, "{json:#}");
        assert_eq!(s["stats"]["viewers"], n, "{json:#}");
        let listed = s["viewers"].as_array().unwrap();
        assert_eq!(listed.len(), n, "{json:#}");
        assert!(listed
            .iter()
            .all(|v| v["stream"] == name && v["bytes_sent"].as_u64() > Some(0)));
        assert_eq!(s["ttff"]["count"], n, "{json:#}");
        let mean = s["ttff"]["mean_ms"].as_f64().unwrap();
        assert!(mean > 0.0 && mean < 5000.0, "{name}: mean TTFF {mean} ms");
        assert!(s["egress"]["bytes_sent"].as_u64() > s["egress"]["packets_sent"].as_u64());
    }

    if let Some(path) = screenshot {
        // Over a minute and a half of history in the plots.
        tokio::time::sleep(Duration::from_secs(70)).await;
        page.screenshot(&path).await.unwrap();
        println!("screenshot: {}", path.display());
    }
    let problems: Vec<String> = page
        .console()
        .into_iter()
        .filter(|l| l.contains("exception") || l.contains("error"))
        .collect();
    assert!(problems.is_empty(), "the page reported: {problems:#?}");
    for v in viewers {
        v.abort();
    }
}
