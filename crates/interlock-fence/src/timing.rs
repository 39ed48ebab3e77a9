//! The fence's time constants, shared by the code and by the protocol's
//! model: change one here and the model checks the new value.
//!
//! A holder's lease lives `ttl` at etcd, counted on etcd's clock from the
//! moment etcd handled the last renewal. The holder renews every
//! [`Timing::renew_every`], and counts from the moment it *sent* the last
//! renewal that succeeded (earlier than etcd's, so never later). Its clock
//! may run slower than etcd's by at most [`MAX_CLOCK_DRIFT_PPM`]. It
//! self-fences — stops its server — once [`Timing::fence_after`] has passed
//! on its clock without a successful renewal: early enough that, even with
//! that drift and the time the stop takes ([`Timing::stop_within`]), the
//! server is gone before the lease can lapse at etcd and another host can
//! take it.

use std::time::Duration;

/// How much slower than etcd's clock a holder's monotonic clock may run,
/// in parts per million (NTP-disciplined clocks stay within 500 ppm; this
/// allows ten times that).
pub const MAX_CLOCK_DRIFT_PPM: u64 = 5_000;

/// The default lease time-to-live.
pub const DEFAULT_TTL: Duration = Duration::from_secs(6);

/// The shortest lease the fence accepts: etcd grants no less than
/// `2 * heartbeat` (1 s by default), and below this the margins leave no
/// time to renew.
pub const MIN_TTL: Duration = Duration::from_secs(3);

/// The timing of one fence, derived from its TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The lease's time-to-live at etcd.
    pub ttl: Duration,
    /// How often the holder renews.
    pub renew_every: Duration,
    /// How long the holder goes on without a successful renewal before it
    /// stops its server.
    pub fence_after: Duration,
    /// How long stopping the server may take, at most: SIGQUIT, then
    /// SIGKILL of its process group after this grace.
    pub stop_within: Duration,
}

impl Timing {
    /// The timing for a lease of `ttl` (at least [`MIN_TTL`]): renew every
    /// `ttl / 6`, self-fence after `ttl / 3` without a renewal (one missed
    /// renewal is tolerated; from a quorum loss the server is stopped
    /// within `ttl / 2`), the stop done within `ttl / 6`. The remaining
    /// half of the TTL, less the drift, is the safety margin.
    pub fn for_ttl(ttl: Duration) -> Timing {
        let ttl = ttl.max(MIN_TTL);
        Timing {
            ttl,
            renew_every: ttl / 6,
            fence_after: ttl / 3,
            stop_within: ttl / 6,
        }
    }

    /// The time, on the holder's clock, by which its server is surely
    /// stopped after the last renewal it sent: fence, then stop.
    pub fn stopped_by(&self) -> Duration {
        self.fence_after + self.stop_within
    }

    /// The shortest the lease can last at etcd after that renewal was
    /// sent, measured on the holder's clock when it runs slow by the
    /// maximum drift.
    pub fn lease_lasts_at_least(&self) -> Duration {
        let ttl = self.ttl.as_micros() as u64;
        Duration::from_micros(ttl - ttl * MAX_CLOCK_DRIFT_PPM / 1_000_000)
    }

    /// Whether the server is stopped before the lease can lapse, with room
    /// to spare (the safety margin).
    pub fn margin(&self) -> Option<Duration> {
        self.lease_lasts_at_least().checked_sub(self.stopped_by())
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing::for_ttl(DEFAULT_TTL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ttl_leaves_a_margin() {
        for secs in [1, 3, 5, 6, 10, 30, 120] {
            let t = Timing::for_ttl(Duration::from_secs(secs));
            let m = t.margin().expect("a margin");
            assert!(m >= t.ttl / 4, "{t:?}: margin {m:?}");
            assert!(t.renew_every * 2 <= t.fence_after, "{t:?}");
            assert!(t.stopped_by() <= t.ttl / 2, "{t:?}");
        }
        assert_eq!(Timing::for_ttl(Duration::from_secs(1)).ttl, MIN_TTL);
    }
}
