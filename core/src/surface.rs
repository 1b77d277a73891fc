//! The names of everything a host configures, reads or hears, as the core calls them: what every
//! face (C, Python, Node) must offer. The bindings' parity test (`tests/tests/parity.rs`)
//! compares these lists with the C header, the Python stubs and the Node typings.
//!
//! Each list is written next to an exhaustive destructuring (or match) of the type it lists, so
//! adding a field or an event fails to compile here until it is listed, and then fails the
//! parity test until every face has it.

use crate::config::{Limits, ServerConfig};
use crate::event::Event;
use crate::media::encoder::EncoderConfig;
use crate::metrics::{ServerStats, ViewerStats};
use crate::stream::{StreamOptions, StreamStats};

/// `ServerConfig` fields, with `limits` spelled out as its `Limits` fields.
pub fn server_config() -> Vec<&'static str> {
    let ServerConfig {
        bind: _,
        port: _,
        udp_port: _,
        tcp_port: _,
        candidates: _,
        public_ips: _,
        ice_servers: _,
        turn_secret: _,
        tls: _,
        limits,
        authorize: _,
        cors_origins: _,
        media_loops: _,
    } = ServerConfig::default();
    let Limits {
        max_viewers_per_stream: _,
        max_viewers: _,
        max_connecting_per_address: _,
        max_connecting: _,
        max_ws_message_bytes: _,
        connect_timeout: _,
        consent_timeout: _,
    } = limits;
    vec![
        "bind",
        "port",
        "udp_port",
        "tcp_port",
        "candidates",
        "public_ips",
        "ice_servers",
        "turn_secret",
        "tls",
        "authorize",
        "cors_origins",
        "media_loops",
        "max_viewers_per_stream",
        "max_viewers",
        "max_connecting_per_address",
        "max_connecting",
        "max_ws_message_bytes",
        "connect_timeout",
        "consent_timeout",
    ]
}

/// `StreamOptions` fields, with `encoder` spelled out as its `EncoderConfig` fields.
pub fn stream_options() -> Vec<&'static str> {
    let StreamOptions {
        audio: _,
        video: _,
        encoder,
        renditions: _,
    } = StreamOptions::default();
    let EncoderConfig {
        bitrate_bps: _,
        max_fps: _,
        keyframe_interval: _,
        follow_viewers_floor_bps: _,
    } = encoder;
    vec![
        "audio",
        "video",
        "bitrate_bps",
        "max_fps",
        "keyframe_interval",
        "follow_viewers_floor_bps",
        "renditions",
    ]
}

/// `ServerStats` fields.
pub fn server_stats() -> Vec<&'static str> {
    let ServerStats {
        viewers: _,
        viewers_total: _,
        streams: _,
        packets_sent: _,
        bytes_sent: _,
        send_drops: _,
        nacks: _,
        plis: _,
        keyframe_requests: _,
        frames_dropped: _,
        events_dropped: _,
        ttff_p50_ms: _,
    } = ServerStats::default();
    vec![
        "viewers",
        "viewers_total",
        "streams",
        "packets_sent",
        "bytes_sent",
        "send_drops",
        "nacks",
        "plis",
        "keyframe_requests",
        "frames_dropped",
        "events_dropped",
        "ttff_p50_ms",
    ]
}

/// `StreamStats` fields.
pub fn stream_stats() -> Vec<&'static str> {
    let StreamStats {
        name: _,
        viewers: _,
        video_frames: _,
        audio_packets: _,
        frames_dropped: _,
        frames_encoded: _,
        keyframe_requests: _,
    } = StreamStats::default();
    vec![
        "name",
        "viewers",
        "video_frames",
        "audio_packets",
        "frames_dropped",
        "frames_encoded",
        "keyframe_requests",
    ]
}

/// Never called: compiled for its exhaustive destructuring, so that a new field fails to build
/// until [`viewer_stats`] lists it.
#[allow(dead_code)]
fn viewer_stats_fields(v: &ViewerStats) {
    let ViewerStats {
        id: _,
        stream: _,
        protocol: _,
        transport: _,
        remote: _,
        connected_ms: _,
        packets_sent: _,
        bytes_sent: _,
        bitrate_bps: _,
        rtt_ms: _,
        fraction_lost: _,
        packets_lost: _,
        jitter_ms: _,
        nacks: _,
        plis: _,
        rendition: _,
        estimate_bps: _,
    } = v;
}

/// `ViewerStats` fields.
pub fn viewer_stats() -> Vec<&'static str> {
    vec![
        "id",
        "stream",
        "protocol",
        "transport",
        "remote",
        "connected_ms",
        "packets_sent",
        "bytes_sent",
        "bitrate_bps",
        "rtt_ms",
        "fraction_lost",
        "packets_lost",
        "jitter_ms",
        "nacks",
        "plis",
        "rendition",
        "estimate_bps",
    ]
}

/// Never called: compiled for its exhaustive match, so that a new event fails to build until
/// [`events`] lists it.
#[allow(dead_code)]
fn event_kind(e: &Event) -> &'static str {
    match e {
        Event::ViewerJoined {
            stream: _,
            viewer: _,
            protocol: _,
            remote: _,
        } => "viewer_joined",
        Event::ViewerLeft {
            stream: _,
            viewer: _,
            reason: _,
        } => "viewer_left",
        Event::KeyframeRequested {
            stream: _,
            rendition: _,
        } => "keyframe_requested",
        Event::RenditionSwitched {
            stream: _,
            viewer: _,
            from: _,
            to: _,
            estimate_bps: _,
        } => "rendition_switched",
        Event::BitrateHint { stream: _, bps: _ } => "bitrate_hint",
    }
}

/// Events, each with its fields (the stream name first).
pub fn events() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        (
            "viewer_joined",
            vec!["stream", "viewer", "protocol", "remote"],
        ),
        ("viewer_left", vec!["stream", "viewer", "reason"]),
        ("keyframe_requested", vec!["stream", "rendition"]),
        (
            "rendition_switched",
            vec!["stream", "viewer", "from", "to", "estimate_bps"],
        ),
        ("bitrate_hint", vec!["stream", "bps"]),
    ]
}
