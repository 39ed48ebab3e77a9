//! Fuzzes the DSM control segment parser and file names: no panics, and every accepted
//! segment survives render → parse unchanged.
#![no_main]

use interlock_format::dsm::{
    dsm_file_name, parse_dsm_control, parse_dsm_file_name, render_dsm_control,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ctl) = parse_dsm_control(data) {
        let rendered = render_dsm_control(&ctl);
        assert_eq!(rendered.len(), data.len());
        assert_eq!(parse_dsm_control(&rendered), Ok(ctl.clone()));
        let live = ctl.live_segment_handles();
        assert!(live.len() <= ctl.items.len());
    }
    if let Ok(name) = std::str::from_utf8(data) {
        if let Some(handle) = parse_dsm_file_name(name) {
            assert_eq!(dsm_file_name(handle), name);
        }
    }
});
