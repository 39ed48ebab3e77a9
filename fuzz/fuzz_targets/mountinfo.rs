//! Fuzzes the `/proc/PID/mountinfo` parser, the mount lookup and the file
//! system tables: no panics.
#![no_main]

use interlock_format::statfs::{mount_of, network_fs_name, network_fs_type, parse_mountinfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mounts = parse_mountinfo(data);
    if let Some(m) = mount_of(&mounts, data) {
        let _ = network_fs_type(&m.fs_type);
    }
    if data.len() >= 8 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&data[..8]);
        let _ = network_fs_name(u64::from_le_bytes(b));
    }
});
