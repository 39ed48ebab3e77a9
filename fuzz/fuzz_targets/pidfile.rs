//! Fuzzes `PidFile::parse`: it must never panic, every accepted file must survive
//! render → parse unchanged, and error messages must stay on one line.
#![no_main]

use interlock_format::pidfile::{PidFile, ShmemLine};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match PidFile::parse(data) {
        Ok(p) => {
            let rendered = p.render();
            assert_eq!(PidFile::parse(&rendered), Ok(p.clone()));
            assert_eq!(
                usize::from(p.line_count),
                rendered.iter().filter(|b| **b == b'\n').count()
            );
            assert!(p.owner_pid() > 0);
        }
        Err(e) => assert!(!e.to_string().contains('\n')),
    }
    if let Ok(line) = ShmemLine::parse(data) {
        assert_eq!(ShmemLine::parse(line.render().as_bytes()), Ok(line));
    }
});
