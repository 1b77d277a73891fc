//! The bitrate hint of a stream: what its slowest viewer's receiver estimate (REMB) says the
//! stream may send, reported to the host when it moves enough to matter and not more than once a
//! second, so a host can adapt its encoder without being flooded. Sans-IO: time is passed in.

use std::time::{Duration, Instant};

/// Least time between two hints of one stream.
pub(crate) const HINT_INTERVAL: Duration = Duration::from_secs(1);
/// Relative change below which a new estimate is not worth a hint.
const HINT_CHANGE: f64 = 0.10;

/// Decides when a stream's bitrate hint is reported.
#[derive(Debug, Default)]
pub(crate) struct BitrateHint {
    last: Option<(u64, Instant)>,
}

impl BitrateHint {
    /// The slowest viewer's estimate is now `bps`: returns the hint to report, if any.
    pub(crate) fn update(&mut self, bps: u64, now: Instant) -> Option<u64> {
        if let Some((last, at)) = self.last {
            let change = (bps as f64 - last as f64).abs() / (last.max(1) as f64);
            if change < HINT_CHANGE || now.duration_since(at) < HINT_INTERVAL {
                return None;
            }
        }
        self.last = Some((bps, now));
        Some(bps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_estimate_is_reported_then_only_changes_over_10_percent_once_a_second() {
        let t0 = Instant::now();
        let mut h = BitrateHint::default();
        assert_eq!(h.update(2_000_000, t0), Some(2_000_000));
        // Too soon, however large the change.
        assert_eq!(h.update(500_000, t0 + Duration::from_millis(500)), None);
        // Late enough but within 10%.
        assert_eq!(h.update(2_150_000, t0 + Duration::from_secs(2)), None);
        // Late enough and large enough, up or down.
        assert_eq!(
            h.update(1_000_000, t0 + Duration::from_secs(2)),
            Some(1_000_000)
        );
        assert_eq!(
            h.update(3_000_000, t0 + Duration::from_secs(3)),
            Some(3_000_000)
        );
    }
}
