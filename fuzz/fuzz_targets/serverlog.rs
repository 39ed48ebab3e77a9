//! Fuzzes the server-log reader and recogniser, and the host-file parsers
//! `limits` uses: no panics; every record's line is one of the input's,
//! and skipped binary lines are never also records.
#![no_main]

use interlock_format::serverlog::{parse_log, recognize};
use interlock_format::sysctl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let log = parse_log(data);
    for r in &log.records {
        assert!(r.line >= 1 && r.line <= log.lines);
        assert!(!log.binary_lines.contains(&r.line));
        let _ = recognize(r);
        let _ = r.text();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sysctl::parse_sem(text);
        let _ = sysctl::parse_meminfo(text);
        let _ = sysctl::parse_cgroup(text);
        let _ = sysctl::parse_memory_limit(text);
        let _ = sysctl::parse_logind_remove_ipc(text);
        let _ = sysctl::parse_login_defs_sys_uid_max(text);
    }
});
