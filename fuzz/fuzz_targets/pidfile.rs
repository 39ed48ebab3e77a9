//! Fuzzes `PidFile::parse`: it must never panic, every accepted file must survive
//! render → parse unchanged, and error messages must stay on one line. Also
//! `ServerReading::of` (the server's lenient reading): never panics, keeps to the
//! server's buffer, and agrees with the strict parse on every file that passes it.
#![no_main]

use interlock_format::pidfile::{PidFile, ServerReading, ShmemLine, SERVER_READ_LIMIT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let reading = ServerReading::of(data);
    assert!(reading.buffer.len() <= SERVER_READ_LIMIT);
    assert!(!reading.buffer.contains(&0));
    match PidFile::parse(data) {
        Ok(p) => {
            if data.len() <= SERVER_READ_LIMIT {
                assert_eq!(reading.pid, p.pid);
                // The same key_t (the server keeps id1 as read, only for
                // its message) and the same shmid.
                assert_eq!(
                    reading.shmem.map(|(id1, id2)| (id1 as u32 as i32, id2)),
                    p.shmem.map(|s| (s.key, s.shmid as u64))
                );
            }
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
