//! Fuzzes the pg_control parser: no panics; an accepted file's CRC verdict
//! is the CRC-32C of the bytes before the stored CRC. And the startup
//! check of every major: no panics; a file it accepts parses, with a good
//! CRC and that major's version.
#![no_main]

use interlock_format::pgcontrol::{control_version_of, crc32c, parse_pg_control, startup_refusal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = parse_pg_control(data) {
        // The CRC sits at 280 (11), 288 (10, 12–17) or 292 (18).
        assert!([280, 288, 292]
            .iter()
            .any(|&at| data.len() >= at + 4 && crc32c(&data[..at]) == c.crc_computed));
        let _ = c.state.name();
        let _ = c.state.crash_recovery_on_start();
    }
    for major in 10..=18 {
        if startup_refusal(data, major).is_none() {
            let c = parse_pg_control(data).expect("accepted at startup, so it parses");
            assert!(c.crc_ok());
            assert_eq!(Some(c.pg_control_version), control_version_of(major));
        }
    }
});
