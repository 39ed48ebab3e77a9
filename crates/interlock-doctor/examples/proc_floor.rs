//! The floor `interlock status` is measured against in
//! `scripts/bench-status`: read every `/proc/PID/stat` once, and nothing
//! else (no maps, no segment table). A diagnosis that names the holders of
//! a data directory cannot do less on a host where it must look at every
//! process.

use std::io::Read;

fn main() {
    let mut buf = Vec::with_capacity(1024);
    let mut n = 0usize;
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = e.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        buf.clear();
        if let Ok(mut f) = std::fs::File::open(e.path().join("stat")) {
            if f.read_to_end(&mut buf).is_ok() {
                n += 1;
            }
        }
    }
    println!("{n}");
}
