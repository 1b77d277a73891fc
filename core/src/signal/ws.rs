//! Flussonic WebSocket playback at `/STREAM/webrtc`: the server speaks first with its offer, the
//! browser answers, both trickle candidates. Every refusal is a JSON error followed by a 4xxx
//! close; nothing a viewer sends can disturb another viewer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::sync::{mpsc, oneshot};

use crate::config::{AuthRequest, Protocol};
use crate::event::{LeaveReason, ViewerId};
use crate::net::driver::{Control, NOTICE_QUEUE};
use crate::plane::{Notice, MAX_REMOTE_CANDIDATES};
use crate::server::ServerShared;
use crate::signal::message::{self, ClientMessage};
use crate::Error;

/// Close codes of the protocol.
pub mod close_code {
    /// Bad message (malformed, unknown type, too big, bad SDP).
    pub const BAD_MESSAGE: u16 = 4400;
    /// Refused by the authorization hook.
    pub const REFUSED: u16 = 4403;
    /// Unknown stream.
    pub const NOT_FOUND: u16 = 4404;
    /// Media did not connect in time.
    pub const TIMEOUT: u16 = 4408;
    /// Server-side failure.
    pub const INTERNAL: u16 = 4500;
    /// Limit reached or server stopping.
    pub const UNAVAILABLE: u16 = 4503;
}

/// Read buffer of a viewer's WebSocket (signalling messages are ~0.1-4 KB).
pub(crate) const READ_BUFFER: usize = 4096;
/// Most bytes queued to a viewer's WebSocket that it has not read: an offer, a few candidates
/// and an error fit many times over. Past it the session ends.
pub(crate) const MAX_WRITE_BUFFER: usize = 256 * 1024;

/// Largest message the WebSocket layer accepts at all; between the configured limit and this,
/// the viewer gets a JSON error, beyond it the socket is simply dropped (memory stays bounded).
pub(crate) fn hard_message_cap(limit: usize) -> usize {
    limit.saturating_mul(16)
}

/// Closes a viewer's session in the event loop when its signalling task ends, however it ends.
struct SessionGuard {
    id: ViewerId,
    control: mpsc::Sender<Control>,
    reason: LeaveReason,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let cmd = Control::CloseViewer {
            viewer: self.id,
            reason: self.reason,
        };
        if let Err(mpsc::error::TrySendError::Full(cmd)) = self.control.try_send(cmd) {
            // The queue is full only under a burst of control traffic: wait for room in a task.
            // Without a runtime (the server is being torn down) the loop closes everyone anyway.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let control = self.control.clone();
                rt.spawn(async move {
                    let _ = control.send(cmd).await;
                });
            }
        }
    }
}

async fn refuse(socket: &mut WebSocket, code: u16, close: u16, text: &str) {
    tracing::debug!(code, "refusing WebSocket viewer: {text}");
    let _ = socket
        .send(Message::Text(message::error(code, text).into()))
        .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close,
            reason: truncate_reason(text).into(),
        })))
        .await;
}

/// Close reasons are limited to 123 bytes.
fn truncate_reason(text: &str) -> String {
    let mut end = text.len().min(120);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

/// Runs one viewer's WebSocket session to its end.
pub(crate) async fn session(
    mut socket: WebSocket,
    server: Arc<ServerShared>,
    stream_name: String,
    token: Option<String>,
    remote: SocketAddr,
) {
    let started = Instant::now();
    let Some(stream) = server.find_stream(&stream_name) else {
        let text = server.stream_not_found(&stream_name);
        return refuse(&mut socket, 404, close_code::NOT_FOUND, &text).await;
    };
    let auth = AuthRequest {
        stream: stream_name.clone(),
        token,
        remote,
        protocol: Protocol::WebSocket,
    };
    if !server.authorize(auth).await {
        let text = format!("access to stream '{stream_name}' refused");
        return refuse(&mut socket, 403, close_code::REFUSED, &text).await;
    }

    let (notice_tx, mut notices) = mpsc::channel(NOTICE_QUEUE);
    let (reply_tx, reply_rx) = oneshot::channel();
    let cmd = Control::NewViewer {
        stream: stream.id,
        protocol: Protocol::WebSocket,
        remote,
        started,
        offer_sdp: None,
        rendition: None,
        notices: notice_tx,
        reply: reply_tx,
    };
    let offer = match server.control(cmd).await.map(|_| reply_rx) {
        Ok(rx) => rx.await.unwrap_or(Err(Error::ServerStopped)),
        Err(e) => Err(e),
    };
    let offer = match offer {
        Ok(o) => o,
        Err(e @ (Error::LimitReached(_) | Error::ServerStopped | Error::StreamClosed(_))) => {
            return refuse(&mut socket, 503, close_code::UNAVAILABLE, &e.to_string()).await;
        }
        Err(e) => {
            tracing::warn!("cannot create a session for a viewer of '{stream_name}': {e}");
            return refuse(&mut socket, 500, close_code::INTERNAL, &e.to_string()).await;
        }
    };
    let mut guard = SessionGuard {
        id: offer.id,
        control: server.control_sender(offer.id),
        reason: LeaveReason::Closed,
    };
    let ice_servers = server
        .config
        .ice_servers_for(std::time::SystemTime::now(), offer.id);
    if socket
        .send(Message::Text(
            message::offer(&offer.sdp, &ice_servers).into(),
        ))
        .await
        .is_err()
    {
        return;
    }
    for c in &offer.candidates {
        if socket
            .send(Message::Text(message::candidate(c).into()))
            .await
            .is_err()
        {
            return;
        }
    }

    let limit = server.config.limits.max_ws_message_bytes;
    let mut candidates = 0;
    let mut not_connected = None;
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let text = match msg {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Binary(_))) => {
                        let text = "binary messages are not part of the protocol; send JSON text";
                        return refuse(&mut socket, 400, close_code::BAD_MESSAGE, text).await;
                    }
                    Some(Ok(_)) => continue, // ping/pong
                };
                if text.len() > limit {
                    let text = format!("message of {} bytes is over the limit of {limit} bytes", text.len());
                    return refuse(&mut socket, 413, close_code::BAD_MESSAGE, &text).await;
                }
                match message::parse_client_message(&text) {
                    Err(r) => return refuse(&mut socket, r.code, close_code::BAD_MESSAGE, &r.message).await,
                    Ok(ClientMessage::Answer(sdp)) => {
                        let (tx, rx) = oneshot::channel();
                        let res = match server.control(Control::Answer { viewer: offer.id, sdp, reply: tx }).await {
                            Ok(()) => rx.await.unwrap_or(Err(Error::ServerStopped)),
                            Err(e) => Err(e),
                        };
                        if let Err(e) = res {
                            return refuse(&mut socket, 400, close_code::BAD_MESSAGE, &e.to_string()).await;
                        }
                    }
                    Ok(ClientMessage::Candidate(Some(candidate))) => {
                        candidates += 1;
                        if candidates > MAX_REMOTE_CANDIDATES {
                            let text = format!("more than {MAX_REMOTE_CANDIDATES} candidates");
                            return refuse(&mut socket, 400, close_code::BAD_MESSAGE, &text).await;
                        }
                        let _ = server.control(Control::RemoteCandidate { viewer: offer.id, candidate }).await;
                    }
                    Ok(ClientMessage::Candidate(None)) => {}
                }
            }
            notice = notices.recv() => match notice {
                Some(Notice::Connected) => {}
                Some(Notice::NotConnected(why)) => not_connected = Some(why),
                Some(Notice::Closed(LeaveReason::Timeout)) => {
                    guard.reason = LeaveReason::Timeout;
                    let text = not_connected.take().unwrap_or_else(|| format!(
                        "media did not connect within {:?}",
                        server.config.limits.connect_timeout
                    ));
                    return refuse(&mut socket, 408, close_code::TIMEOUT, &text).await;
                }
                Some(Notice::Closed(reason)) => {
                    guard.reason = reason;
                    let code = if reason == LeaveReason::Shutdown { 1001 } else { 1000 };
                    let _ = socket.send(Message::Close(Some(CloseFrame {
                        code,
                        reason: reason.name().into(),
                    }))).await;
                    return;
                }
                None => return,
            }
        }
    }
}
