//! How long to wait before retrying work that failed: exponential growth to a
//! cap, with jitter so that many targets which failed together (one outage,
//! one restart) do not all retry in the same instant.

use std::time::Duration;

/// An exponential backoff: `base` doubling with each failure in a row, never
/// above `max`, each wait drawn at random from the upper half of that ceiling
/// ("equal jitter": waits still grow, but retries spread out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling after the first failure.
    pub base: Duration,
    /// The largest ceiling, however many failures in a row.
    pub max: Duration,
}

impl Backoff {
    /// A backoff from `base` doubling up to `max`.
    #[must_use]
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// The longest wait after `failures` failures in a row (counted from 0
    /// for the first): `base * 2^failures`, at most `max`.
    #[must_use]
    pub fn ceiling(&self, failures: u32) -> Duration {
        // Past 2^20 any sensible base is beyond any sensible cap.
        self.base.saturating_mul(1 << failures.min(20)).min(self.max)
    }

    /// The wait after `failures` failures in a row: at random between half of
    /// [`Backoff::ceiling`] and the ceiling itself.
    #[must_use]
    pub fn delay(&self, failures: u32) -> Duration {
        let ceiling = self.ceiling(failures);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));

    #[test]
    fn the_ceiling_doubles_up_to_its_cap() {
        assert_eq!(RETRY.ceiling(0), Duration::from_secs(1));
        assert_eq!(RETRY.ceiling(3), Duration::from_secs(8));
        assert_eq!(RETRY.ceiling(4), Duration::from_secs(16));
        assert_eq!(RETRY.ceiling(5), Duration::from_secs(30));
        assert_eq!(RETRY.ceiling(50), Duration::from_secs(30));
        assert_eq!(RETRY.ceiling(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn each_delay_lies_in_the_upper_half_of_its_ceiling() {
        for failures in [0, 1, 3, 5, 50] {
            let ceiling = RETRY.ceiling(failures);
            for _ in 0..200 {
                let d = RETRY.delay(failures);
                assert!(
                    d >= ceiling / 2 && d <= ceiling,
                    "{d:?} outside [{:?}, {ceiling:?}]",
                    ceiling / 2
                );
            }
        }
    }

    #[test]
    fn delays_are_spread_not_identical() {
        let delays: std::collections::HashSet<Duration> = (0..50).map(|_| RETRY.delay(4)).collect();
        assert!(delays.len() > 10, "only {} distinct delays in 50", delays.len());
    }
}
