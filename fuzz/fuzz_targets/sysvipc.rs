//! Fuzzes the `/proc/sysvipc/shm` parsers: no panics, and whatever parses renders to text
//! that parses back to the same entries.
#![no_main]

use interlock_format::sysvipc::{parse_shm_line, parse_shm_table, render_shm_table};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(entries) = parse_shm_table(text) {
        // Rows with exactly one of rss/swap cannot be produced by the parser.
        assert_eq!(parse_shm_table(&render_shm_table(&entries)), Ok(entries));
    }
    if let Ok(entry) = parse_shm_line(text) {
        assert_eq!(parse_shm_line(&entry.render()), Ok(entry));
    }
});
