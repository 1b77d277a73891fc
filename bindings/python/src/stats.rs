//! Counters as read-only Python objects.

use pyo3::prelude::*;

/// Counters of the whole server (`Server.stats()`).
#[pyclass(module = "rtcast", name = "ServerStats", frozen, get_all)]
#[derive(Clone, Debug)]
pub struct ServerStats {
    /// Viewers connected now.
    pub viewers: u64,
    /// Viewers that ever connected.
    pub viewers_total: u64,
    /// Streams that exist now.
    pub streams: u64,
    /// UDP datagrams sent (RTP, RTCP, DTLS, STUN).
    pub packets_sent: u64,
    /// Bytes of those datagrams.
    pub bytes_sent: u64,
    /// Datagrams dropped because the socket buffer was full.
    pub send_drops: u64,
    /// NACK feedback packets received.
    pub nacks: u64,
    /// PLI/FIR received.
    pub plis: u64,
    /// Keyframes asked of the host or of the encoder.
    pub keyframe_requests: u64,
    /// Frames dropped before reaching the viewers (media queue full).
    pub frames_dropped: u64,
    /// Events a subscriber lost because it read too slowly (an `events()` iterator's queue full,
    /// or a callback so slow that 1024 events queued behind it).
    pub events_dropped: u64,
    /// Median time from a viewer's signalling start to its first video packet, ms (0: no data).
    pub ttff_p50_ms: f64,
}

impl From<rtcast::ServerStats> for ServerStats {
    fn from(s: rtcast::ServerStats) -> Self {
        Self {
            viewers: s.viewers,
            viewers_total: s.viewers_total,
            streams: s.streams,
            packets_sent: s.packets_sent,
            bytes_sent: s.bytes_sent,
            send_drops: s.send_drops,
            nacks: s.nacks,
            plis: s.plis,
            keyframe_requests: s.keyframe_requests,
            frames_dropped: s.frames_dropped,
            events_dropped: s.events_dropped,
            ttff_p50_ms: s.ttff_p50_ms,
        }
    }
}

#[pymethods]
impl ServerStats {
    fn __repr__(&self) -> String {
        format!(
            "ServerStats(viewers={}, viewers_total={}, streams={}, packets_sent={}, \
             bytes_sent={}, send_drops={}, nacks={}, plis={}, keyframe_requests={}, \
             frames_dropped={}, events_dropped={}, ttff_p50_ms={})",
            self.viewers,
            self.viewers_total,
            self.streams,
            self.packets_sent,
            self.bytes_sent,
            self.send_drops,
            self.nacks,
            self.plis,
            self.keyframe_requests,
            self.frames_dropped,
            self.events_dropped,
            self.ttff_p50_ms
        )
    }
}

/// Counters of one stream (`Stream.stats()`, `Server.stream_stats()`).
#[pyclass(module = "rtcast", name = "StreamStats", frozen, get_all)]
#[derive(Clone, Debug)]
pub struct StreamStats {
    /// Stream name.
    pub name: String,
    /// Viewers connected now.
    pub viewers: usize,
    /// Video frames pushed (raw or encoded).
    pub video_frames: u64,
    /// Audio packets pushed.
    pub audio_packets: u64,
    /// Frames dropped because the media loop or the built-in encoder was behind.
    pub frames_dropped: u64,
    /// Raw frames encoded by the built-in encoder (0 with no viewers).
    pub frames_encoded: u64,
    /// Keyframes asked for (coalesced).
    pub keyframe_requests: u64,
}

impl From<rtcast::StreamStats> for StreamStats {
    fn from(s: rtcast::StreamStats) -> Self {
        Self {
            name: s.name,
            viewers: s.viewers,
            video_frames: s.video_frames,
            audio_packets: s.audio_packets,
            frames_dropped: s.frames_dropped,
            frames_encoded: s.frames_encoded,
            keyframe_requests: s.keyframe_requests,
        }
    }
}

#[pymethods]
impl StreamStats {
    fn __repr__(&self) -> String {
        format!(
            "StreamStats(name={:?}, viewers={}, video_frames={}, audio_packets={}, \
             frames_dropped={}, frames_encoded={}, keyframe_requests={})",
            self.name,
            self.viewers,
            self.video_frames,
            self.audio_packets,
            self.frames_dropped,
            self.frames_encoded,
            self.keyframe_requests
        )
    }
}

/// One connected viewer's figures (`Server.viewer_stats()`, `Stream.viewer_stats()`), as its
/// media loop last published them (about once a second).
#[pyclass(module = "rtcast", name = "ViewerStats", frozen, get_all)]
#[derive(Clone, Debug)]
pub struct ViewerStats {
    /// Viewer id.
    pub id: u64,
    /// Stream name.
    pub stream: String,
    /// "websocket" or "whep".
    pub protocol: &'static str,
    /// "udp" or "tcp" (ICE-TCP).
    pub transport: &'static str,
    /// "ip:port" of its media.
    pub remote: String,
    /// Milliseconds since its media connected.
    pub connected_ms: u64,
    /// RTP and RTCP packets sent to it.
    pub packets_sent: u64,
    /// Bytes of those packets.
    pub bytes_sent: u64,
    /// Bits per second sent to it over the last second or so.
    pub bitrate_bps: u64,
    /// Round-trip time from its receiver reports, ms; None before the first.
    pub rtt_ms: Option<f64>,
    /// Share of its video packets lost since its previous receiver report, 0 to 1.
    pub fraction_lost: f64,
    /// Video packets it lost in all.
    pub packets_lost: i64,
    /// Interarrival jitter of its video, ms.
    pub jitter_ms: f64,
    /// NACK messages it sent.
    pub nacks: u64,
    /// PLI/FIR messages it sent.
    pub plis: u64,
    /// The rendition it is sent: "v1", "v2"... ("v1" for a stream of one).
    pub rendition: String,
    /// Its bandwidth estimate, bits per second; None before the first.
    pub estimate_bps: Option<u64>,
}

impl From<rtcast::ViewerStats> for ViewerStats {
    fn from(v: rtcast::ViewerStats) -> Self {
        Self {
            id: v.id,
            stream: v.stream,
            protocol: v.protocol.name(),
            transport: v.transport.name(),
            remote: v.remote.to_string(),
            connected_ms: v.connected_ms,
            packets_sent: v.packets_sent,
            bytes_sent: v.bytes_sent,
            bitrate_bps: v.bitrate_bps,
            rtt_ms: v.rtt_ms,
            fraction_lost: v.fraction_lost,
            packets_lost: v.packets_lost,
            jitter_ms: v.jitter_ms,
            nacks: v.nacks,
            plis: v.plis,
            rendition: v.rendition,
            estimate_bps: v.estimate_bps,
        }
    }
}

#[pymethods]
impl ViewerStats {
    fn __repr__(&self) -> String {
        format!(
            "ViewerStats(id={}, stream={:?}, protocol={:?}, transport={:?}, remote={:?}, \
             rendition={:?}, bitrate_bps={}, estimate_bps={:?}, rtt_ms={:?}, fraction_lost={}, \
             jitter_ms={})",
            self.id,
            self.stream,
            self.protocol,
            self.transport,
            self.remote,
            self.rendition,
            self.bitrate_bps,
            self.estimate_bps,
            self.rtt_ms,
            self.fraction_lost,
            self.jitter_ms
        )
    }
}
