//! Helpers for tests that check one viewer's trouble leaves the others alone: a server with a
//! live source, a witness viewer that keeps watching, and a raw WebSocket client that misbehaves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::viewer::{run_viewer, ViewerOptions, ViewerReport};

/// A viewer watching in the background, with a live frame counter.
pub struct Witness {
    frames: Arc<AtomicU64>,
    task: JoinHandle<Result<ViewerReport, String>>,
}

impl Witness {
    /// Starts watching `ws_url` for at most a minute and waits until frames arrive.
    pub async fn start(ws_url: String) -> Witness {
        Self::start_for(ws_url, Duration::from_secs(60)).await
    }

    /// Starts watching `ws_url` for at most `max` and waits until frames arrive.
    pub async fn start_for(ws_url: String, max: Duration) -> Witness {
        let frames = Arc::new(AtomicU64::new(0));
        let mut opts = ViewerOptions::new(ws_url, max);
        opts.progress = Some(frames.clone());
        let task = tokio::spawn(run_viewer(opts));
        let w = Witness { frames, task };
        w.assert_receiving("before the test").await;
        w
    }

    /// Complete video frames received so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Fails unless at least 10 more frames arrive within 5 s.
    pub async fn assert_receiving(&self, when: &str) {
        let start = self.frames.load(Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.frames.load(Ordering::Relaxed) < start + 10 {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "the witness viewer stopped receiving video {when}: {} frames in 5 s",
                    self.frames.load(Ordering::Relaxed) - start
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops watching.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// What a misbehaving client saw: the messages before the close, and the close frame.
#[derive(Debug)]
pub struct Refused {
    /// Every JSON message received.
    pub messages: Vec<Value>,
    /// Close code and reason.
    pub close: Option<(u16, String)>,
}

impl Refused {
    /// The `{"type":"error"}` message, which must be the last one.
    pub fn error(&self) -> &Value {
        let last = self.messages.last().expect("no message at all");
        assert_eq!(
            last["type"], "error",
            "last message is not an error: {:?}",
            self.messages
        );
        last
    }
}

/// Connects to `url`, waits for the first message (the offer, or an error), sends `send` (text
/// or binary), and reads until the server closes, for at most `timeout`.
pub async fn misbehave(url: &str, send: Option<Message>, timeout: Duration) -> Refused {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let mut messages = Vec::new();
    let mut close = None;
    let mut pending = send;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next()).await;
        let msg = match next {
            Err(_) => panic!("server did not close within {timeout:?}; got {messages:?}"),
            Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).expect("server sent invalid JSON");
                let first = messages.is_empty();
                messages.push(v);
                if first {
                    if let Some(m) = pending.take() {
                        ws.send(m).await.expect("send");
                    }
                }
            }
            Message::Close(f) => {
                close = f.map(|f| (u16::from(f.code), f.reason.to_string()));
                break;
            }
            _ => {}
        }
    }
    Refused { messages, close }
}
