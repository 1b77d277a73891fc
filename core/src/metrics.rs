//! Counters of the whole server, read by stats calls and rendered for Prometheus at `/metrics`.

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
    /// Each connected viewer's figures, as its media loop last published them (about once a
    /// second); an entry leaves with its viewer.
    pub(crate) board:
        std::sync::Mutex<std::collections::HashMap<crate::event::ViewerId, ViewerStats>>,
}

/// Counters of one stream's viewers, bumped by the media loops (once per frame and viewer, not
/// per packet) and read by `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct StreamCounters {
    pub packets_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub nacks: AtomicU64,
    pub plis: AtomicU64,
    pub ttff_buckets: [AtomicU64; TTFF_BUCKETS.len()],
    pub ttff_count: AtomicU64,
    pub ttff_sum_us: AtomicU64,
}

impl StreamCounters {
    /// Counts `packets` of `bytes` in all sent to one of the stream's viewers.
    pub(crate) fn sent(&self, packets: u64, bytes: u64) {
        self.packets_sent.fetch_add(packets, Relaxed);
        self.bytes_sent.fetch_add(bytes, Relaxed);
    }

    pub(crate) fn observe_ttff(&self, d: Duration) {
        observe(&self.ttff_buckets, &self.ttff_count, &self.ttff_sum_us, d);
    }
}

/// Counts `d` into a cumulative histogram of [`TTFF_BUCKETS`].
fn observe(buckets: &[AtomicU64], count: &AtomicU64, sum_us: &AtomicU64, d: Duration) {
    let s = d.as_secs_f64();
    for (bound, c) in TTFF_BUCKETS.iter().zip(buckets) {
        if s <= *bound {
            c.fetch_add(1, Relaxed);
        }
    }
    count.fetch_add(1, Relaxed);
    sum_us.fetch_add(d.as_micros() as u64, Relaxed);
}

/// The transport a viewer's media travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP (the usual).
    Udp,
    /// ICE-TCP (RFC 6544), for viewers whose network blocks UDP.
    Tcp,
}

impl Transport {
    /// Lower-case name: "udp" or "tcp".
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// One connected viewer's figures: what it was sent, and what its RTCP receiver reports say
/// (round-trip time, loss and jitter of its video). Published by its media loop about once a
/// second.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewerStats {
    /// Viewer id.
    pub id: crate::event::ViewerId,
    /// Stream name.
    pub stream: String,
    /// Signalling protocol it came through.
    pub protocol: crate::config::Protocol,
    /// What its media travels on.
    pub transport: Transport,
    /// Its media address (the ICE pair it nominated).
    pub remote: std::net::SocketAddr,
    /// Milliseconds since its media connected.
    pub connected_ms: u64,
    /// RTP and RTCP packets sent to it.
    pub packets_sent: u64,
    /// Bytes of RTP payload sent to it.
    pub bytes_sent: u64,
    /// Bits per second sent to it over the last second or so.
    pub bitrate_bps: u64,
    /// Round-trip time from its last receiver report (RFC 3550 §6.4.1: our sender report's time
    /// against its delay since); `None` before one arrived.
    pub rtt_ms: Option<f64>,
    /// Share of its video packets lost since its previous receiver report, 0 to 1.
    pub fraction_lost: f64,
    /// Video packets it lost in all (as it counts them; may go down when late ones arrive).
    pub packets_lost: i64,
    /// Interarrival jitter of its video, milliseconds.
    pub jitter_ms: f64,
    /// NACK messages it sent.
    pub nacks: u64,
    /// PLI/FIR messages it sent.
    pub plis: u64,
    /// The rendition it is sent (`v1`, `v2`, …; `v1` for a stream of one).
    pub rendition: String,
    /// Its bandwidth estimate, bits per second: from transport-wide congestion control feedback
    /// where it sends it, else its REMB; `None` before either.
    pub estimate_bps: Option<u64>,
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

/// Locks `m`, going on past a poisoned lock (the board holds plain figures).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// Every connected viewer's figures (of stream `stream` only, when given), by viewer id.
    pub(crate) fn viewer_stats(&self, stream: Option<&str>) -> Vec<ViewerStats> {
        let mut out: Vec<ViewerStats> = lock(&self.board)
            .values()
            .filter(|v| stream.is_none_or(|s| v.stream == s))
            .cloned()
            .collect();
        out.sort_by_key(|v| v.id);
        out
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn observe_ttff(&self, d: Duration) {
        observe(&self.ttff_buckets, &self.ttff_count, &self.ttff_sum_us, d);
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

    /// Prometheus text exposition format (0.0.4), encoded by `prometheus-client`: the server's
    /// counters, and per stream (label `stream`) its viewers, what they were sent, their
    /// feedback, keyframes, dropped frames and time to first frame. `tasks`: the server's tokio
    /// tasks alive now.
    pub(crate) fn render_prometheus(&self, streams: &[StreamSnapshot], tasks: u64) -> String {
        let mut registry = prometheus_client::registry::Registry::with_prefix("rtcast");
        registry.register_collector(Box::new(Scrape {
            server: self.snapshot(streams.len() as u64),
            sessions: self.sessions.load(Relaxed),
            retransmissions: self.retransmissions.load(Relaxed),
            tasks,
            ttff: Histogram::of(&self.ttff_buckets, &self.ttff_count, &self.ttff_sum_us),
            streams: streams
                .iter()
                .map(|s| {
                    let c = &s.counters;
                    StreamScrape {
                        stats: s.stats.clone(),
                        packets_sent: c.packets_sent.load(Relaxed),
                        bytes_sent: c.bytes_sent.load(Relaxed),
                        nacks: c.nacks.load(Relaxed),
                        plis: c.plis.load(Relaxed),
                        ttff: Histogram::of(&c.ttff_buckets, &c.ttff_count, &c.ttff_sum_us),
                    }
                })
                .collect(),
        }));
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

/// A stream as `/metrics` reads it.
pub(crate) struct StreamSnapshot {
    pub stats: crate::stream::StreamStats,
    pub counters: std::sync::Arc<StreamCounters>,
}

/// A time-to-first-frame histogram read once: per-bucket (not cumulative) counts, as
/// `prometheus-client` takes them.
#[derive(Debug)]
struct Histogram {
    buckets: Vec<(f64, u64)>,
    count: u64,
    sum_secs: f64,
}

impl Histogram {
    fn of(cumulative: &[AtomicU64], count: &AtomicU64, sum_us: &AtomicU64) -> Self {
        let mut below = 0;
        let buckets = TTFF_BUCKETS
            .iter()
            .zip(cumulative)
            .map(|(bound, c)| {
                let c = c.load(Relaxed);
                let n = c.saturating_sub(below);
                below = c;
                (*bound, n)
            })
            .collect();
        Self {
            buckets,
            count: count.load(Relaxed),
            sum_secs: sum_us.load(Relaxed) as f64 / 1e6,
        }
    }
}

/// One scrape's figures, encoded by `prometheus-client`.
#[derive(Debug)]
struct Scrape {
    server: ServerStats,
    sessions: u64,
    retransmissions: u64,
    tasks: u64,
    ttff: Histogram,
    streams: Vec<StreamScrape>,
}

#[derive(Debug)]
struct StreamScrape {
    stats: crate::stream::StreamStats,
    packets_sent: u64,
    bytes_sent: u64,
    nacks: u64,
    plis: u64,
    ttff: Histogram,
}

impl prometheus_client::collector::Collector for Scrape {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> std::result::Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        use prometheus_client::metrics::MetricType;

        let s = &self.server;
        let gauges = [
            ("viewers", "Viewers connected now.", s.viewers),
            ("streams", "Streams that exist now.", s.streams),
            (
                "sessions",
                "Viewer sessions held, connecting or connected.",
                self.sessions,
            ),
            ("tasks", "The server's async tasks alive now.", self.tasks),
        ];
        for (name, help, v) in gauges {
            let e = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(v as i64).encode(e)?;
        }
        // Counters: the encoder appends `_total`.
        let counters = [
            ("viewers", "Viewers that ever connected.", s.viewers_total),
            ("packets_sent", "Datagrams sent.", s.packets_sent),
            ("bytes_sent", "Bytes of those datagrams.", s.bytes_sent),
            (
                "send_drops",
                "Datagrams dropped because the socket buffer was full.",
                s.send_drops,
            ),
            ("nacks", "NACK feedback packets received.", s.nacks),
            (
                "retransmissions",
                "Video packets resent in answer to NACKs.",
                self.retransmissions,
            ),
            ("plis", "PLI/FIR received.", s.plis),
            (
                "keyframe_requests",
                "Keyframes asked of the host or encoder.",
                s.keyframe_requests,
            ),
            (
                "frames_dropped",
                "Frames dropped before the viewers.",
                s.frames_dropped,
            ),
            (
                "events_dropped",
                "Events a subscriber lost because it read too slowly.",
                s.events_dropped,
            ),
        ];
        for (name, help, v) in counters {
            let e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(v).encode(e)?;
        }
        let mut e = encoder.encode_descriptor(
            "time_to_first_frame_seconds",
            "Signalling start to first video packet.",
            None,
            MetricType::Histogram,
        )?;
        let h = &self.ttff;
        e.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            h.sum_secs, h.count, &h.buckets, None,
        )?;

        // Per stream, label `stream`.
        let label = |s: &StreamScrape| [("stream", s.stats.name.clone())];
        let mut e = encoder.encode_descriptor(
            "stream_viewers",
            "Viewers of the stream connected now.",
            None,
            MetricType::Gauge,
        )?;
        for st in &self.streams {
            ConstGauge::new(st.stats.viewers as i64).encode(e.encode_family(&label(st))?)?;
        }
        type Field = fn(&StreamScrape) -> u64;
        let stream_counters: [(&str, &str, Field); 7] = [
            (
                "stream_packets_sent",
                "Packets sent to the stream's viewers.",
                |s| s.packets_sent,
            ),
            (
                "stream_bytes_sent",
                "Bytes sent to the stream's viewers.",
                |s| s.bytes_sent,
            ),
            (
                "stream_nacks",
                "NACK feedback from the stream's viewers.",
                |s| s.nacks,
            ),
            ("stream_plis", "PLI/FIR from the stream's viewers.", |s| {
                s.plis
            }),
            (
                "stream_keyframe_requests",
                "Keyframes the stream asked of its host or encoder.",
                |s| s.stats.keyframe_requests,
            ),
            (
                "stream_frames_dropped",
                "Frames of the stream dropped before its viewers.",
                |s| s.stats.frames_dropped,
            ),
            (
                "stream_video_frames",
                "Video frames pushed into the stream.",
                |s| s.stats.video_frames,
            ),
        ];
        for (name, help, field) in stream_counters {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for st in &self.streams {
                ConstCounter::new(field(st)).encode(e.encode_family(&label(st))?)?;
            }
        }
        let mut e = encoder.encode_descriptor(
            "stream_time_to_first_frame_seconds",
            "Signalling start to first video packet, per stream.",
            None,
            MetricType::Histogram,
        )?;
        for st in &self.streams {
            let h = &st.ttff;
            e.encode_family(&label(st))?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    h.sum_secs, h.count, &h.buckets, None,
                )?;
        }
        Ok(())
    }
}
