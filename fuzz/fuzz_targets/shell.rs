//! Fuzzes the shell quoting: every word quotes to one line without control
//! characters that parses back (through `unquote`, the parser of exactly the
//! forms `quote_bytes` writes) to the same bytes; `display` is one line too.
#![no_main]

use interlock_format::shell::{display_bytes, quote_bytes, unquote};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let q = quote_bytes(data);
    assert!(!q.chars().any(char::is_control));
    assert_eq!(unquote(&q).as_deref(), Some(data));
    assert!(!display_bytes(data).chars().any(char::is_control));
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = unquote(s);
    }
});
