//! Pages that need no build step and no CDN: the live dashboard (and the JSON it polls) and the
//! embeddable player.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::metrics::ViewerStats;
use crate::server::ServerShared;

const EMBED_HTML: &str = include_str!("assets/embed.html");
const DASHBOARD_HTML: &str = include_str!("assets/dashboard.html");

/// `GET /`: the live dashboard. A static page: everything it shows comes from `/stats.json`,
/// which it polls every second, so no stream name is ever put into its HTML here.
pub(super) async fn index() -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], Html(DASHBOARD_HTML)).into_response()
}

/// `GET /stats.json`: what the dashboard draws, read in one go. The server's counters, then per
/// stream (by name) its counters, the bytes and packets sent to its viewers, its time to first
/// frame (count, and mean in ms: `null` before a first viewer got a frame) and every connected
/// viewer's figures as the media loops last published them.
pub(super) async fn stats(State(server): State<Arc<ServerShared>>) -> Response {
    let streams = server.stream_snapshots();
    let mut viewers: BTreeMap<String, Vec<ViewerStats>> = BTreeMap::new();
    for v in server.metrics.viewer_stats(None) {
        viewers.entry(v.stream.clone()).or_default().push(v);
    }
    let time_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let list: Vec<serde_json::Value> = streams
        .iter()
        .map(|s| {
            let c = &s.counters;
            let ttff_count = c.ttff_count.load(Relaxed);
            let ttff_mean_ms = (ttff_count > 0)
                .then(|| c.ttff_sum_us.load(Relaxed) as f64 / ttff_count as f64 / 1000.0);
            serde_json::json!({
                "name": s.stats.name,
                "stats": s.stats,
                "egress": {
                    "packets_sent": c.packets_sent.load(Relaxed),
                    "bytes_sent": c.bytes_sent.load(Relaxed),
                    "nacks": c.nacks.load(Relaxed),
                    "plis": c.plis.load(Relaxed),
                },
                "ttff": { "count": ttff_count, "mean_ms": ttff_mean_ms },
                "viewers": viewers.remove(&s.stats.name).unwrap_or_default(),
            })
        })
        .collect();
    let body = serde_json::json!({
        "time_ms": time_ms,
        "server": server.metrics.snapshot(streams.len() as u64),
        "streams": list,
    });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// `GET /STREAM/viewers.json`: the stream's connected viewers and their figures.
pub(super) async fn viewers(
    State(server): State<Arc<ServerShared>>,
    Path(stream): Path<String>,
) -> Response {
    if server.find_stream(&stream).is_none() {
        return unknown_stream(&server, &stream);
    }
    let viewers = server.metrics.viewer_stats(Some(&stream));
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "stream": stream, "viewers": viewers }).to_string(),
    )
        .into_response()
}

pub(super) async fn embed(
    State(server): State<Arc<ServerShared>>,
    Path(stream): Path<String>,
) -> Response {
    if server.find_stream(&stream).is_none() {
        return unknown_stream(&server, &stream);
    }
    super::html(EMBED_HTML.replace("{{STREAM}}", &escape(&stream)))
}

/// 404 naming the streams there are.
fn unknown_stream(server: &ServerShared, stream: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("{}\n", server.stream_not_found(stream)),
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
