//! The documented Flussonic WebSocket client page, played to by a stand-in server (a second
//! Chromium sending a canvas), without rtcast: proves the page, the browser flags (loopback
//! candidates, no mDNS) and the harness together play WebRTC from loopback, and pins the shape
//! of the messages that page sends.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use rtcast_e2e::{page_url, Chromium, Page};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread")]
async fn documented_flussonic_client_plays_an_offer_trickled_over_the_websocket() {
    let sender_browser = Chromium::launch().await.unwrap();
    let sender = Arc::new(
        sender_browser
            .open(&page_url("selftest-webrtc-sender.html", ""))
            .await
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(serve_one_viewer(listener, Arc::clone(&sender)));

    let viewer_browser = Chromium::launch().await.unwrap();
    let viewer = viewer_browser
        .open(&page_url(
            "flussonic-ws-client.html",
            &format!("src=ws://127.0.0.1:{port}/demo/webrtc"),
        ))
        .await
        .unwrap();
    let report = viewer
        .wait_for_video(30, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}\nsender console: {:?}", sender.console()));

    assert_eq!((report.width, report.height), (640, 360), "{report}");
    let client_messages = server.await.unwrap();
    let answer = client_messages
        .iter()
        .find(|m| m["type"] == "answer")
        .expect("the client sent no answer");
    assert!(
        answer["sdp"].as_str().unwrap().starts_with("v=0"),
        "{answer}"
    );
    let candidate = client_messages
        .iter()
        .find(|m| m["type"] == "candidate")
        .expect("the client sent no candidate");
    assert_eq!(candidate["stream_id"], "local1", "{candidate}");
    assert!(candidate["label"].is_u64(), "{candidate}");
    assert!(candidate["id"].is_string(), "{candidate}");
    assert!(
        candidate["candidate"]["candidate"]
            .as_str()
            .unwrap()
            .starts_with("candidate:"),
        "{candidate}"
    );
}

/// Plays the server's part of the documented protocol for one client: offer first, then its
/// candidates, relaying the client's answer and candidates to the sender page. Returns the
/// client's messages once the sender is connected and the client has trickled a candidate.
async fn serve_one_viewer(listener: TcpListener, sender: Arc<Page>) -> Vec<Value> {
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(20), listener.accept())
        .await
        .expect("the client page never connected")
        .unwrap();
    let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();

    let offer = sender.eval("makeOffer()").await.unwrap();
    socket
        .send(Message::text(
            json!({ "type": "offer", "sdp": offer["sdp"] }).to_string(),
        ))
        .await
        .unwrap();
    let candidates = sender.eval("localCandidates()").await.unwrap();
    for candidate in candidates.as_array().unwrap() {
        let message = json!({ "type": "candidate", "candidate": candidate });
        socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    let mut received: Vec<Value> = Vec::new();
    // The sender may connect after the client's last message, so its state is polled on a
    // tick as well as after each message.
    let relay = async {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                frame = socket.next() => {
                    let Some(frame) = frame else { break };
                    let Message::Text(text) = frame.unwrap() else {
                        continue;
                    };
                    let message: Value = serde_json::from_str(&text).unwrap();
                    match message["type"].as_str() {
                        Some("answer") => {
                            sender
                                .eval(&format!("acceptAnswer({message})"))
                                .await
                                .unwrap();
                        }
                        Some("candidate") => {
                            let candidate = &message["candidate"];
                            sender
                                .eval(&format!("addCandidate({candidate})"))
                                .await
                                .unwrap();
                        }
                        _ => panic!("unexpected message from the client: {message}"),
                    }
                    received.push(message);
                }
                _ = tick.tick() => {}
            }
            let trickled = received.iter().any(|m| m["type"] == "candidate");
            if trickled && sender.eval("connectionState()").await.unwrap() == "connected" {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), relay)
        .await
        .expect("the client and the sender did not connect");
    received
}
