//! Fuzzes the `/proc/net/tcp` parser: no panics, and every accepted table
//! keeps the same sockets when its lines are parsed one by one.
#![no_main]

use interlock_format::nettcp::parse_net_tcp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(all) = parse_net_tcp(text) {
        let mut again = Vec::new();
        for l in text.lines().skip(1) {
            let one = format!("header\n{l}\n");
            again.extend(parse_net_tcp(&one).expect("a line of an accepted table"));
        }
        assert_eq!(again, all);
    }
});
