//! Pages that need no build step and no CDN: the stream list and the embeddable player.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::server::ServerShared;

const EMBED_HTML: &str = include_str!("assets/embed.html");

pub(super) async fn index(State(server): State<Arc<ServerShared>>) -> Response {
    let mut items = String::new();
    for name in server.stream_names() {
        let n = escape(&name);
        items.push_str(&format!(
            "<li><a href=\"/{n}/embed.html\">{n}</a> <code>/{n}/webrtc</code></li>\n"
        ));
    }
    if items.is_empty() {
        items.push_str("<li>no stream yet</li>\n");
    }
    super::html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>rtcast</title></head>\
         <body style=\"font-family:sans-serif\"><h1>rtcast streams</h1><ul>\n{items}</ul>\
         <p><a href=\"/metrics\">metrics</a></p></body></html>\n"
    ))
}

pub(super) async fn embed(
    State(server): State<Arc<ServerShared>>,
    Path(stream): Path<String>,
) -> Response {
    if server.find_stream(&stream).is_none() {
        return (
            StatusCode::NOT_FOUND,
            format!("{}\n", server.stream_not_found(&stream)),
        )
            .into_response();
    }
    super::html(EMBED_HTML.replace("{{STREAM}}", &escape(&stream)))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
