//! The one-call fence (`interlock_fence::fence::Fence`) against a real etcd
//! (Debian's etcd-server, one member on loopback; skipped where it is not
//! installed). TTL 3 s: renew every 0.5 s, lost after 1 s without a
//! renewal. The data directory is a temporary directory with a fake
//! pg_control (`interlock_testkit::fake_cluster`).
#![cfg(feature = "etcd")]

use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use interlock_fence::etcd::Client;
use interlock_fence::fence::{Fence, FenceError, FenceOptions, Lost, LostReason};
use interlock_fence::key::{describe_holder, this_host, HolderValue, FENCE_FILE};
use interlock_fence::lease::{AcquireError, Step};
use interlock_fence::timing::Timing;
use interlock_testkit::etcd::{free_port, Etcd};
use rustix::process::Signal;

const TTL: Duration = Duration::from_secs(3);
/// Scheduling slack on a loaded test machine.
const SLACK: Duration = Duration::from_millis(700);
const LIMIT: Duration = Duration::from_millis(500);

fn opts(etcd: &str) -> FenceOptions {
    FenceOptions::new(etcd).name("api").ttl(TTL)
}

/// An `on_lost` that sends the loss, and when it came, to the test.
fn reporter() -> (
    impl FnOnce(Lost) + Send + 'static,
    mpsc::Receiver<(Lost, Instant)>,
) {
    let (tx, rx) = mpsc::channel();
    (
        move |l: Lost| {
            let _ = tx.send((l, Instant::now()));
        },
        rx,
    )
}

/// SIGCONT to the etcd when dropped, even when the test fails.
struct Continue(i32);

impl Drop for Continue {
    fn drop(&mut self) {
        interlock_testkit::signal(self.0, Signal::CONT);
    }
}

#[test]
fn acquire_refuse_release_and_again_with_a_larger_token() {
    let bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&bin);
    let data = interlock_testkit::fake_cluster();
    let (on_lost, lost) = reporter();
    let fence = Fence::acquire(data.path(), &opts(&etcd.endpoint), on_lost).unwrap();
    let token = fence.token();
    assert!(token > 0);
    assert!(fence.key().starts_with("/interlock/") && fence.key().ends_with("/api"));
    assert!(fence.is_valid());
    assert_eq!(fence.timing(), Timing::for_ttl(TTL));

    // The key holds our value, and the token is its create revision.
    let c = Client::new(&etcd.endpoint).unwrap();
    let h = c.get(fence.key(), LIMIT).unwrap().expect("the key");
    assert_eq!(h.create_revision, token);
    assert_eq!(h.lease, fence.lease_id());
    let v = HolderValue::parse(&h.value);
    assert_eq!(v.pid, Some(std::process::id()));
    assert_eq!(v.host, this_host());
    assert_eq!(&v, fence.holder());
    let file = std::fs::read_to_string(data.path().join(FENCE_FILE)).unwrap();
    assert!(
        file.starts_with(&format!("token {token}\nkey {}\n", fence.key())),
        "{file}"
    );

    // Renewed past the TTL: still held.
    std::thread::sleep(TTL + Duration::from_millis(500));
    assert!(fence.is_valid());
    assert!(c.get(fence.key(), LIMIT).unwrap().is_some());

    // A second holder is refused, naming the first.
    let (on_lost2, _) = reporter();
    match Fence::acquire(data.path(), &opts(&etcd.endpoint), on_lost2) {
        Err(FenceError::Acquire(e @ AcquireError::Held { .. })) => {
            let AcquireError::Held { key, holder } = &e else {
                unreachable!()
            };
            assert_eq!(key, fence.key());
            let words = describe_holder(holder);
            assert!(
                words.contains(&format!("PID {}, token {token}", std::process::id())),
                "{words}"
            );
            assert!(e.to_string().contains(" is held by host "), "{e}");
        }
        other => panic!("{other:?}"),
    }

    // Released: the key is gone at once; taken again with a larger token.
    let key = fence.key().to_string();
    fence.release().unwrap();
    assert_eq!(c.get(&key, LIMIT).unwrap(), None);
    assert!(lost.try_recv().is_err(), "on_lost ran");
    let (on_lost, _) = reporter();
    let again = Fence::acquire(data.path(), &opts(&etcd.endpoint), on_lost).unwrap();
    assert!(
        again.token() > token,
        "tokens grow: {token} then {}",
        again.token()
    );
    drop(again); // released on drop too
    assert_eq!(c.get(&key, LIMIT).unwrap(), None);
}

#[test]
fn etcd_stopped_on_lost_within_fence_after() {
    let bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&bin);
    let data = interlock_testkit::fake_cluster();
    let timing = Timing::for_ttl(TTL);
    let (on_lost, lost) = reporter();
    let fence = Fence::acquire(data.path(), &opts(&etcd.endpoint), on_lost).unwrap();
    std::thread::sleep(Duration::from_millis(700)); // a renewal or two
    assert!(fence.is_valid());
    let stopped = Instant::now();
    interlock_testkit::signal(etcd.pid(), Signal::STOP);
    let _cont = Continue(etcd.pid());
    // The last renewal that succeeded was sent before the stop: the
    // deadline is at most fence_after after it.
    let (l, at) = lost
        .recv_timeout(timing.fence_after + SLACK)
        .expect("on_lost in time");
    let took = at - stopped;
    eprintln!("on_lost {took:?} after etcd was stopped: {l}");
    assert!(took <= timing.fence_after + SLACK, "{took:?}");
    assert!(!fence.is_valid());
    assert_eq!(l.token, fence.token());
    assert_eq!(l.key, fence.key());
    match l.reason {
        LostReason::NotRenewed { since_last_renewal } => {
            assert!(
                since_last_renewal >= timing.fence_after,
                "{since_last_renewal:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(l.to_string().contains("lease not renewed for "), "{l}");
    // etcd does not answer: the lease cannot be revoked, it lapses.
    match fence.release() {
        Err(e @ FenceError::Revoke(..)) => assert!(e.to_string().contains("lapses within 3 s")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn lease_revoked_elsewhere_on_lost_at_the_next_renewal() {
    let bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&bin);
    let data = interlock_testkit::fake_cluster();
    let timing = Timing::for_ttl(TTL);
    let (on_lost, lost) = reporter();
    let fence = Fence::acquire(data.path(), &opts(&etcd.endpoint), on_lost).unwrap();
    let revoked = Instant::now();
    Client::new(&etcd.endpoint)
        .unwrap()
        .revoke(fence.lease_id(), LIMIT)
        .unwrap();
    let (l, at) = lost
        .recv_timeout(timing.renew_every + SLACK)
        .expect("on_lost at the next renewal");
    eprintln!("on_lost {:?} after the revocation: {l}", at - revoked);
    assert_eq!(l.reason, LostReason::LeaseGone);
    assert!(!fence.is_valid());
    // Nothing left to revoke.
    fence.release().unwrap();
}

#[test]
fn refused_without_etcd_or_below_the_minimum_ttl() {
    let data = interlock_testkit::fake_cluster();
    let nowhere = format!("127.0.0.1:{}", free_port());
    let start = Instant::now();
    match Fence::acquire(data.path(), &opts(&nowhere), |_| {}) {
        Err(FenceError::Acquire(
            e @ AcquireError::Unreachable {
                step: Step::Grant, ..
            },
        )) => assert!(e
            .to_string()
            .starts_with("cannot take a lease: etcd unreachable: ")),
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < Timing::for_ttl(TTL).renew_every * 2);
    assert!(!data.path().join(FENCE_FILE).exists());

    let short = opts(&nowhere).ttl(Duration::from_secs(1));
    assert!(matches!(
        Fence::acquire(data.path(), &short, |_| {}),
        Err(FenceError::TtlTooShort(_))
    ));
    let empty = tempfile::tempdir().unwrap();
    match Fence::acquire(empty.path(), &opts(&nowhere), |_| {}) {
        Err(e @ FenceError::Datadir(_)) => {
            assert!(e.to_string().contains("global/pg_control"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

/// The child of `acquire_or_abort_kills_the_process`: run only when the
/// test re-executes this binary with `INTERLOCK_FENCE_CHILD` set to the
/// etcd endpoint and the data directory.
#[test]
fn child_holding_with_acquire_or_abort() {
    let Ok(spec) = std::env::var("INTERLOCK_FENCE_CHILD") else {
        return;
    };
    let (endpoint, data) = spec.split_once(' ').unwrap();
    let fence = Fence::acquire_or_abort(std::path::Path::new(data), &opts(endpoint)).unwrap();
    println!("token {}", fence.token());
    std::thread::sleep(Duration::from_secs(60));
    panic!("not killed");
}

#[test]
fn acquire_or_abort_kills_the_process() {
    let bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&bin);
    let data = interlock_testkit::fake_cluster();
    let timing = Timing::for_ttl(TTL);
    let logs = tempfile::tempdir().unwrap();
    let err = logs.path().join("stderr");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holding_with_acquire_or_abort",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "INTERLOCK_FENCE_CHILD",
            format!("{} {}", etcd.endpoint, data.path().display()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let mut c = interlock_testkit::Cleanup::for_dir(data.path());
    c.pid(child.id() as i32);
    interlock_testkit::wait_until("the child to take the fence", || {
        std::fs::read_to_string(data.path().join(FENCE_FILE)).is_ok()
    });
    std::thread::sleep(Duration::from_millis(700));
    let stopped = Instant::now();
    interlock_testkit::signal(etcd.pid(), Signal::STOP);
    let _cont = Continue(etcd.pid());
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            stopped.elapsed() < timing.fence_after + SLACK,
            "the child still runs"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    eprintln!(
        "child killed {:?} after etcd was stopped",
        stopped.elapsed()
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(
        stderr.contains("lease not renewed for ")
            && stderr.contains("SIGKILL to this process (self-fence)"),
        "{stderr}"
    );
}
