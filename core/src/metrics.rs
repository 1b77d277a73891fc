//! Counters of the whole server, read by stats calls and rendered for Prometheus at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

/// Upper bounds (seconds) of the time-to-first-frame histogram buckets.
const TTFF_BUCKETS: [f64; 10] = [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0];

/// Server-wide counters. Cheap to bump from any thread.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) viewers: AtomicU64,
    pub(crate) viewers_total: AtomicU64,
    /// Viewer sessions held by the media loops, connecting or connected (`/metrics` only).
    pub(crate) sessions: AtomicU64,
    pub(crate) packets_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) send_drops: AtomicU64,
    pub(crate) nacks: AtomicU64,
    pub(crate) retransmissions: AtomicU64,
    pub(crate) plis: AtomicU64,
    pub(crate) keyframe_requests: AtomicU64,
    pub(crate) frames_dropped: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
    ttff_buckets: [AtomicU64; TTFF_BUCKETS.len()],
    ttff_count: AtomicU64,
    ttff_sum_us: AtomicU64,
}

/// A snapshot of the server's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerStats {
    /// Viewers connected now.
    pub viewers: u64,
    /// Viewers that ever connected.
    pub viewers_total: u64,
    /// Streams that exist now.
    pub streams: u64,
    /// RTP/RTCP/DTLS/STUN datagrams sent.
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
    /// Events a subscriber lost because it read too slowly: an [`crate::Events`] reader more
    /// than 1024 events behind, or a binding's own event queue full (each says which it drops).
    pub events_dropped: u64,
    /// Median time from a viewer's signalling start to its first video packet, ms (histogram
    /// estimate; 0 without data).
    pub ttff_p50_ms: f64,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn observe_ttff(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (bound, count) in TTFF_BUCKETS.iter().zip(&self.ttff_buckets) {
            if s <= *bound {
                count.fetch_add(1, Relaxed);
            }
        }
        self.ttff_count.fetch_add(1, Relaxed);
        self.ttff_sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    /// A snapshot.
    pub fn snapshot(&self, streams: u64) -> ServerStats {
        let count = self.ttff_count.load(Relaxed);
        let [.., slowest] = TTFF_BUCKETS;
        let p50 = if count == 0 {
            0.0
        } else {
            TTFF_BUCKETS
                .iter()
                .zip(&self.ttff_buckets)
                .find(|(_, c)| c.load(Relaxed) * 2 >= count)
                .map_or(slowest, |(b, _)| *b)
                * 1000.0
        };
        ServerStats {
            viewers: self.viewers.load(Relaxed),
            viewers_total: self.viewers_total.load(Relaxed),
            streams,
            packets_sent: self.packets_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            send_drops: self.send_drops.load(Relaxed),
            nacks: self.nacks.load(Relaxed),
            plis: self.plis.load(Relaxed),
            keyframe_requests: self.keyframe_requests.load(Relaxed),
            frames_dropped: self.frames_dropped.load(Relaxed),
            events_dropped: self.events_dropped.load(Relaxed),
            ttff_p50_ms: p50,
        }
    }

    /// Prometheus text exposition format; `tasks`: the server's tokio tasks alive now.
    pub fn render_prometheus(&self, streams: u64, tasks: u64) -> String {
        let s = self.snapshot(streams);
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP rtcast_{name} {help}\n# TYPE rtcast_{name} {kind}\nrtcast_{name} {v}"
            );
        };
        metric("viewers", "gauge", "Viewers connected now.", s.viewers);
        metric("streams", "gauge", "Streams that exist now.", s.streams);
        metric(
            "sessions",
            "gauge",
            "Viewer sessions held, connecting or connected.",
            self.sessions.load(Relaxed),
        );
        metric(
            "tasks",
            "gauge",
            "The server's async tasks alive now.",
            tasks,
        );
        metric(
            "viewers_total",
            "counter",
            "Viewers that ever connected.",
            s.viewers_total,
        );
        metric(
            "packets_sent_total",
            "counter",
            "UDP datagrams sent.",
            s.packets_sent,
        );
        metric(
            "bytes_sent_total",
            "counter",
            "UDP bytes sent.",
            s.bytes_sent,
        );
        metric(
            "send_drops_total",
            "counter",
            "Datagrams dropped on a full socket buffer.",
            s.send_drops,
        );
        metric("nacks_total", "counter", "NACK feedback received.", s.nacks);
        metric(
            "retransmissions_total",
            "counter",
            "Video packets resent in answer to NACKs.",
            self.retransmissions.load(Relaxed),
        );
        metric("plis_total", "counter", "PLI/FIR received.", s.plis);
        metric(
            "keyframe_requests_total",
            "counter",
            "Keyframes asked of the host or encoder.",
            s.keyframe_requests,
        );
        metric(
            "frames_dropped_total",
            "counter",
            "Frames dropped before the viewers.",
            s.frames_dropped,
        );
        metric(
            "events_dropped_total",
            "counter",
            "Events a subscriber lost because it read too slowly.",
            s.events_dropped,
        );
        let _ = writeln!(
            out,
            "# HELP rtcast_time_to_first_frame_seconds Signalling start to first video packet."
        );
        let _ = writeln!(out, "# TYPE rtcast_time_to_first_frame_seconds histogram");
        for (b, c) in TTFF_BUCKETS.iter().zip(&self.ttff_buckets) {
            let _ = writeln!(
                out,
                "rtcast_time_to_first_frame_seconds_bucket{{le=\"{b}\"}} {}",
                c.load(Relaxed)
            );
        }
        let count = self.ttff_count.load(Relaxed);
        let _ = writeln!(
            out,
            "rtcast_time_to_first_frame_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "rtcast_time_to_first_frame_seconds_sum {}",
            self.ttff_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "rtcast_time_to_first_frame_seconds_count {count}");
        out
    }
}
