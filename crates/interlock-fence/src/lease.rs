//! Holding the fence's key in etcd: taking it ([`Lease::acquire`]) and
//! keeping it ([`Renewer`]), timed on CLOCK_MONOTONIC ([`now_ns`]) by the
//! rules of [`crate::protocol`].
//!
//! Used by [`crate::fence::Fence`] (the one call for a Rust server) and by
//! `interlock run` (`crates/interlock-cli/src/run.rs`), which adds its
//! watchdog process and stops COMMAND itself.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::etcd::{Client, Created, EtcdError, Holder, Renewed};
use crate::timing::Timing;

/// CLOCK_MONOTONIC in nanoseconds: the clock of every fence deadline (and
/// the one `interlock run` shares with its watchdog process).
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Whether the fence is due at `now_ns`: `fence_after` has passed since
/// `last_ok_ns`, the send time of the last renewal that succeeded
/// ([`crate::protocol::must_fence`], the rule the model checks, on
/// CLOCK_MONOTONIC nanoseconds).
pub fn fence_due(last_ok_ns: u64, now_ns: u64, timing: &Timing) -> bool {
    crate::protocol::must_fence(now_ns / 1_000, last_ok_ns / 1_000, timing)
}

/// The moment (CLOCK_MONOTONIC nanoseconds) at which the fence is due
/// unless a renewal sent after `last_ok_ns` succeeds.
pub fn fence_deadline_ns(last_ok_ns: u64, timing: &Timing) -> u64 {
    last_ok_ns.saturating_add(u64::try_from(timing.fence_after.as_nanos()).unwrap_or(u64::MAX))
}

/// Which request of an acquisition failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The endpoints given are not usable (before any request).
    Endpoints,
    /// Granting the lease.
    Grant,
    /// The transaction that creates the key.
    Create,
}

/// Why the key could not be taken.
#[derive(Debug)]
pub enum AcquireError {
    /// The key exists: another holder has it. Its value names the holder
    /// ([`crate::key::describe_holder`] says it in words).
    Held { key: String, holder: Holder },
    /// No etcd endpoint answered at `step` (refused, timed out...).
    Unreachable {
        key: String,
        step: Step,
        detail: String,
    },
    /// etcd answered at `step` with an error, or the endpoints are not
    /// usable.
    Etcd {
        key: String,
        step: Step,
        detail: String,
    },
}

impl AcquireError {
    fn from_etcd(key: &str, step: Step, e: EtcdError) -> AcquireError {
        let key = key.to_string();
        match e {
            EtcdError::Unreachable(detail) => AcquireError::Unreachable { key, step, detail },
            EtcdError::Protocol(detail) => AcquireError::Etcd { key, step, detail },
        }
    }
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, step, e) = match self {
            AcquireError::Held { key, holder } => {
                return write!(
                    f,
                    "{key} is held by {}",
                    crate::key::describe_holder(holder)
                )
            }
            AcquireError::Unreachable { key, step, detail } => {
                (key, step, EtcdError::Unreachable(detail.clone()))
            }
            AcquireError::Etcd { key, step, detail } => {
                (key, step, EtcdError::Protocol(detail.clone()))
            }
        };
        match step {
            Step::Endpoints => write!(f, "{e}"),
            Step::Grant => write!(f, "cannot take a lease: {e}"),
            Step::Create => write!(f, "cannot create {key}: {e}"),
        }
    }
}

impl std::error::Error for AcquireError {}

/// The key, held in etcd under a lease of ours.
#[derive(Debug)]
pub struct Lease {
    client: Client,
    id: i64,
    token: i64,
    key: String,
    granted_sent_ns: u64,
}

impl Lease {
    /// Take `key` with `value` on the etcd `endpoints` (comma-separated,
    /// as [`Client::new`] reads them): grant a lease of `timing.ttl`, then
    /// create the key bound to it only if it is absent. Each request gets
    /// `timing.renew_every`. On any failure the lease granted is revoked
    /// (or lapses).
    pub fn acquire(
        endpoints: &str,
        key: &str,
        value: &str,
        timing: &Timing,
    ) -> Result<Lease, AcquireError> {
        let client =
            Client::new(endpoints).map_err(|e| AcquireError::from_etcd(key, Step::Endpoints, e))?;
        let limit = timing.renew_every;
        // Before the grant is sent: the lease starts no earlier at etcd, so
        // counting from here never over-counts its life.
        let granted_sent_ns = now_ns();
        let id = client
            .grant(timing.ttl.as_secs() as i64, limit)
            .map_err(|e| AcquireError::from_etcd(key, Step::Grant, e))?;
        match client.create_with_lease(key, value, id, limit) {
            Ok(Created::Ok { revision }) => Ok(Lease {
                client,
                id,
                token: revision,
                key: key.to_string(),
                granted_sent_ns,
            }),
            Ok(Created::Held(holder)) => {
                let _ = client.revoke(id, limit);
                Err(AcquireError::Held {
                    key: key.to_string(),
                    holder,
                })
            }
            Err(e) => {
                let _ = client.revoke(id, limit);
                Err(AcquireError::from_etcd(key, Step::Create, e))
            }
        }
    }

    /// The fencing token: the key's create revision, larger at every
    /// acquisition of any key in that etcd.
    pub fn token(&self) -> i64 {
        self.token
    }

    /// The key held.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The lease's ID at etcd.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// CLOCK_MONOTONIC ([`now_ns`]) when the grant was sent: the lease's
    /// start, at the latest, on our clock (the first "last renewal sent").
    pub fn granted_sent_ns(&self) -> u64 {
        self.granted_sent_ns
    }

    /// The client it was taken with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Revoke the lease, which deletes the key, within `limit`.
    pub fn revoke(&self, limit: Duration) -> Result<(), EtcdError> {
        self.client.revoke(self.id, limit)
    }
}

/// What the renewer reports to its hook.
#[derive(Debug)]
pub enum RenewEvent {
    /// The renewal sent at `sent_ns` (CLOCK_MONOTONIC) succeeded: the
    /// heartbeat (the fence deadline is now `fence_after` past it).
    Renewed { sent_ns: u64 },
    /// A renewal failed; reported for the first failure after a success
    /// only.
    Failing(EtcdError),
    /// Renewed again after failures (just after its [`RenewEvent::Renewed`]).
    Recovered,
    /// The lease no longer exists at etcd (expired or revoked): the key is
    /// gone and another holder may take it. The renewer stops.
    Gone,
    /// The lease lives but the key is no longer bound to it (deleted by
    /// hand, or taken again under another lease): another holder may
    /// take it, or have it. The renewer stops.
    KeyLost,
}

/// A thread renewing a lease every `renew_every`, recording the send time
/// of the last renewal that succeeded.
#[derive(Debug)]
pub struct Renewer {
    last_ok: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Renewer {
    /// Start renewing `lease` every `timing.renew_every`, each renewal
    /// within `renew_every`. `on_event` runs on the renewer's thread for
    /// each [`RenewEvent`]; it should be quick (a renewal waits for it).
    pub fn start(
        lease: &Lease,
        timing: &Timing,
        on_event: impl FnMut(RenewEvent) + Send + 'static,
    ) -> std::io::Result<Renewer> {
        let last_ok = Arc::new(AtomicU64::new(lease.granted_sent_ns));
        let done = Arc::new(AtomicBool::new(false));
        let client = lease.client.clone();
        let (id, timing, key) = (lease.id, *timing, lease.key.clone());
        let (l, d) = (last_ok.clone(), done.clone());
        let thread = std::thread::Builder::new()
            .name("interlock-fence-renewer".into())
            .spawn(move || renew_loop(&client, id, &key, &timing, &l, &d, on_event))?;
        Ok(Renewer {
            last_ok,
            done,
            thread: Some(thread),
        })
    }

    /// The send time (CLOCK_MONOTONIC nanoseconds) of the last renewal
    /// that succeeded, updated as they do (the grant's, at first).
    pub fn last_ok(&self) -> &Arc<AtomicU64> {
        &self.last_ok
    }

    /// Stop renewing: the renewal in flight, if any, ends within
    /// `renew_every`.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// What one renewal came to.
enum Renewal {
    /// Renewed, and the key still bound to the lease (read through a
    /// quorum).
    Confirmed,
    /// The lease is gone at etcd.
    LeaseGone,
    /// The lease lives, the key is not bound to it.
    KeyLost,
}

/// Renew every `renew_every`. A renewal counts (its send time becomes
/// `last_ok`) only when the keep-alive succeeded **and** a linearizable
/// read after it finds the key still bound to our lease, both within
/// `renew_every` of the send: the keep-alive alone can be granted by a
/// leader that has lost its quorum (see [`Client::key_lease`]), and the
/// key can be deleted while the lease lives. Requiring both only makes
/// successes rarer, which the protocol's model already allows (a renewal
/// that fails or whose answer is lost).
fn renew_loop(
    client: &Client,
    id: i64,
    key: &str,
    timing: &Timing,
    last_ok: &AtomicU64,
    done: &AtomicBool,
    mut on_event: impl FnMut(RenewEvent),
) {
    let every = timing.renew_every.as_nanos() as u64;
    let mut next = last_ok.load(Ordering::SeqCst) + every;
    let mut failing = false;
    while !done.load(Ordering::SeqCst) {
        let now = now_ns();
        if now < next {
            // Woken early by `Renewer::finish` (unpark); a spurious wake
            // only loops.
            std::thread::park_timeout(Duration::from_nanos(next - now));
            continue;
        }
        let sent = now_ns();
        next = sent + every;
        let renewed = (|| -> Result<Renewal, EtcdError> {
            if let Renewed::Gone = client.keep_alive_once(id, timing.renew_every)? {
                return Ok(Renewal::LeaseGone);
            }
            let spent = Duration::from_nanos(now_ns().saturating_sub(sent));
            let left = timing.renew_every.saturating_sub(spent);
            if left.is_zero() {
                return Err(EtcdError::Unreachable(
                    "renewed, but no time left to confirm it with a quorum read".into(),
                ));
            }
            Ok(match client.key_lease(key, left)? {
                Some(lease) if lease == id => Renewal::Confirmed,
                _ => Renewal::KeyLost,
            })
        })();
        match renewed {
            Ok(Renewal::KeyLost) => {
                on_event(RenewEvent::KeyLost);
                return;
            }
            Ok(Renewal::Confirmed) => {
                last_ok.fetch_max(sent, Ordering::SeqCst);
                on_event(RenewEvent::Renewed { sent_ns: sent });
                if failing {
                    on_event(RenewEvent::Recovered);
                    failing = false;
                }
            }
            Ok(Renewal::LeaseGone) => {
                // Nothing more to renew.
                on_event(RenewEvent::Gone);
                return;
            }
            Err(e) => {
                if !failing {
                    on_event(RenewEvent::Failing(e));
                    failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_is_due_after_fence_after() {
        // TTL 3 s: fence_after is 1 s.
        let t = Timing::for_ttl(Duration::from_secs(3));
        assert_eq!(t.fence_after, Duration::from_secs(1));
        let s = 1_000_000_000;
        assert!(!fence_due(s, s + 999_999_999, &t));
        assert!(fence_due(s, s + 1_000_000_000, &t));
        assert_eq!(fence_deadline_ns(s, &t), 2 * s);
    }

    #[test]
    fn errors_say_the_step() {
        let e = AcquireError::from_etcd("/k", Step::Grant, EtcdError::Unreachable("x".into()));
        assert_eq!(e.to_string(), "cannot take a lease: etcd unreachable: x");
        let e = AcquireError::from_etcd("/k", Step::Create, EtcdError::Protocol("y".into()));
        assert_eq!(e.to_string(), "cannot create /k: etcd error: y");
        let e = AcquireError::from_etcd("/k", Step::Endpoints, EtcdError::Protocol("z".into()));
        assert_eq!(e.to_string(), "etcd error: z");
    }

    #[test]
    fn the_clock_moves_on() {
        let a = now_ns();
        std::thread::sleep(Duration::from_millis(2));
        assert!(now_ns() >= a + 2_000_000);
    }
}
