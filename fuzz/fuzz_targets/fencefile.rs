//! Fuzzes `FenceFile::parse` (`interlock.fence`): it must never panic, an
//! accepted file must survive render → parse unchanged and keep the
//! parser's bounds, and error messages must stay on one line.
#![no_main]

use interlock_format::fencefile::{FenceFile, MAX_FENCE_FILE_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match FenceFile::parse(data) {
        Ok(f) => {
            assert!(data.len() <= MAX_FENCE_FILE_SIZE);
            assert!(f.token > 0 && f.pid != Some(0));
            let rendered = f.render();
            assert_eq!(FenceFile::parse(rendered.as_bytes()), Ok(f));
        }
        Err(e) => assert!(!e.to_string().contains('\n')),
    }
});
