//! Fuzzes the `NETLINK_SOCK_DIAG` reply parser: no panics on any datagram,
//! and a reply accepted for IPv4 lists as many sockets for IPv6 or fails
//! (the family changes only how addresses are read, and an IPv6 address
//! fits in every accepted message).
#![no_main]

use interlock_format::nettcp::parse_inet_diag_reply;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&seq, rest)) = data.split_first() else {
        return;
    };
    let seq = u32::from(seq % 4);
    let v4 = parse_inet_diag_reply(rest, seq, false);
    let v6 = parse_inet_diag_reply(rest, seq, true);
    match (v4, v6) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.sockets.len(), b.sockets.len());
            assert_eq!(a.done, b.done);
        }
        (Err(_), Err(_)) => {}
        _ => panic!("the family changed whether a reply parses"),
    }
});
