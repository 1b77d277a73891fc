//! Which rendition of its stream's ladder a viewer gets, in one place: its bandwidth estimate
//! against the renditions' bitrates, with hysteresis so that it neither flaps nor lingers.
//!
//! - **Down**, one step, when the estimate has stayed under [`DOWN_RATIO`] of the current
//!   rendition's bitrate for [`DOWN_AFTER`]; again a second later if it is still under. One step
//!   at a time because the estimate is at its worst right after congestion (a viewer that
//!   started far above its link lost most of its packets) and a jump by that figure lands below
//!   what the link carries. One false congestion signal (a delay spike on a busy machine) lowers
//!   a GCC estimate to ~0.85 of the received rate, above the ratio, so it moves nobody.
//! - **Up**, one step, when the estimate has held at [`UP_RATIO`] of the next better rendition's
//!   bitrate for the up delay, which starts at [`UP_AFTER`] and doubles (to [`UP_AFTER_MAX`])
//!   each time a step up is undone within [`FAILED_UP_WITHIN`]: a sender-side estimate keeps
//!   growing on a path it does not fill, so an estimate "above" a rendition is a guess until it
//!   has been tried, and a guess that failed is tried less often.
//! - **Fixed** when the viewer asked for a rendition (Flussonic's `request_tracks`): no
//!   automatic moves until it asks for automatic again.

use std::time::{Duration, Instant};

/// Share of the current rendition's bitrate under which the estimate means "it does not fit".
pub(crate) const DOWN_RATIO: f64 = 0.8;
/// How long the estimate must stay under it.
pub(crate) const DOWN_AFTER: Duration = Duration::from_secs(1);
/// Multiple of the better rendition's bitrate the estimate must hold to step up.
pub(crate) const UP_RATIO: f64 = 1.3;
/// How long it must hold it, at first.
pub(crate) const UP_AFTER: Duration = Duration::from_secs(8);
/// The longest the up delay grows to after failed steps up.
pub(crate) const UP_AFTER_MAX: Duration = Duration::from_secs(120);
/// A step down this soon after a step up means the step up failed.
pub(crate) const FAILED_UP_WITHIN: Duration = Duration::from_secs(30);

/// How a viewer's rendition is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// From its bandwidth estimate.
    Auto,
    /// The rendition it asked for.
    Fixed(usize),
}

/// One viewer's rendition choice.
#[derive(Debug)]
pub(crate) struct Chooser {
    mode: Mode,
    under_since: Option<Instant>,
    above_since: Option<Instant>,
    up_after: Duration,
    last_up: Option<Instant>,
}

impl Chooser {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            under_since: None,
            above_since: None,
            up_after: UP_AFTER,
            last_up: None,
        }
    }

    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        self.under_since = None;
        self.above_since = None;
    }

    /// A new estimate (bits per second) while the viewer has rendition `current` of `ladder`
    /// (bitrates, best first): the rendition it should move to, if any.
    pub fn update(
        &mut self,
        now: Instant,
        estimate: u64,
        current: usize,
        ladder: &[u32],
    ) -> Option<usize> {
        let last = ladder.len().checked_sub(1)?;
        let current = current.min(last);
        if let Mode::Fixed(want) = self.mode {
            let want = want.min(last);
            return (want != current).then_some(want);
        }
        let estimate = estimate as f64;
        let bitrate = |i: usize| f64::from(ladder.get(i).copied().unwrap_or(0));

        if current < last && estimate < bitrate(current) * DOWN_RATIO {
            self.above_since = None;
            let since = *self.under_since.get_or_insert(now);
            if now.saturating_duration_since(since) < DOWN_AFTER {
                return None;
            }
            self.under_since = None;
            if self
                .last_up
                .is_some_and(|t| now.saturating_duration_since(t) < FAILED_UP_WITHIN)
            {
                self.up_after = (self.up_after * 2).min(UP_AFTER_MAX);
            }
            self.last_up = None;
            return Some(current + 1);
        }
        self.under_since = None;

        if current > 0 && estimate >= bitrate(current - 1) * UP_RATIO {
            let since = *self.above_since.get_or_insert(now);
            if now.saturating_duration_since(since) < self.up_after {
                return None;
            }
            self.above_since = None;
            self.last_up = Some(now);
            return Some(current - 1);
        }
        self.above_since = None;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LADDER: [u32; 3] = [2_000_000, 600_000, 200_000];

    /// Feeds `estimate` every 100 ms for `secs` seconds from `t`; returns the first move and when.
    fn feed(
        c: &mut Chooser,
        t: &mut Instant,
        secs: f64,
        estimate: u64,
        current: usize,
    ) -> Option<(usize, Duration)> {
        let start = *t;
        for _ in 0..(secs * 10.0) as usize {
            if let Some(to) = c.update(*t, estimate, current, &LADDER) {
                return Some((to, *t - start));
            }
            *t += Duration::from_millis(100);
        }
        None
    }

    #[test]
    fn a_viewer_whose_estimate_falls_moves_down_a_step_a_second() {
        let mut c = Chooser::new(Mode::Auto);
        let mut t = Instant::now();
        assert_eq!(feed(&mut c, &mut t, 5.0, 2_500_000, 0), None);
        // An 800 kbit/s link: GCC backs off to ~0.85 of what arrives.
        let (to, after) = feed(&mut c, &mut t, 5.0, 680_000, 0).unwrap();
        assert_eq!(to, 1);
        assert_eq!(after, DOWN_AFTER);
        // Too little even for v2: one step, then the next a second later.
        let mut c = Chooser::new(Mode::Auto);
        assert_eq!(
            feed(&mut c, &mut t, 5.0, 150_000, 0).unwrap(),
            (1, DOWN_AFTER)
        );
        assert_eq!(
            feed(&mut c, &mut t, 5.0, 150_000, 1).unwrap(),
            (2, DOWN_AFTER)
        );
    }

    #[test]
    fn one_back_off_of_a_congestion_controller_moves_nobody() {
        let mut c = Chooser::new(Mode::Auto);
        let mut t = Instant::now();
        // 0.85 of 2.1 Mbit/s received, for several seconds while it climbs back.
        assert_eq!(feed(&mut c, &mut t, 4.0, 1_790_000, 0), None);
        // A dip under the ratio shorter than DOWN_AFTER, then recovery.
        assert_eq!(feed(&mut c, &mut t, 0.5, 1_000_000, 0), None);
        assert_eq!(feed(&mut c, &mut t, 2.0, 2_200_000, 0), None);
        assert_eq!(feed(&mut c, &mut t, 0.5, 1_000_000, 0), None);
    }

    #[test]
    fn up_one_step_after_holding_above_and_less_often_after_a_failed_step() {
        let mut c = Chooser::new(Mode::Auto);
        let mut t = Instant::now();
        // v3 → v2 needs 1.3 x 600 kbit/s held for UP_AFTER.
        assert_eq!(feed(&mut c, &mut t, 3.0, 700_000, 2), None);
        let (to, after) = feed(&mut c, &mut t, 20.0, 3_000_000, 2).unwrap();
        assert_eq!((to, after), (1, UP_AFTER));
        let (to, after) = feed(&mut c, &mut t, 20.0, 3_000_000, 1).unwrap();
        assert_eq!((to, after), (0, UP_AFTER));
        // v1 did not fit after all: down, and the next step up waits twice as long.
        assert_eq!(feed(&mut c, &mut t, 5.0, 700_000, 0).unwrap().0, 1);
        let (to, after) = feed(&mut c, &mut t, 40.0, 3_000_000, 1).unwrap();
        assert_eq!((to, after), (0, UP_AFTER * 2));
    }

    #[test]
    fn a_fixed_choice_holds_whatever_the_estimate() {
        let mut c = Chooser::new(Mode::Fixed(1));
        let mut t = Instant::now();
        assert_eq!(c.update(t, 10_000_000, 0, &LADDER), Some(1));
        assert_eq!(feed(&mut c, &mut t, 30.0, 10_000_000, 1), None);
        assert_eq!(feed(&mut c, &mut t, 30.0, 50_000, 1), None);
        // Out of range: the lowest there is.
        c.set_mode(Mode::Fixed(7));
        assert_eq!(c.update(t, 0, 1, &LADDER), Some(2));
        c.set_mode(Mode::Auto);
        assert_eq!(feed(&mut c, &mut t, 2.0, 50_000, 1).unwrap().0, 2);
    }

    #[test]
    fn a_ladder_of_one_never_moves() {
        let mut c = Chooser::new(Mode::Auto);
        let mut t = Instant::now();
        for e in [0, 1_000, 100_000_000] {
            t += Duration::from_secs(60);
            assert_eq!(c.update(t, e, 0, &[1_000_000]), None);
        }
    }
}
