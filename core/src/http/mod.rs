//! The one TCP port: HTTP pages, metrics and the WebSocket signalling endpoint, over TLS when a
//! certificate is configured.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, Path, Query, State, WebSocketUpgrade};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get, put};
use axum::Router;
use serde::Deserialize;
use tokio::sync::{oneshot, watch};

use tokio_rustls::TlsAcceptor;

use crate::config::{ServerConfig, TlsConfig};
use crate::net::tcp::TcpAcceptor;
use crate::server::ServerShared;
use crate::signal::{whep, ws};
use crate::{Error, Result};

pub(crate) mod listen;
mod pages;

pub(crate) use listen::Remote;

/// Binds the HTTP port synchronously, so that "port in use" is an error of `Server::start`.
pub(crate) fn bind(config: &ServerConfig) -> Result<std::net::TcpListener> {
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = std::net::TcpListener::bind(addr).map_err(|source| Error::Bind {
        what: "HTTP",
        addr,
        source,
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Reads the certificate chain and key now, so that a bad file is an error of `Server::start`.
pub(crate) fn tls_config(tls: &TlsConfig) -> Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = CertificateDer::pem_file_iter(&tls.cert_pem)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::Tls(format!(
                "cannot read certificate chain {}: {e}",
                tls.cert_pem.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "{} holds no PEM certificate",
            tls.cert_pem.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_pem).map_err(|e| {
        Error::Tls(format!(
            "cannot read private key {}: {e}",
            tls.key_pem.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::Tls(format!(
                "certificate {} and key {} do not make a usable pair: {e}",
                tls.cert_pem.display(),
                tls.key_pem.display()
            ))
        })?;
    // HTTP/1.1 only: WebSocket upgrades (RFC 6455) need it, and pages gain nothing from h2 here.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

pub(crate) fn router(server: Arc<ServerShared>) -> Router {
    Router::new()
        .route("/", get(pages::index))
        .route("/stats.json", get(pages::stats))
        .route("/metrics", get(metrics))
        .route("/{stream}/webrtc", get(websocket))
        .route("/{stream}/embed.html", get(pages::embed))
        .route("/{stream}/whep", any(whep::endpoint))
        .route("/{stream}/whep/{id}", any(whep::resource))
        .route("/{stream}/media_info.json", get(whep::media_info))
        .route("/{stream}/viewers.json", get(pages::viewers))
        .route("/{stream}/sessions/{id}", put(whep::session_stats))
        .route(
            "/{stream}/sessions/{id}/request_tracks",
            put(whep::request_tracks),
        )
        .route("/{stream}/sessions/{id}/{*rest}", put(whep::session_stats))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            whep::cors,
        ))
        .with_state(server)
}

/// Serves HTTP (over TLS with `tls`) until `stop`; ICE-TCP connections reaching this port are
/// handed to `ice` when given (see `listen`). On `stop` the port is closed and every connection
/// is asked to finish its request in flight and close.
pub(crate) async fn serve(
    listener: std::net::TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    ice: Option<TcpAcceptor>,
    stop: oneshot::Receiver<()>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let (closing_tx, closing) = watch::channel(false);
    tokio::select! {
        _ = listen::accept_loop(listener, tls, ice, app, closing) => {}
        _ = stop => {}
    }
    closing_tx.send_replace(true);
    Ok(())
}

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
}

async fn websocket(
    State(server): State<Arc<ServerShared>>,
    Path(stream): Path<String>,
    Query(q): Query<WsQuery>,
    ConnectInfo(Remote(remote)): ConnectInfo<Remote>,
    upgrade: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return (
            StatusCode::BAD_REQUEST,
            "this URL is a WebSocket endpoint (Flussonic WebRTC playback); open it with a WebSocket client\n",
        )
            .into_response();
    };
    let cap = ws::hard_message_cap(server.config.limits.max_ws_message_bytes);
    // The socket stays open for the viewer's whole session but carries a few small messages:
    // tungstenite's default 128 KiB read buffer per connection would be most of a viewer's
    // memory. A message larger than the buffer still arrives (up to `cap`); what we queue to a
    // client that does not read is bounded.
    upgrade
        .read_buffer_size(ws::READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(ws::MAX_WRITE_BUFFER)
        .max_message_size(cap)
        .max_frame_size(cap)
        .on_upgrade(move |socket| ws::session(socket, server, stream, q.token, remote))
}

async fn metrics(State(server): State<Arc<ServerShared>>) -> Response {
    let streams = server.stream_snapshots();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        server.metrics.render_prometheus(
            &streams,
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks() as u64,
        ),
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found; try / for the list of streams, /STREAM/embed.html, /STREAM/webrtc or /STREAM/whep\n",
    )
        .into_response()
}

fn html(body: String) -> Response {
    Html(body).into_response()
}
