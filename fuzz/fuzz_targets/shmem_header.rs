//! Fuzzes `ShmemHeader::parse`: no panics, and render → parse is the identity.
#![no_main]

use interlock_format::shmem_header::{ShmemHeader, HEADER_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match ShmemHeader::parse(data) {
        Ok(h) => {
            assert!(data.len() >= HEADER_SIZE);
            assert_eq!(ShmemHeader::parse(&h.render()), Ok(h));
            let _ = h.matches(h.device, h.inode);
        }
        Err(_) => assert!(data.len() < HEADER_SIZE),
    }
});
