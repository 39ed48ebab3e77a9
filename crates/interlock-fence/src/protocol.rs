//! The holder's decisions, pure: no I/O, no clock. Times are microseconds
//! on the holder's monotonic clock, passed in by the caller (the code that
//! renews, and the model in `tests/model.rs`, which calls these same
//! functions).
//!
//! The holder counts from the moment it *sent* the last renewal that
//! succeeded: etcd handled it no earlier, so the lease lives at least `ttl`
//! (less the drift) past that moment. A renewal whose response is lost or
//! late changes nothing until the response arrives: the holder keeps
//! counting from its previous success (conservative).

use crate::timing::Timing;

/// Microseconds on the holder's monotonic clock.
pub type Micros = u64;

fn micros(d: std::time::Duration) -> Micros {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Whether the holder must self-fence (stop its server) at `now`, its last
/// successful renewal having been sent at `last_ok_sent`.
pub fn must_fence(now: Micros, last_ok_sent: Micros, timing: &Timing) -> bool {
    now >= fence_deadline(last_ok_sent, timing)
}

/// The moment, on the holder's clock, at which it fences unless a renewal
/// sent later succeeds. The keeper enforces the same deadline from the
/// heartbeats it receives.
pub fn fence_deadline(last_ok_sent: Micros, timing: &Timing) -> Micros {
    last_ok_sent.saturating_add(micros(timing.fence_after))
}

/// The moment by which a stop begun at `fenced_at` is done (SIGQUIT, then
/// SIGKILL of the process group).
pub fn stop_deadline(fenced_at: Micros, timing: &Timing) -> Micros {
    fenced_at.saturating_add(micros(timing.stop_within))
}

/// The next renewal is due `renew_every` after the last one sent.
pub fn next_renewal_at(last_sent: Micros, timing: &Timing) -> Micros {
    last_sent.saturating_add(micros(timing.renew_every))
}

/// The holder's renewal state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Holder {
    /// When the last renewal that succeeded was sent (the acquisition
    /// transaction counts as the first).
    pub last_ok_sent: Micros,
    /// When the last renewal was sent, successful or not.
    pub last_sent: Micros,
}

impl Holder {
    /// A holder whose acquisition transaction, sent at `sent_at`,
    /// succeeded.
    pub fn acquired(sent_at: Micros) -> Holder {
        Holder {
            last_ok_sent: sent_at,
            last_sent: sent_at,
        }
    }

    /// Records a renewal sent at `now`.
    pub fn renewal_sent(&mut self, now: Micros) {
        self.last_sent = self.last_sent.max(now);
    }

    /// Records the result of the renewal sent at `sent_at`. On success,
    /// returns the new `last_ok_sent` to send to the keeper as its
    /// heartbeat; a late success for an older renewal never moves the
    /// count backwards.
    pub fn on_renewal_result(&mut self, sent_at: Micros, ok: bool) -> Option<Micros> {
        if ok && sent_at > self.last_ok_sent {
            self.last_ok_sent = sent_at;
            Some(sent_at)
        } else {
            None
        }
    }

    /// When the next renewal is due.
    pub fn next_renewal_at(&self, timing: &Timing) -> Micros {
        next_renewal_at(self.last_sent, timing)
    }

    /// Whether the holder must fence at `now`.
    pub fn must_fence(&self, now: Micros, timing: &Timing) -> bool {
        must_fence(now, self.last_ok_sent, timing)
    }

    /// When the holder fences unless a renewal succeeds first.
    pub fn fence_deadline(&self, timing: &Timing) -> Micros {
        fence_deadline(self.last_ok_sent, timing)
    }
}

/// The keeper's view: the `last_ok_sent` of the last heartbeat received.
/// It enforces the holder's deadline when the holder is dead or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Keeper {
    /// From the last heartbeat (or the acquisition).
    pub last_ok_sent: Micros,
}

impl Keeper {
    /// Records a heartbeat; an older one never moves the deadline back.
    pub fn on_heartbeat(&mut self, last_ok_sent: Micros) {
        self.last_ok_sent = self.last_ok_sent.max(last_ok_sent);
    }

    /// Whether the keeper must stop the server at `now`.
    pub fn must_fence(&self, now: Micros, timing: &Timing) -> bool {
        must_fence(now, self.last_ok_sent, timing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: Micros = 1_000_000;

    #[test]
    fn fences_at_the_deadline_and_not_before() {
        let t = Timing::for_ttl(Duration::from_secs(6));
        assert!(!must_fence(10 * S + 2 * S - 1, 10 * S, &t));
        assert!(must_fence(12 * S, 10 * S, &t));
        assert_eq!(stop_deadline(12 * S, &t), 13 * S);
    }

    #[test]
    fn counts_from_the_last_success_sent() {
        let t = Timing::for_ttl(Duration::from_secs(6));
        let mut h = Holder::acquired(0);
        assert_eq!(h.next_renewal_at(&t), S);
        h.renewal_sent(S);
        assert_eq!(h.next_renewal_at(&t), 2 * S);
        // Lost or failed: the count goes on from the acquisition.
        assert_eq!(h.on_renewal_result(S, false), None);
        assert!(h.must_fence(2 * S, &t));
        h.renewal_sent(2 * S);
        assert_eq!(h.on_renewal_result(2 * S, true), Some(2 * S));
        assert!(!h.must_fence(3 * S, &t));
        assert_eq!(h.fence_deadline(&t), 4 * S);
        // A late success for an older renewal does not move it back.
        assert_eq!(h.on_renewal_result(S, true), None);
        assert_eq!(h.last_ok_sent, 2 * S);
    }

    #[test]
    fn keeper_keeps_the_latest_heartbeat() {
        let t = Timing::for_ttl(Duration::from_secs(6));
        let mut k = Keeper { last_ok_sent: 0 };
        k.on_heartbeat(3 * S);
        k.on_heartbeat(S);
        assert_eq!(k.last_ok_sent, 3 * S);
        assert!(!k.must_fence(4 * S, &t));
        assert!(k.must_fence(5 * S, &t));
    }
}
