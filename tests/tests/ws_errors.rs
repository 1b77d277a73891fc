//! Every error of the WebSocket protocol (DESIGN §2.1): the server sends a JSON error with an
//! HTTP-like code, closes with the matching 4xxx code, and a second viewer of the same stream
//! keeps receiving video throughout.

use std::sync::Arc;
use std::time::Duration;

use rtcast::demo::DemoSource;
use rtcast::{Server, ServerConfig};
use rtcast_e2e::small_demo;
use rtcast_e2e::witness::{misbehave, Refused, Witness};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

struct Setup {
    server: Server,
    _source: DemoSource,
    witness: Witness,
}

async fn setup(config: ServerConfig) -> Setup {
    let server = Server::start(config).unwrap();
    let stream = server.stream("live").unwrap();
    let source = small_demo(stream);
    let witness = Witness::start(format!("{}?token=good", server.ws_url("live"))).await;
    Setup {
        server,
        _source: source,
        witness,
    }
}

fn assert_refused(r: &Refused, code: u64, close: u16, needle: &str) {
    let e = r.error();
    assert_eq!(e["code"], code, "{r:?}");
    let msg = e["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(needle),
        "message {msg:?} should mention {needle:?}"
    );
    assert_eq!(r.close.as_ref().map(|c| c.0), Some(close), "{r:?}");
}

async fn finish(s: Setup, what: &str) {
    s.witness.assert_receiving(&format!("after {what}")).await;
    assert_eq!(s.server.stats().viewers, 1, "only the witness is left");
    s.witness.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_stream_is_refused_with_4404_and_the_list_of_streams() {
    let s = setup(ServerConfig::loopback()).await;
    let url = s.server.ws_url("nope");
    let r = misbehave(&url, None, WAIT).await;
    assert_eq!(r.messages.len(), 1, "no offer before the error: {r:?}");
    assert_refused(&r, 404, 4404, "stream 'nope' not found; streams: live");
    finish(s, "an unknown stream").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_token_is_refused_with_4403() {
    let mut config = ServerConfig::loopback();
    config.authorize = Some(Arc::new(|req: &rtcast::AuthRequest| {
        req.token.as_deref() == Some("good") && req.stream == "live"
    }));
    let s = setup(config).await;
    for url in [
        format!("{}?token=bad", s.server.ws_url("live")),
        s.server.ws_url("live"),
    ] {
        let r = misbehave(&url, None, WAIT).await;
        assert_refused(&r, 403, 4403, "refused");
    }
    finish(s, "refused tokens").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_refused_with_4400() {
    let s = setup(ServerConfig::loopback()).await;
    let send = Message::Text("{\"type\": \"answer\", sdp".into());
    let r = misbehave(&s.server.ws_url("live"), Some(send), WAIT).await;
    assert_eq!(r.messages[0]["type"], "offer");
    assert_refused(&r, 400, 4400, "not valid JSON");
    finish(s, "malformed JSON").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_message_type_is_refused_with_4400() {
    let s = setup(ServerConfig::loopback()).await;
    let send = Message::Text(r#"{"type":"bye"}"#.into());
    let r = misbehave(&s.server.ws_url("live"), Some(send), WAIT).await;
    assert_refused(&r, 400, 4400, "unknown message type \"bye\"");
    finish(s, "an unknown message type").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_message_is_refused_with_4400() {
    let s = setup(ServerConfig::loopback()).await;
    let send = Message::Binary(vec![1u8, 2, 3].into());
    let r = misbehave(&s.server.ws_url("live"), Some(send), WAIT).await;
    assert_refused(&r, 400, 4400, "binary");
    finish(s, "a binary message").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_over_the_size_limit_is_refused_with_4400() {
    let mut config = ServerConfig::loopback();
    config.limits.max_ws_message_bytes = 4096;
    let s = setup(config).await;
    let big = format!(r#"{{"type":"answer","sdp":"{}"}}"#, "a".repeat(5000));
    let r = misbehave(
        &s.server.ws_url("live"),
        Some(Message::Text(big.into())),
        WAIT,
    )
    .await;
    assert_refused(&r, 413, 4400, "over the limit of 4096 bytes");
    finish(s, "an oversized message").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_that_is_not_sdp_is_refused_with_4400() {
    let s = setup(ServerConfig::loopback()).await;
    let send = Message::Text(r#"{"type":"answer","sdp":"this is not SDP"}"#.into());
    let r = misbehave(&s.server.ws_url("live"), Some(send), WAIT).await;
    assert_refused(&r, 400, 4400, "answer");
    finish(s, "a bad SDP answer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_that_never_connects_media_times_out_with_4408() {
    let mut config = ServerConfig::loopback();
    config.limits.connect_timeout = Duration::from_secs(2);
    let s = setup(config).await;
    // Gets the offer, never answers.
    let r = misbehave(&s.server.ws_url("live"), None, WAIT).await;
    assert_eq!(r.messages[0]["type"], "offer");
    assert_refused(&r, 408, 4408, "did not connect within");
    let census = s.server.census().unwrap();
    assert_eq!(
        census.sessions, 1,
        "only the witness session is left: {census:?}"
    );
    finish(s, "a connect timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_candidates_is_refused_with_4400() {
    use futures_util::{SinkExt, StreamExt};
    let s = setup(ServerConfig::loopback()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(s.server.ws_url("live"))
        .await
        .unwrap();
    let offer = ws.next().await.unwrap().unwrap();
    assert!(offer.to_text().unwrap().contains("\"offer\""));
    for i in 0..70 {
        let c = format!(
            r#"{{"type":"candidate","candidate":{{"candidate":"candidate:{i} 1 udp 1 127.0.0.1 {} typ host","sdpMid":"0","sdpMLineIndex":0}}}}"#,
            10_000 + i
        );
        if ws.send(Message::Text(c.into())).await.is_err() {
            break;
        }
    }
    let mut messages = Vec::new();
    let mut close = None;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(WAIT, ws.next()).await {
        match m {
            Message::Text(t) => messages.push(serde_json::from_str(&t).unwrap()),
            Message::Close(f) => {
                close = f.map(|f| (u16::from(f.code), f.reason.to_string()));
                break;
            }
            _ => {}
        }
    }
    let r = Refused { messages, close };
    assert_refused(&r, 400, 4400, "more than 64 candidates");
    finish(s, "a flood of candidates").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_than_its_share_of_connecting_sessions() {
    use futures_util::StreamExt;
    let mut config = ServerConfig::loopback();
    config.limits.max_connecting_per_address = 2;
    let s = setup(config).await;
    let url = s.server.ws_url("live");
    // Two sessions that get their offer and never answer: both still connecting.
    let mut held = Vec::new();
    for _ in 0..2 {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let first = ws.next().await.unwrap().unwrap();
        assert!(first.to_text().unwrap().contains("\"offer\""), "{first:?}");
        held.push(ws);
    }
    let r = misbehave(&url, None, WAIT).await;
    assert_refused(
        &r,
        503,
        4503,
        "2 viewers from 127.0.0.1 are already connecting",
    );
    // Once they are gone, the address may connect again.
    drop(held);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if s.server.census().unwrap().sessions == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            s.server.census()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("\"offer\""), "{first:?}");
    drop(ws);
    finish(s, "too many connecting sessions from one address").await;
}
