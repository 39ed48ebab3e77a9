//! Fuzzes the `/proc/PID/stat`, `/proc/PID/status`, `/proc/stat` and pidfd
//! `fdinfo` parsers: no panics.
#![no_main]

use interlock_format::procstat::{
    parse_boot_time, parse_pidfd_fdinfo, parse_proc_stat, parse_proc_status,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(stat) = parse_proc_stat(data) {
        let _ = stat.is_zombie();
    }
    let _ = parse_proc_status(data);
    let _ = parse_boot_time(data);
    let _ = parse_pidfd_fdinfo(data);
});
