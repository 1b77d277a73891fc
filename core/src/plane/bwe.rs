//! A viewer's bandwidth estimate from transport-wide congestion control (draft-holmer-rmcat-
//! transport-wide-cc-extensions-01): each video packet carries a transport-wide sequence number
//! in a header extension, the browser reports when each arrived, and webrtc-rs's GCC estimator
//! (`rtc-interceptor`'s `Gcc`, driven directly: the plane bypasses the interceptor chain) turns
//! departures and arrivals into a bitrate.
//!
//! GCC's loss half collapses toward its floor when a viewer starts on a rendition far above its
//! link (most of a 2 Mbit/s start is lost on an 800 kbit/s link). The estimate used is therefore
//! never under what demonstrably arrived over the last second: the link carried that much.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtc::interceptor::{convert_twcc, BandwidthEstimator, Gcc, History};
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;

/// The SDP name of the header extension.
pub(crate) const TWCC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// Packets not acknowledged this long after they left are forgotten (feedback comes every
/// ~100 ms; a packet it never names was lost and is counted as such when later ones are).
const FORGET_AFTER: Duration = Duration::from_secs(2);

/// Least estimate (a viewer is never told less than this carries).
const MIN_BPS: f64 = 50_000.0;
/// Most estimate.
const MAX_BPS: f64 = 100_000_000.0;
/// The window over which what arrived is measured.
const DELIVERED_WINDOW: Duration = Duration::from_secs(1);
/// Most packets remembered for it (a 100 Mbit/s second; past it the oldest go).
const MAX_DELIVERED: usize = 10_000;

pub(crate) struct Bwe {
    /// The extension's id in this viewer's session.
    pub ext: u8,
    next_seq: u16,
    history: History,
    gcc: Gcc,
    /// When feedback first arrived (before, the estimate is only the starting guess).
    informed: Option<Instant>,
    /// Packets acknowledged as arrived over the last [`DELIVERED_WINDOW`]: when the feedback
    /// said so, and their sizes.
    delivered: VecDeque<(Instant, usize)>,
    delivered_bytes: usize,
}

impl Bwe {
    /// An estimator that starts at `initial_bps` (the rendition the viewer starts on, so that a
    /// viewer on a good path is not moved down before its feedback says anything).
    pub fn new(ext: u8, initial_bps: u64) -> Self {
        Self {
            ext,
            next_seq: 0,
            history: History::new(),
            gcc: Gcc::new(initial_bps as f64, MIN_BPS, MAX_BPS),
            informed: None,
            delivered: VecDeque::new(),
            delivered_bytes: 0,
        }
    }

    /// Records a packet leaving now; returns the transport-wide sequence number it carries.
    pub fn on_sent(&mut self, now: Instant, ssrc: u32, seq: u16, size: usize) -> u16 {
        let twcc = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.history.add_outgoing(ssrc, seq, true, twcc, size, now);
        twcc
    }

    /// A feedback packet from the viewer.
    pub fn on_feedback(&mut self, now: Instant, feedback: &TransportLayerCc) {
        for ack in convert_twcc(feedback) {
            self.history.on_twcc_feedback(now, ack);
        }
        let reports = self.history.take_reports();
        if reports.is_empty() {
            return;
        }
        self.informed.get_or_insert(now);
        self.gcc.on_reports(now, &reports);
        for r in reports.iter().filter(|r| r.arrived) {
            if self.delivered.len() == MAX_DELIVERED {
                if let Some((_, size)) = self.delivered.pop_front() {
                    self.delivered_bytes -= size;
                }
            }
            self.delivered.push_back((now, r.size));
            self.delivered_bytes += r.size;
        }
        while let Some(&(at, size)) = self.delivered.front() {
            if now.saturating_duration_since(at) < DELIVERED_WINDOW {
                break;
            }
            self.delivered.pop_front();
            self.delivered_bytes -= size;
        }
    }

    /// Bits per second acknowledged as arrived over the last second, once feedback has come
    /// for that long.
    fn delivered_bps(&self, now: Instant) -> Option<f64> {
        let since = self.informed?;
        (now.saturating_duration_since(since) >= DELIVERED_WINDOW)
            .then(|| self.delivered_bytes as f64 * 8.0 / DELIVERED_WINDOW.as_secs_f64())
    }

    /// The estimate, bits per second, once feedback said anything: GCC's target, never under
    /// what arrived over the last second.
    pub fn estimate(&self, now: Instant) -> Option<u64> {
        self.informed?;
        let floor = self.delivered_bps(now).unwrap_or(0.0);
        Some(self.gcc.target_bitrate().max(floor) as u64)
    }

    /// Forgets packets nobody will acknowledge (called about once a second).
    pub fn prune(&mut self, now: Instant) {
        if let Some(cutoff) = now.checked_sub(FORGET_AFTER) {
            self.history.prune_before(cutoff);
        }
    }

    /// GCC's own target and what arrived over the last second (for logs).
    pub fn parts(&self, now: Instant) -> (u64, Option<u64>) {
        (
            self.gcc.target_bitrate() as u64,
            self.delivered_bps(now).map(|d| d as u64),
        )
    }

    /// Packets awaiting feedback.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.history.len()
    }
}

/// The id of the transport-wide-cc header extension in a description, if it has one.
pub(crate) fn twcc_extmap(sdp: &str) -> Option<u8> {
    sdp.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("a=extmap:")?;
        let (id, uri) = rest.split_once(' ')?;
        let id = id.split('/').next()?.parse::<u8>().ok()?;
        // One-byte header extensions: ids 1 to 14.
        ((1..=14).contains(&id) && uri.trim() == TWCC_URI).then_some(id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
        PacketStatusChunk, RecvDelta, RunLengthChunk, StatusChunkTypeTcc, SymbolTypeTcc,
    };

    #[test]
    fn the_extension_id_is_read_from_the_description() {
        let sdp = format!("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=extmap:3 {TWCC_URI}\r\n");
        assert_eq!(twcc_extmap(&sdp), Some(3));
        assert_eq!(twcc_extmap(&sdp.replace(":3 ", ":5/sendonly ")), Some(5));
        assert_eq!(twcc_extmap(&sdp.replace(":3 ", ":15 ")), None);
        assert_eq!(
            twcc_extmap("v=0\r\na=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"),
            None
        );
    }

    /// Feedback saying packets `first..first+n` all arrived, `gap_us` apart.
    fn all_arrived(first: u16, n: u16, gap_us: i64, reference: u32) -> TransportLayerCc {
        TransportLayerCc {
            base_sequence_number: first,
            packet_status_count: n,
            reference_time: reference,
            packet_chunks: vec![PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                packet_status_symbol: SymbolTypeTcc::PacketReceivedSmallDelta,
                run_length: n,
            })],
            recv_deltas: (0..n)
                .map(|_| RecvDelta {
                    type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
                    delta: gap_us,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn acknowledged_packets_inform_the_estimate_and_unacknowledged_ones_are_forgotten() {
        let t0 = Instant::now();
        let mut bwe = Bwe::new(3, 2_000_000);
        assert_eq!(bwe.estimate(t0), None);
        // 100 packets of 1200 B, 4 ms apart (2.4 Mbit/s), arriving as evenly.
        for i in 0..100u16 {
            let seq = bwe.on_sent(
                t0 + Duration::from_millis(4 * u64::from(i)),
                1,
                500 + i,
                1200,
            );
            assert_eq!(seq, i);
        }
        bwe.on_feedback(
            t0 + Duration::from_millis(450),
            &all_arrived(0, 100, 4000, 0),
        );
        let e = bwe.estimate(t0).expect("an estimate once feedback came");
        assert!((1_000_000..=4_000_000).contains(&e), "{e}");
        assert_eq!(bwe.pending(), 0);
        // Never acknowledged: dropped after FORGET_AFTER.
        for i in 0..10u16 {
            bwe.on_sent(t0 + Duration::from_secs(1), 1, 600 + i, 1200);
        }
        assert_eq!(bwe.pending(), 10);
        bwe.prune(t0 + Duration::from_secs(2));
        assert_eq!(bwe.pending(), 10);
        bwe.prune(t0 + Duration::from_secs(4));
        assert_eq!(bwe.pending(), 0);
    }

    #[test]
    fn the_estimate_never_falls_under_most_of_what_arrived_in_the_last_second() {
        let t0 = Instant::now();
        let mut bwe = Bwe::new(3, 100_000);
        // 800 kbit/s arriving for two seconds: 100 packets of 1000 B every second, acknowledged
        // in batches of 10 every 100 ms, every other packet lost.
        let mut seq = 0u16;
        for batch in 0..20u64 {
            let at = t0 + Duration::from_millis(100 * batch);
            let first = seq;
            for i in 0..20u64 {
                seq = bwe.on_sent(at + Duration::from_millis(5 * i), 1, seq, 1000) + 1;
            }
            let mut fb = all_arrived(first, 20, 5000, batch as u32);
            // Every other one lost: a status vector would say so; a run of 10 received then
            // 10 lost is as good for the sums.
            fb.packet_chunks = vec![
                PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                    type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                    packet_status_symbol: SymbolTypeTcc::PacketReceivedSmallDelta,
                    run_length: 10,
                }),
                PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                    type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                    packet_status_symbol: SymbolTypeTcc::PacketNotReceived,
                    run_length: 10,
                }),
            ];
            fb.recv_deltas.truncate(10);
            bwe.on_feedback(at + Duration::from_millis(100), &fb);
        }
        let e = bwe.estimate(t0 + Duration::from_millis(2000)).unwrap();
        // Half of 1.6 Mbit/s arrived: 800 kbit/s.
        assert!((700_000..=900_000).contains(&e), "{e}");
    }
}
