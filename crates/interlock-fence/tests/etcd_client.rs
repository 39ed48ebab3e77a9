//! The etcd client against a real etcd (skipped where none is installed).
#![cfg(feature = "etcd")]

use std::time::Duration;

use interlock_fence::etcd::{Client, Created, EtcdError, Renewed};
use interlock_testkit::etcd::{free_port, Etcd};

const LIMIT: Duration = Duration::from_millis(500);

#[test]
fn create_only_if_absent_renew_revoke() {
    let bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&bin);
    let c = Client::new(&etcd.endpoint).unwrap();
    let l1 = c.grant(3, LIMIT).unwrap();
    let t1 = match c
        .create_with_lease("/interlock/t", "first", l1, LIMIT)
        .unwrap()
    {
        Created::Ok { revision } => revision,
        other => panic!("{other:?}"),
    };
    assert!(t1 > 0);
    let l2 = c.grant(3, LIMIT).unwrap();
    match c
        .create_with_lease("/interlock/t", "second", l2, LIMIT)
        .unwrap()
    {
        Created::Held(h) => {
            assert_eq!(h.value, "first");
            assert_eq!(h.create_revision, t1);
            assert_eq!(h.lease, l1);
            let ttl = h.ttl_remaining.expect("a TTL");
            assert!((1..=3).contains(&ttl), "{ttl}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.keep_alive_once(l1, LIMIT).unwrap(),
        Renewed::Ttl(3)
    ));
    c.revoke(l1, LIMIT).unwrap();
    assert_eq!(c.keep_alive_once(l1, LIMIT).unwrap(), Renewed::Gone);
    let t2 = match c
        .create_with_lease("/interlock/t", "second", l2, LIMIT)
        .unwrap()
    {
        Created::Ok { revision } => revision,
        other => panic!("{other:?}"),
    };
    assert!(t2 > t1, "tokens grow: {t1} then {t2}");
}

#[test]
fn unreachable_within_the_limit() {
    let c = Client::new(&format!("127.0.0.1:{}", free_port())).unwrap();
    let start = std::time::Instant::now();
    match c.grant(3, LIMIT) {
        Err(EtcdError::Unreachable(_)) => {}
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < LIMIT * 2);
}

#[test]
fn get_prefix_is_one_range_bounded_and_in_key_order() {
    let bin = interlock_testkit::require_etcd!();
    let etcd = Etcd::start(&bin);
    let c = Client::new(&etcd.endpoint).unwrap();
    let lease = c.grant(30, LIMIT).unwrap();
    for (k, v) in [
        ("/interlock/7/srv/pg", "a"),
        ("/interlock/7/lun7", "b"),
        ("/interlock/70/x", "not under /interlock/7/"),
        ("/interlock/8/y", "another system"),
    ] {
        assert!(matches!(
            c.create_with_lease(k, v, lease, LIMIT).unwrap(),
            Created::Ok { .. }
        ));
    }
    let got = c.get_prefix("/interlock/7/", LIMIT).unwrap();
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["/interlock/7/lun7", "/interlock/7/srv/pg"]);
    let (_, h) = &got[1];
    assert_eq!(h.value, "a");
    assert_eq!(h.lease, lease);
    assert!(h.create_revision > 0);
    assert_eq!(h.ttl_remaining, None, "not read by a range");
    assert!(c.get_prefix("/interlock/9/", LIMIT).unwrap().is_empty());

    // More keys than PREFIX_MAX_KEYS: an error, not a truncated answer.
    for i in 0..=interlock_fence::etcd::PREFIX_MAX_KEYS {
        let k = format!("/interlock/5/{i}");
        c.create_with_lease(&k, "v", lease, LIMIT).unwrap();
    }
    match c.get_prefix("/interlock/5/", LIMIT) {
        Err(EtcdError::Protocol(m)) => assert!(m.contains("more than 64 keys"), "{m}"),
        other => panic!("{other:?}"),
    }
}
