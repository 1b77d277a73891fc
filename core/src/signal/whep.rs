//! WHEP playback (draft-ietf-wish-whep) at `/STREAM/whep`: the viewer POSTs its offer, the answer
//! comes back whole (our candidates inside: many clients do not trickle), the session lives at
//! its `Location` (PATCH trickle, DELETE). Also what Flussonic's player needs around it:
//! `media_info.json`, `X-Sid`, `PUT /STREAM/sessions/ID`. Every refusal is a status with a short
//! text saying why. CORS headers are added to every response by [`cors`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::distr::{Alphanumeric, SampleString};
use rtc::peer_connection::transport::RTCIceCandidateInit;
use tokio::sync::{mpsc, oneshot};

use crate::config::{AuthRequest, Protocol};
use crate::event::{LeaveReason, ViewerId};
use crate::http::Remote;
use crate::net::driver::{Control, NOTICE_QUEUE};
use crate::plane::Notice;
use crate::server::ServerShared;
use crate::Error;

const SDP: &str = "application/sdp";
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
/// Request headers a page may send (CORS preflight). Flussonic's player sends its own `X-Sid`
/// with the offer.
const ALLOW_HEADERS: &str = "Content-Type, Authorization, If-Match, X-Sid, Accept";
/// Response headers a page may read.
const EXPOSE_HEADERS: &str = "Location, ETag, Link, X-Sid, Accept-Patch";
const ALLOW_METHODS: &str = "GET, POST, PATCH, DELETE, PUT, OPTIONS";

/// One WHEP session, from its POST to its DELETE or the end of its media.
#[derive(Debug, Clone)]
pub(crate) struct WhepSession {
    pub viewer: ViewerId,
    pub stream: String,
    pub etag: String,
    /// The `a=ice-ufrag` of the offer: a PATCH with another one asks for an ICE restart.
    pub remote_ufrag: Option<String>,
}

/// Session id → session. Entries leave on DELETE or when the event loop closes the viewer.
pub(crate) type WhepSessions = Mutex<HashMap<String, WhepSession>>;

fn lock(server: &ServerShared) -> std::sync::MutexGuard<'_, HashMap<String, WhepSession>> {
    server.whep.lock().unwrap_or_else(|e| e.into_inner())
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut m = msg.into();
    tracing::debug!(status = status.as_u16(), "WHEP: {m}");
    m.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        m,
    )
        .into_response()
}

fn not_allowed(allow: &'static str) -> Response {
    let mut r = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed here; allowed: {allow}"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn content_type_is(headers: &HeaderMap, want: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
}

fn unknown_stream(server: &ServerShared, stream: &str) -> Response {
    text(StatusCode::NOT_FOUND, server.stream_not_found(stream))
}

/// A request body, read up to the signalling message limit (`Limits::max_ws_message_bytes`): a
/// larger one is refused with 413 as soon as the limit is passed, never buffered whole.
pub(crate) struct LimitedBody(Bytes);

impl FromRequest<Arc<ServerShared>> for LimitedBody {
    type Rejection = Response;

    async fn from_request(
        req: Request,
        server: &Arc<ServerShared>,
    ) -> std::result::Result<Self, Response> {
        let limit = server.config.limits.max_ws_message_bytes;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let over = |size: String| {
            text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body of {size} is over the limit of {limit} bytes"),
            )
        };
        if let Some(n) = declared.filter(|&n| n > limit as u64) {
            return Err(over(format!("{n} bytes")));
        }
        match axum::body::to_bytes(req.into_body(), limit).await {
            Ok(body) => Ok(LimitedBody(body)),
            // Either past the limit (chunked) or the client went away mid-body; the status
            // only matters in the first case.
            Err(e) => Err(over(format!("more than {limit} bytes ({e})"))),
        }
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct TokenQuery {
    token: Option<String>,
    /// Flussonic's track choice: `v2a1` (start on rendition v2 and keep it), `auto` (choose by
    /// bandwidth; the default).
    start_track: Option<String>,
}

/// The video rendition a Flussonic track list names (`v2a1` → 1), if it names one; `auto`, an
/// audio-only list or none: `None` (automatic).
pub(crate) fn video_track(tracks: &str) -> Option<usize> {
    let at = tracks.find('v')?;
    let digits: String = tracks
        .get(at + 1..)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let n: usize = digits.parse().ok()?;
    n.checked_sub(1)
}

/// `/STREAM/whep`: POST an offer.
pub(crate) async fn endpoint(
    State(server): State<Arc<ServerShared>>,
    Path(stream): Path<String>,
    Query(q): Query<TokenQuery>,
    ConnectInfo(Remote(remote)): ConnectInfo<Remote>,
    method: Method,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Response {
    if method == Method::POST {
        let rendition = q.start_track.as_deref().and_then(video_track);
        post(server, stream, remote, headers, q.token, rendition, body).await
    } else {
        not_allowed("POST, OPTIONS")
    }
}

/// `/STREAM/whep/ID`: PATCH (trickle) or DELETE (end) a session.
pub(crate) async fn resource(
    State(server): State<Arc<ServerShared>>,
    Path((stream, id)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Response {
    if method == Method::PATCH {
        patch(server, stream, id, headers, body).await
    } else if method == Method::DELETE {
        delete(server, stream, id).await
    } else {
        not_allowed("PATCH, DELETE, OPTIONS")
    }
}

async fn post(
    server: Arc<ServerShared>,
    stream_name: String,
    remote: SocketAddr,
    headers: HeaderMap,
    query_token: Option<String>,
    rendition: Option<usize>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let Some(stream) = server.find_stream(&stream_name) else {
        return unknown_stream(&server, &stream_name);
    };
    if !content_type_is(&headers, SDP) {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the offer must be sent as Content-Type: {SDP}"),
        );
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_owned())
        })
        // Flussonic's player can pass it as ?token= instead.
        .or(query_token);
    let auth = AuthRequest {
        stream: stream_name.clone(),
        token: token.clone(),
        remote,
        protocol: Protocol::Whep,
    };
    if !server.authorize(auth).await {
        return match token {
            None => {
                let mut r = text(
                    StatusCode::UNAUTHORIZED,
                    format!(
                        "stream '{stream_name}' needs a token: send Authorization: Bearer <token>"
                    ),
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
            Some(_) => text(
                StatusCode::FORBIDDEN,
                format!("access to stream '{stream_name}' refused"),
            ),
        };
    }
    let offer_sdp = match std::str::from_utf8(&body) {
        Ok(s) if s.trim_start().starts_with("v=") => s.to_owned(),
        _ => return text(StatusCode::BAD_REQUEST, "the body is not an SDP offer"),
    };
    let remote_ufrag = offer_sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .map(str::to_owned);

    let (notice_tx, notices) = mpsc::channel(NOTICE_QUEUE);
    let (reply_tx, reply_rx) = oneshot::channel();
    let cmd = Control::NewViewer {
        stream: stream.id,
        protocol: Protocol::Whep,
        offer_sdp: Some(offer_sdp),
        rendition,
        remote,
        started,
        notices: notice_tx,
        reply: reply_tx,
    };
    let answer = match server.control(cmd).await {
        Ok(()) => reply_rx.await.unwrap_or(Err(Error::ServerStopped)),
        Err(e) => Err(e),
    };
    let answer = match answer {
        Ok(a) => a,
        Err(Error::InvalidData(m)) => return text(StatusCode::BAD_REQUEST, m),
        Err(e @ (Error::LimitReached(_) | Error::ServerStopped | Error::StreamClosed(_))) => {
            return text(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
        Err(e) => {
            tracing::warn!("cannot create a WHEP session for a viewer of '{stream_name}': {e}");
            return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
    };

    let id = Alphanumeric.sample_string(&mut rand::rng(), 32);
    let etag = format!("\"{}\"", Alphanumeric.sample_string(&mut rand::rng(), 16));
    lock(&server).insert(
        id.clone(),
        WhepSession {
            viewer: answer.id,
            stream: stream_name.clone(),
            etag: etag.clone(),
            remote_ufrag,
        },
    );
    // Reaps the entry when the loop closes the viewer (consent lost, timeout, DELETE, stop):
    // Flussonic's player never sends DELETE.
    tokio::spawn(reap(
        Arc::downgrade(&server),
        id.clone(),
        answer.id,
        notices,
    ));

    let mut r = (StatusCode::CREATED, answer.sdp).into_response();
    let h = r.headers_mut();
    // Link may repeat; the others replace what the body set (Content-Type).
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            if name == "link" {
                h.append(name, v);
            } else {
                h.insert(name, v);
            }
        }
    };
    put("content-type", SDP.to_owned());
    put("location", format!("/{stream_name}/whep/{id}"));
    put("etag", etag);
    put("accept-patch", SDPFRAG.to_owned());
    put("x-sid", id);
    let ice_servers = server
        .config
        .ice_servers_for(std::time::SystemTime::now(), answer.id);
    for s in &ice_servers {
        for url in &s.urls {
            let mut link = format!("<{url}>; rel=\"ice-server\"");
            if let Some(u) = &s.username {
                link.push_str(&format!("; username=\"{}\"", u.replace('"', "")));
            }
            if let Some(c) = &s.credential {
                link.push_str(&format!(
                    "; credential=\"{}\"; credential-type=\"password\"",
                    c.replace('"', "")
                ));
            }
            put("link", link);
        }
    }
    r
}

async fn reap(
    server: Weak<ServerShared>,
    id: String,
    viewer: ViewerId,
    mut notices: mpsc::Receiver<Notice>,
) {
    // Connected notices are skipped; a Closed one (or the loop gone) ends the session.
    while let Some(Notice::Connected) = notices.recv().await {}
    if let Some(server) = server.upgrade() {
        let mut sessions = lock(&server);
        if sessions.get(&id).is_some_and(|s| s.viewer == viewer) {
            sessions.remove(&id);
        }
    }
}

fn find_session(server: &ServerShared, stream: &str, id: &str) -> Option<WhepSession> {
    lock(server).get(id).filter(|s| s.stream == stream).cloned()
}

fn unknown_session(stream: &str) -> Response {
    text(
        StatusCode::NOT_FOUND,
        format!("no such WHEP session of stream '{stream}' (it ended or never existed)"),
    )
}

async fn patch(
    server: Arc<ServerShared>,
    stream: String,
    id: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(session) = find_session(&server, &stream, &id) else {
        return unknown_session(&stream);
    };
    if !content_type_is(&headers, SDPFRAG) {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("trickle candidates must be sent as Content-Type: {SDPFRAG}"),
        );
    }
    if let Some(m) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        if m.trim() != "*" && m.trim() != session.etag {
            return text(
                StatusCode::PRECONDITION_FAILED,
                format!(
                    "If-Match {m} does not match the session's ETag {}",
                    session.etag
                ),
            );
        }
    }
    let Ok(frag) = std::str::from_utf8(&body) else {
        return text(StatusCode::BAD_REQUEST, "the body is not an SDP fragment");
    };
    let frag = TrickleFragment::parse(frag);
    if let (Some(new), Some(old)) = (frag.ufrag, session.remote_ufrag.as_deref()) {
        if new != old {
            return text(
                StatusCode::NOT_IMPLEMENTED,
                "ICE restart is not supported; DELETE this session and POST a new offer",
            );
        }
    }
    for candidate in frag.candidates {
        let cmd = Control::RemoteCandidate {
            viewer: session.viewer,
            candidate,
        };
        if server.control(cmd).await.is_err() {
            return text(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping");
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// What rtcast reads of a PATCH body (`application/trickle-ice-sdpfrag`, RFC 8840): the first
/// `a=ice-ufrag` (another one than the offer's asks for an ICE restart), and the candidates, each
/// with the `a=mid` above it (`0` before any).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct TrickleFragment<'a> {
    pub ufrag: Option<&'a str>,
    pub candidates: Vec<RTCIceCandidateInit>,
}

impl<'a> TrickleFragment<'a> {
    pub(crate) fn parse(frag: &'a str) -> Self {
        let ufrag = frag
            .lines()
            .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
            .map(str::trim);
        let mut mid = Some("0".to_owned());
        let mut candidates = Vec::new();
        for line in frag.lines().map(str::trim) {
            if let Some(m) = line.strip_prefix("a=mid:") {
                mid = Some(m.to_owned());
            } else if let Some(c) = line.strip_prefix("a=candidate:") {
                candidates.push(RTCIceCandidateInit {
                    candidate: format!("candidate:{c}"),
                    sdp_mid: mid.clone(),
                    sdp_mline_index: Some(0),
                    ..Default::default()
                });
            }
        }
        Self { ufrag, candidates }
    }
}

async fn delete(server: Arc<ServerShared>, stream: String, id: String) -> Response {
    if find_session(&server, &stream, &id).is_none() {
        return unknown_session(&stream);
    }
    let Some(session) = lock(&server).remove(&id) else {
        return unknown_session(&stream);
    };
    let cmd = Control::CloseViewer {
        viewer: session.viewer,
        reason: LeaveReason::Closed,
    };
    let _ = server.control(cmd).await;
    text(StatusCode::OK, "session closed")
}

/// `GET /STREAM/media_info.json`: the tracks, as Flussonic's player expects before it offers.
pub(crate) async fn media_info(
    State(server): State<Arc<ServerShared>>,
    Path(stream): Path<String>,
) -> Response {
    let Some(s) = server.find_stream(&stream) else {
        return unknown_stream(&server, &stream);
    };
    let mut tracks: Vec<serde_json::Value> = s
        .ladder()
        .iter()
        .enumerate()
        .map(|(i, bitrate)| {
            let mut t = serde_json::json!({
                "content": "video",
                "codec": s.video_codec.name(),
                "track_id": crate::stream::Rendition::track_name(i),
                "bitrate": bitrate / 1000,
            });
            // The size only where the ladder gives one (a stream of one takes any size).
            if let (Some(r), Some(t)) = (s.renditions.get(i), t.as_object_mut()) {
                t.insert("width".into(), r.width.into());
                t.insert("height".into(), r.height.into());
            }
            t
        })
        .collect();
    if s.audio_ssrc.is_some() {
        tracks.push(serde_json::json!({
            "content": "audio", "codec": "opus", "track_id": "a1", "sample_rate": 48000, "channels": 2,
        }));
    }
    let body = serde_json::json!({ "name": stream, "tracks": tracks });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `PUT /STREAM/sessions/ID[/...]`: statistics from Flussonic's player, accepted and dropped.
pub(crate) async fn session_stats() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

#[derive(serde::Deserialize)]
pub(crate) struct TrackRequest {
    tracks: Vec<String>,
}

/// `PUT /STREAM/sessions/ID/request_tracks` with `{"tracks":["v2","a1"]}`: Flussonic's player
/// asks for a rendition (an empty list, or no video track in it: automatic). The viewer moves at
/// that rendition's next keyframe. 404 for an unknown session, 400 for a body that is not such a
/// list or names a rendition the stream does not have.
pub(crate) async fn request_tracks(
    State(server): State<Arc<ServerShared>>,
    Path((stream, id)): Path<(String, String)>,
    LimitedBody(body): LimitedBody,
) -> Response {
    let Some(session) = find_session(&server, &stream, &id) else {
        return unknown_session(&stream);
    };
    let request: TrackRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"tracks\":[\"v1\",\"a1\"]}}: {e}"),
            )
        }
    };
    let count = server
        .find_stream(&stream)
        .map_or(1, |s| s.rendition_count());
    let rendition = request.tracks.iter().find_map(|t| video_track(t));
    if let Some(r) = rendition.filter(|&r| r >= count) {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "stream '{stream}' has no track v{} (its video tracks are v1 to v{count})",
                r + 1
            ),
        );
    }
    let cmd = Control::RequestRendition {
        viewer: session.viewer,
        rendition,
    };
    match server.control(cmd).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// CORS on every response, and the answer to every preflight (`OPTIONS`).
pub(crate) async fn cors(
    State(server): State<Arc<ServerShared>>,
    req: Request,
    next: Next,
) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let private_network = req
        .headers()
        .get("access-control-request-private-network")
        .is_some();
    let preflight = req.method() == Method::OPTIONS;
    let whep = req.uri().path().ends_with("/whep");
    let mut r = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = r.headers_mut();
    let origins = &server.config.cors_origins;
    let allow = if origins.iter().any(|o| o == "*") {
        Some("*".to_owned())
    } else {
        origin.filter(|o| origins.iter().any(|x| x == o))
    };
    if let Some(a) = allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
        if a != "*" {
            h.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, a);
    }
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    if preflight {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        if private_network {
            h.insert(
                "access-control-allow-private-network",
                HeaderValue::from_static("true"),
            );
        }
        if whep {
            h.insert("accept-post", HeaderValue::from_static(SDP));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::TrickleFragment;

    #[test]
    fn trickle_fragment_gives_each_candidate_the_mid_above_it() {
        let frag = concat!(
            "a=ice-ufrag: abcd \r\na=ice-pwd:x\r\n",
            "a=candidate:1 1 udp 1 10.0.0.1 9 typ host\r\n",
            "a=mid:1\r\na=candidate:2 1 udp 1 10.0.0.2 9 typ host\r\na=end-of-candidates\r\n",
        );
        let f = TrickleFragment::parse(frag);
        assert_eq!(f.ufrag, Some("abcd"));
        let got: Vec<_> = f
            .candidates
            .iter()
            .map(|c| (c.candidate.as_str(), c.sdp_mid.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("candidate:1 1 udp 1 10.0.0.1 9 typ host", Some("0")),
                ("candidate:2 1 udp 1 10.0.0.2 9 typ host", Some("1")),
            ]
        );
        assert_eq!(TrickleFragment::parse(""), TrickleFragment::default());
    }
}
