//! A server you can watch: per-viewer figures (`Server::viewer_stats`, `/STREAM/viewers.json`)
//! agree with each other and leave with their viewers, and `/metrics` parses as Prometheus text
//! with per-stream labels that match what the viewers got.

use std::time::{Duration, Instant};

use rtcast::{Server, ServerConfig, Transport};
use rtcast_e2e::small_demo;
use rtcast_e2e::viewer::{run_viewer, ViewerOptions};
use rtcast_e2e::whep::http;

fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("/metrics is not Prometheus text: {e}\n{text}"))
}

/// The value of `metric` (with label `stream` = `stream`, when given).
fn value(s: &prometheus_parse::Scrape, metric: &str, stream: Option<&str>) -> f64 {
    let sample = s
        .samples
        .iter()
        .find(|x| x.metric == metric && stream.is_none_or(|n| x.labels.get("stream") == Some(n)))
        .unwrap_or_else(|| panic!("no {metric} for {stream:?}"));
    match &sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        prometheus_parse::Value::Histogram(buckets) => {
            buckets.last().map_or(0.0, |b| b.count) // the +Inf bucket: the count
        }
        other => panic!("{metric}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_figures_and_labelled_metrics_agree_and_leave_with_their_viewers() {
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let _obs = small_demo(server.stream("obs").unwrap());
    let _other = small_demo(server.stream("other").unwrap());
    let watch = |stream: &str| {
        let mut o = ViewerOptions::new(server.ws_url(stream), Duration::from_secs(12));
        o.stop_after_frames = Some(240);
        tokio::spawn(run_viewer(o))
    };
    let viewers = [watch("obs"), watch("obs"), watch("other")];

    // Figures are published about once a second; wait until each viewer has a bitrate and a
    // round-trip time (its receiver reports answer our sender reports).
    let deadline = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let s = server.viewer_stats();
        if s.len() == 3 && s.iter().all(|v| v.bitrate_bps > 0 && v.rtt_ms.is_some()) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "figures incomplete after 10 s: {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for v in &stats {
        assert_eq!(v.transport, Transport::Udp, "{v:?}");
        assert_eq!(v.protocol, rtcast::Protocol::WebSocket, "{v:?}");
        assert!(v.remote.ip().is_loopback(), "{v:?}");
        assert!(v.packets_sent > 0 && v.bytes_sent > v.packets_sent, "{v:?}");
        let rtt = v.rtt_ms.unwrap_or_default();
        assert!((0.0..500.0).contains(&rtt), "loopback RTT {rtt} ms: {v:?}");
        assert!((0.0..=1.0).contains(&v.fraction_lost), "{v:?}");
        assert!(v.connected_ms > 0, "{v:?}");
    }
    let obs: Vec<u64> = stats
        .iter()
        .filter(|v| v.stream == "obs")
        .map(|v| v.id)
        .collect();
    assert_eq!(obs.len(), 2, "{stats:#?}");
    let stream = server.stream("obs").unwrap();
    let mine: Vec<u64> = stream.viewer_stats().iter().map(|v| v.id).collect();
    assert_eq!(mine, obs);

    // viewers.json lists the same viewers with the same fields.
    let r = http(server.http_addr(), "GET", "/obs/viewers.json", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(json["stream"], "obs");
    let listed: Vec<u64> = json["viewers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, obs, "{json:#}");
    let first = &json["viewers"][0];
    // Every field is there (optional ones as null until known: estimate_bps of a viewer that
    // sent no estimate yet).
    for field in rtcast::surface::viewer_stats() {
        assert!(
            first.get(field).is_some(),
            "viewers.json lacks {field}: {first:#}"
        );
    }
    assert_eq!(first["transport"], "udp");
    let r = http(server.http_addr(), "GET", "/nope/viewers.json", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{r:?}");

    // /metrics, parsed: the server's figures and each stream's, labelled.
    let r = http(server.http_addr(), "GET", "/metrics", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let m = scrape(&r.body);
    assert_eq!(value(&m, "rtcast_viewers", None), 3.0);
    assert_eq!(value(&m, "rtcast_streams", None), 2.0);
    assert_eq!(value(&m, "rtcast_stream_viewers", Some("obs")), 2.0);
    assert_eq!(value(&m, "rtcast_stream_viewers", Some("other")), 1.0);
    let sent_obs = value(&m, "rtcast_stream_bytes_sent_total", Some("obs"));
    let sent_other = value(&m, "rtcast_stream_bytes_sent_total", Some("other"));
    assert!(sent_obs > 0.0 && sent_other > 0.0, "{}", r.body);
    assert!(
        value(&m, "rtcast_stream_packets_sent_total", Some("obs")) > 0.0,
        "{}",
        r.body
    );
    assert_eq!(
        value(&m, "rtcast_stream_time_to_first_frame_seconds", Some("obs")),
        2.0,
        "two viewers of obs got a first frame: {}",
        r.body
    );
    assert!(value(&m, "rtcast_stream_video_frames_total", Some("obs")) > 0.0);

    // Gone with their viewers.
    for v in viewers {
        v.await.unwrap().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.viewer_stats().is_empty() {
        assert!(
            Instant::now() < deadline,
            "figures of departed viewers kept: {:?}",
            server.viewer_stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
