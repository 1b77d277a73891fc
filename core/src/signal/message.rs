//! The JSON messages of Flussonic's WebSocket playback protocol, parsed and built without I/O.
//!
//! Server → client: `{"type":"offer","sdp":…,"config":{…}}`,
//! `{"type":"candidate","candidate":{"candidate":…,"sdpMid":"0","sdpMLineIndex":0}}`,
//! `{"type":"error","code":…,"message":…}`.
//! Client → server: `{"type":"answer","sdp":…}` and
//! `{"type":"candidate","stream_id":"local1","label":0,"id":"0","candidate":<RTCIceCandidate JSON>}`
//! (a bare `RTCIceCandidateInit`, a candidate string, or null/empty for end of candidates too).

use rtc::peer_connection::transport::RTCIceCandidateInit;
use serde_json::{json, Value};

use crate::config::IceServer;

/// A message from a viewer, understood.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// Its SDP answer.
    Answer(String),
    /// A trickled ICE candidate; `None` ends its gathering.
    Candidate(Option<RTCIceCandidateInit>),
}

/// Why a message was refused: an HTTP-like code and a text for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP-like status code sent in the error message.
    pub code: u16,
    /// What was wrong.
    pub message: String,
}

impl Refusal {
    /// A 400 refusal.
    pub fn bad(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            message: message.into(),
        }
    }
}

/// Parses one text message from a viewer.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, Refusal> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| Refusal::bad(format!("message is not valid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| Refusal::bad("message must be a JSON object with a \"type\""))?;
    let typ = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::bad("message has no string \"type\""))?;
    match typ {
        "answer" => {
            let sdp = obj
                .get("sdp")
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| Refusal::bad("answer has no \"sdp\" string"))?;
            Ok(ClientMessage::Answer(sdp.to_owned()))
        }
        "candidate" => parse_candidate(obj).map(ClientMessage::Candidate),
        other => Err(Refusal::bad(format!(
            "unknown message type \"{other}\"; expected \"answer\" or \"candidate\""
        ))),
    }
}

fn parse_candidate(
    obj: &serde_json::Map<String, Value>,
) -> Result<Option<RTCIceCandidateInit>, Refusal> {
    // Flussonic's documented shape carries the m-line as label/id beside the candidate.
    let label = obj.get("label").and_then(Value::as_u64).map(|l| l as u16);
    let id = obj.get("id").and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let init = match obj.get("candidate") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => RTCIceCandidateInit {
            candidate: s.clone(),
            sdp_mid: id,
            sdp_mline_index: label,
            ..Default::default()
        },
        Some(Value::Object(c)) => {
            let candidate = match c.get("candidate") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(_) => return Err(Refusal::bad("candidate.candidate must be a string")),
            };
            RTCIceCandidateInit {
                candidate,
                sdp_mid: c
                    .get("sdpMid")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or(id),
                sdp_mline_index: c
                    .get("sdpMLineIndex")
                    .and_then(Value::as_u64)
                    .map(|l| l as u16)
                    .or(label),
                username_fragment: c
                    .get("usernameFragment")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                ..Default::default()
            }
        }
        Some(_) => {
            return Err(Refusal::bad(
                "\"candidate\" must be an object, a string or null",
            ))
        }
    };
    if init.candidate.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(init))
}

/// The first message: the server's offer, with the ICE servers as `config` (Flussonic's player
/// library reads `config` from it and fails without one).
pub fn offer(sdp: &str, ice_servers: &[IceServer]) -> String {
    let config = if ice_servers.is_empty() {
        json!({})
    } else {
        json!({ "iceServers": ice_servers })
    };
    json!({ "type": "offer", "sdp": sdp, "config": config }).to_string()
}

/// A server candidate.
pub fn candidate(c: &RTCIceCandidateInit) -> String {
    json!({
        "type": "candidate",
        "candidate": {
            "candidate": c.candidate,
            "sdpMid": c.sdp_mid.as_deref().unwrap_or("0"),
            "sdpMLineIndex": c.sdp_mline_index.unwrap_or(0),
        }
    })
    .to_string()
}

/// An error message, sent just before the server closes the socket.
pub fn error(code: u16, message: &str) -> String {
    json!({ "type": "error", "code": code, "message": message }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flussonic_documented_candidate_shape() {
        let m = r#"{"type":"candidate","stream_id":"local1","label":0,"id":"0",
            "candidate":{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}"#;
        let ClientMessage::Candidate(Some(c)) = parse_client_message(m).unwrap() else {
            panic!("not a candidate")
        };
        assert!(c.candidate.starts_with("candidate:1 1 udp"));
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
        assert_eq!(c.sdp_mline_index, Some(0));
        assert_eq!(c.username_fragment.as_deref(), Some("abcd"));
    }

    #[test]
    fn parses_bare_init_string_candidate_and_end_of_candidates() {
        let bare = r#"{"type":"candidate","candidate":{"candidate":"candidate:2 1 udp 1 127.0.0.1 1 typ host","sdpMLineIndex":0}}"#;
        assert!(matches!(
            parse_client_message(bare),
            Ok(ClientMessage::Candidate(Some(_)))
        ));
        let string = r#"{"type":"candidate","label":0,"id":"0","candidate":"candidate:2 1 udp 1 127.0.0.1 1 typ host"}"#;
        let ClientMessage::Candidate(Some(c)) = parse_client_message(string).unwrap() else {
            panic!()
        };
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
        for end in [
            r#"{"type":"candidate","candidate":null}"#,
            r#"{"type":"candidate"}"#,
            r#"{"type":"candidate","candidate":{"candidate":"","sdpMid":"0"}}"#,
        ] {
            assert_eq!(
                parse_client_message(end),
                Ok(ClientMessage::Candidate(None)),
                "{end}"
            );
        }
    }

    #[test]
    fn refuses_malformed_and_unknown_messages_with_400_and_a_reason() {
        for (m, needle) in [
            ("{not json", "not valid JSON"),
            ("[1,2]", "JSON object"),
            (r#"{"sdp":"x"}"#, "no string \"type\""),
            (r#"{"type":"bye"}"#, "unknown message type \"bye\""),
            (r#"{"type":"answer"}"#, "no \"sdp\""),
            (r#"{"type":"candidate","candidate":5}"#, "must be an object"),
        ] {
            let r = parse_client_message(m).unwrap_err();
            assert_eq!(r.code, 400);
            assert!(r.message.contains(needle), "{m}: {}", r.message);
        }
    }

    #[test]
    fn offer_carries_config_object() {
        let v: Value = serde_json::from_str(&offer("v=0", &[])).unwrap();
        assert_eq!(v["type"], "offer");
        assert_eq!(v["sdp"], "v=0");
        assert!(v["config"].is_object());
        let servers = [IceServer {
            urls: vec!["turn:t.example:3478".into()],
            username: Some("u".into()),
            credential: Some("p".into()),
        }];
        let v: Value = serde_json::from_str(&offer("v=0", &servers)).unwrap();
        assert_eq!(
            v["config"]["iceServers"][0]["urls"][0],
            "turn:t.example:3478"
        );
    }
}
