//! Fuzzes the `/proc/PID/maps` parsers: no panics, render → parse is the identity, and the
//! non-allocating fast path agrees with the full attachment scan.
#![no_main]

use interlock_format::maps::{
    maps_mentions_shmid, parse_maps_line, shared_mappings, sysv_attachments, sysv_key_of,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|b| *b == b'\n') {
        if let Ok(m) = parse_maps_line(line) {
            assert_eq!(parse_maps_line(&m.render()), Ok(m));
        }
    }
    let _ = sysv_key_of(data);
    for (_, shmid) in sysv_attachments(data) {
        assert!(maps_mentions_shmid(data, shmid));
    }
    let _ = maps_mentions_shmid(data, 0);
    // Every attachment counted is one the scan also reports.
    for m in shared_mappings(data).sysv {
        assert!(maps_mentions_shmid(data, m.shmid));
    }
});
