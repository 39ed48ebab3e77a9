//! Property tests for `interlock-format`: every writer round-trips through its parser, and
//! no parser panics on arbitrary or mutated input.
//!
//! Round trips are checked on generated values that satisfy each type's documented invariants
//! (for `PidFile`: consistent `line_count`/`status`, no newline or NUL in strings), because
//! those are exactly the values the parsers can produce. "Never panics" is checked both on
//! random bytes and on valid renderings with random edits, which reach far deeper into the
//! parsers than random bytes alone.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use interlock_format::dsm::{
    dsm_file_name, parse_dsm_control, parse_dsm_file_name, render_dsm_control, DsmControl, DsmItem,
};
use interlock_format::fencefile::{FenceFile, MAX_FENCE_FILE_SIZE};
use interlock_format::maps::{
    maps_mentions_shmid, parse_maps_line, sysv_attachments, sysv_key_of, MapsLine,
};
use interlock_format::pidfile::{PidFile, PmStatus, ShmemLine};
use interlock_format::procstat::{parse_boot_time, parse_proc_stat, parse_proc_status};
use interlock_format::shmem_header::ShmemHeader;
use interlock_format::sysvipc::{parse_shm_line, parse_shm_table, render_shm_table, ShmEntry};
use proptest::prelude::*;

/// Bytes of a path line: non-empty, no newline, no NUL.
fn path_bytes() -> impl Strategy<Value = PathBuf> {
    prop::collection::vec(
        any::<u8>().prop_filter("no newline or NUL", |b| *b != b'\n' && *b != 0),
        1..40,
    )
    .prop_map(|v| PathBuf::from(OsStr::from_bytes(&v)))
}

fn status() -> impl Strategy<Value = PmStatus> {
    prop::sample::select(PmStatus::ALL.to_vec())
}

fn shmem_line() -> impl Strategy<Value = ShmemLine> {
    (any::<i32>(), 0..=i32::MAX).prop_map(|(key, shmid)| ShmemLine { key, shmid })
}

prop_compose! {
    fn pid_file()(
        pid in prop_oneof![1..=i32::MAX, (i32::MIN + 1)..=-1],
        data_dir in path_bytes(),
        start_time in any::<i64>(),
        port in any::<u16>(),
        socket_dir in prop::option::of(path_bytes()),
        line_count in 5u8..=8,
        listen_addr in prop::option::of("[^\n\u{0}]{1,24}"),
        shmem in prop::option::of(shmem_line()),
        status in status(),
    ) -> PidFile {
        PidFile {
            pid,
            data_dir,
            start_time,
            port,
            socket_dir,
            listen_addr: if line_count >= 6 { listen_addr } else { None },
            shmem: if line_count >= 7 { shmem } else { None },
            status: (line_count == 8).then_some(status),
            line_count,
        }
    }
}

prop_compose! {
    fn shm_entry()(
        key in any::<i32>(),
        shmid in any::<i32>(),
        mode in any::<u32>(),
        size in any::<u64>(),
        cpid in 0..=i32::MAX,
        lpid in 0..=i32::MAX,
        nattch in any::<u64>(),
        ids in any::<[u32; 4]>(),
        times in any::<[i64; 3]>(),
        rss_swap in prop::option::of(any::<(u64, u64)>()),
    ) -> ShmEntry {
        ShmEntry {
            key, shmid, mode, size, cpid, lpid, nattch,
            uid: ids[0], gid: ids[1], cuid: ids[2], cgid: ids[3],
            atime: times[0], dtime: times[1], ctime: times[2],
            rss: rss_swap.map(|(r, _)| r),
            swap: rss_swap.map(|(_, s)| s),
        }
    }
}

prop_compose! {
    fn dsm_control()(
        item_size in prop::sample::select(vec![24usize, 40]),
        maxitems in 1u32..200,
    )(
        items in prop::collection::vec(any::<(u32, u32)>(), 0..=maxitems as usize),
        item_size in Just(item_size),
        maxitems in Just(maxitems),
    ) -> DsmControl {
        DsmControl {
            nitems: items.len() as u32,
            maxitems,
            item_size,
            items: items.into_iter().map(|(handle, refcnt)| DsmItem { handle, refcnt }).collect(),
        }
    }
}

/// Random edits to a byte string: overwrite, insert, delete, truncate.
fn mutate(mut bytes: Vec<u8>, edits: Vec<(u8, usize, u8)>) -> Vec<u8> {
    for (kind, pos, value) in edits {
        let at = if bytes.is_empty() {
            0
        } else {
            pos % (bytes.len() + 1)
        };
        match kind % 4 {
            0 if at < bytes.len() => bytes[at] = value,
            1 => bytes.insert(at, value),
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            3 => bytes.truncate(at),
            _ => {}
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(u8, usize, u8)>> {
    prop::collection::vec(
        (
            any::<u8>(),
            any::<usize>(),
            prop_oneof![
                Just(b'\n'),
                Just(b' '),
                Just(b'-'),
                Just(b'0'),
                Just(b'9'),
                Just(b')'),
                any::<u8>()
            ],
        ),
        0..6,
    )
}

/// A named shared mapping as the kernel prints it.
fn sysv_maps_line(start: u64, inode: u64, name: &str) -> Vec<u8> {
    let (path, deleted) = match name.strip_suffix(" (deleted)") {
        Some(p) => (p, true),
        None => (name, false),
    };
    MapsLine {
        start,
        end: start + 4096,
        perms: *b"rw-s",
        offset: 0,
        dev_major: 0,
        dev_minor: 1,
        inode,
        path: Some(path.as_bytes().to_vec()),
        deleted,
    }
    .render()
}

prop_compose! {
    /// A record as the holders write it: a positive token and PID, values
    /// without control characters (`\PC`: no character of Unicode's
    /// category C), spaces included (a key holds a path).
    fn fence_file()(
        token in 1..=i64::MAX,
        key in "\\PC{0,60}",
        host in "\\PC{0,20}",
        boot_id in "[0-9a-f-]{0,36}",
        pid in prop::option::of(1..=u32::MAX),
        since in "\\PC{0,24}",
    ) -> FenceFile {
        FenceFile { token, key, host, boot_id, pid, since }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn fence_file_round_trip(f in fence_file()) {
        let text = f.render();
        prop_assert!(text.len() <= MAX_FENCE_FILE_SIZE);
        prop_assert_eq!(FenceFile::parse(text.as_bytes()), Ok(f));
    }

    #[test]
    fn fence_file_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(f) = FenceFile::parse(&bytes) {
            prop_assert_eq!(FenceFile::parse(f.render().as_bytes()), Ok(f));
        }
    }

    #[test]
    fn fence_file_mutations_never_panic(f in fence_file(), e in edits()) {
        let bytes = mutate(f.render().into_bytes(), e);
        match FenceFile::parse(&bytes) {
            Ok(g) => prop_assert_eq!(FenceFile::parse(g.render().as_bytes()), Ok(g)),
            Err(err) => {
                let shown = err.to_string();
                prop_assert!(!shown.contains('\n'), "unescaped newline in {}", shown);
            }
        }
    }

    #[test]
    fn pidfile_round_trip(p in pid_file()) {
        let bytes = p.render();
        prop_assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), usize::from(p.line_count));
        let parsed = PidFile::parse(&bytes);
        prop_assert_eq!(parsed.as_ref(), Ok(&p));
        prop_assert_eq!(parsed.unwrap().render(), bytes);
    }

    #[test]
    fn pidfile_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(p) = PidFile::parse(&bytes) {
            prop_assert_eq!(PidFile::parse(&p.render()), Ok(p));
        }
    }

    #[test]
    fn pidfile_mutations_never_panic(p in pid_file(), e in edits()) {
        let bytes = mutate(p.render(), e);
        match PidFile::parse(&bytes) {
            Ok(q) => prop_assert_eq!(PidFile::parse(&q.render()), Ok(q)),
            Err(err) => {
                let shown = err.to_string();
                prop_assert!(!shown.contains('\n'), "unescaped newline in {}", shown);
            }
        }
    }

    #[test]
    fn shm_table_round_trip(entries in prop::collection::vec(shm_entry(), 0..8)) {
        let text = render_shm_table(&entries);
        prop_assert_eq!(parse_shm_table(&text), Ok(entries.clone()));
        for entry in &entries {
            prop_assert_eq!(parse_shm_line(&entry.render()), Ok(entry.clone()));
        }
    }

    #[test]
    fn shm_table_never_panics(text in "[ -~\n]{0,400}", entries in prop::collection::vec(shm_entry(), 1..3), e in edits()) {
        let _ = parse_shm_table(&text);
        let _ = parse_shm_line(&text);
        let mutated = mutate(render_shm_table(&entries).into_bytes(), e);
        let _ = parse_shm_table(&String::from_utf8_lossy(&mutated));
    }

    #[test]
    fn shmem_header_round_trip(
        magic in any::<i32>(), creator_pid in any::<i32>(), total_size in any::<u64>(),
        free_offset in any::<u64>(), dsm_control in any::<u32>(), index in any::<u64>(),
        device in any::<u64>(), inode in any::<u64>(),
    ) {
        let h = ShmemHeader { magic, creator_pid, total_size, free_offset, dsm_control, index, device, inode };
        prop_assert_eq!(ShmemHeader::parse(&h.render()), Ok(h));
        let interlock = ShmemHeader::new_interlock(creator_pid, device, inode);
        prop_assert!(ShmemHeader::parse(&interlock.render()).unwrap().matches(device, inode));
    }

    #[test]
    fn shmem_header_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
        if let Ok(h) = ShmemHeader::parse(&bytes) {
            prop_assert_eq!(ShmemHeader::parse(&h.render()), Ok(h));
        }
    }

    #[test]
    fn dsm_round_trip(ctl in dsm_control()) {
        let bytes = render_dsm_control(&ctl);
        prop_assert_eq!(bytes.len(), 16 + ctl.maxitems as usize * ctl.item_size);
        prop_assert_eq!(parse_dsm_control(&bytes), Ok(ctl.clone()));
        let live = ctl.live_segment_handles();
        prop_assert!(live.len() <= ctl.items.len());
        if ctl.item_size == 40 {
            prop_assert!(live.iter().all(|h| h % 2 == 0));
        }
    }

    #[test]
    fn dsm_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400), ctl in dsm_control(), e in edits()) {
        if let Ok(c) = parse_dsm_control(&bytes) {
            prop_assert_eq!(parse_dsm_control(&render_dsm_control(&c)), Ok(c));
        }
        let mutated = mutate(render_dsm_control(&ctl), e);
        if let Ok(c) = parse_dsm_control(&mutated) {
            prop_assert_eq!(parse_dsm_control(&render_dsm_control(&c)), Ok(c));
        }
    }

    #[test]
    fn dsm_file_name_round_trip(handle in 1..=u32::MAX, junk in ".{0,20}") {
        prop_assert_eq!(parse_dsm_file_name(&dsm_file_name(handle)), Some(handle));
        let _ = parse_dsm_file_name(&junk);
    }

    #[test]
    fn maps_line_round_trip(
        start in any::<u64>(), end in any::<u64>(),
        perms in (prop::sample::select(vec![b'r', b'-']), prop::sample::select(vec![b'w', b'-']),
                  prop::sample::select(vec![b'x', b'-']), prop::sample::select(vec![b's', b'p'])),
        offset in any::<u64>(), major in any::<u32>(), minor in any::<u32>(), inode in any::<u64>(),
        name in prop::option::of("[/\\[][ -~]{0,40}".prop_filter("kernel never prints this", |n: &String| !n.ends_with(" (deleted)"))),
        deleted in any::<bool>(),
    ) {
        let name_is_some = name.is_some();
        let m = MapsLine {
            start, end,
            perms: [perms.0, perms.1, perms.2, perms.3],
            offset, dev_major: major, dev_minor: minor, inode,
            path: name.map(String::into_bytes),
            deleted: deleted && name_is_some,
        };
        let text = m.render();
        prop_assert_eq!(text.last(), Some(&b'\n'));
        prop_assert_eq!(parse_maps_line(&text), Ok(m));
    }

    #[test]
    fn sysv_attachments_found_by_fast_path(
        segs in prop::collection::vec((any::<u32>(), 0..=i32::MAX, any::<bool>()), 0..6),
        noise in prop::collection::vec("[ -~]{0,60}", 0..4),
    ) {
        let mut text = Vec::new();
        for (i, (key, shmid, deleted)) in segs.iter().enumerate() {
            let name = format!("/SYSV{key:08x}{}", if *deleted { " (deleted)" } else { "" });
            text.extend(sysv_maps_line(0x7f00_0000_0000 + i as u64 * 4096, *shmid as u64, &name));
            if let Some(n) = noise.get(i) {
                text.extend_from_slice(n.as_bytes());
                text.push(b'\n');
            }
        }
        let found: Vec<(i32, i32)> = sysv_attachments(&text).collect();
        let mut expected: Vec<(i32, i32)> = segs.iter().map(|(k, id, _)| (*k as i32, *id)).collect();
        expected.dedup_by_key(|(_, id)| *id);
        // Noise lines are printable garbage and may themselves parse as attachments.
        for pair in &expected {
            prop_assert!(found.contains(pair));
        }
        for (key, shmid) in &found {
            prop_assert!(maps_mentions_shmid(&text, *shmid));
            prop_assert_eq!(sysv_key_of(format!("/SYSV{:08x}", *key as u32).as_bytes()), Some(*key));
        }
    }

    #[test]
    fn maps_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), shmid in any::<i32>()) {
        let _ = parse_maps_line(&bytes);
        let _ = sysv_key_of(&bytes);
        let found: Vec<_> = sysv_attachments(&bytes).collect();
        for (_, id) in found {
            prop_assert!(maps_mentions_shmid(&bytes, id));
        }
        let _ = maps_mentions_shmid(&bytes, shmid);
    }

    #[test]
    fn proc_stat_round_trip(
        pid in 0..=i32::MAX,
        comm in prop::collection::vec(any::<u8>(), 0..32),
        state in prop::sample::select(b"RSDZTtXIP".to_vec()),
        ppid in any::<i32>(), pgrp in any::<i32>(), session in any::<i32>(), tty_nr in any::<i32>(),
        num_threads in any::<i64>(), start in any::<u64>(),
    ) {
        let mut text = format!("{pid} (").into_bytes();
        text.extend_from_slice(&comm);
        text.extend_from_slice(format!(
            ") {} {ppid} {pgrp} {session} {tty_nr} -1 4194304 1 2 3 4 5 6 7 8 20 0 {num_threads} 0 {start} 3133440 375\n",
            state as char
        ).as_bytes());
        let s = parse_proc_stat(&text).unwrap();
        prop_assert_eq!(s.pid, pid);
        prop_assert_eq!(&s.comm, &comm);
        prop_assert_eq!(s.state, state);
        prop_assert_eq!((s.ppid, s.pgrp, s.session, s.tty_nr), (ppid, pgrp, session, tty_nr));
        prop_assert_eq!(s.num_threads, num_threads);
        prop_assert_eq!(s.start_time_ticks, start);
    }

    #[test]
    fn procstat_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_proc_stat(&bytes);
        let _ = parse_proc_status(&bytes);
        let _ = parse_boot_time(&bytes);
    }

    #[test]
    fn proc_status_mutations_never_panic(e in edits()) {
        let text = b"Name:\tpostgres\nState:\tS (sleeping)\nPPid:\t1\nUid:\t1\t2\t3\t4\nGid:\t5\t6\t7\t8\nNSpid:\t9\t10\n".to_vec();
        let _ = parse_proc_status(&mutate(text, e));
    }
}

/// Bytes of a word: any but NUL (an argument cannot hold one), with the
/// quoting's special cases (quotes, backslashes, controls, non-UTF-8) common.
fn shell_word() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(1u8..=255, 0..24),
        prop::collection::vec(
            prop::sample::select(b"a/ '\"\\$`\n\t\x1b\x7f\xff\xc2\x9b!*?~#=-".to_vec()),
            0..16
        ),
        "\\PC{0,12}".prop_map(String::into_bytes),
    ]
}

/// Whether `bash` can be run here (the round-trip test skips itself if not).
fn have_bash() -> bool {
    std::process::Command::new("bash")
        .args(["-c", "exit 0"])
        .status()
        .is_ok_and(|s| s.success())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// What bash makes of a quoted word is exactly the original bytes, and
    /// the quoted form is one line without control characters.
    #[test]
    fn shell_quote_round_trips_through_bash(word in shell_word()) {
        use interlock_format::shell::{quote_bytes, unquote};
        let q = quote_bytes(&word).into_owned();
        prop_assert!(!q.chars().any(char::is_control), "{q:?}");
        let back = unquote(&q);
        prop_assert_eq!(back.as_deref(), Some(&word[..]));
        if have_bash() {
            let out = std::process::Command::new("bash")
                .arg("-c")
                .arg(format!("printf %s {q}"))
                .output()
                .unwrap();
            prop_assert!(out.status.success(), "{q:?}: {:?}", out);
            prop_assert_eq!(&out.stdout, &word, "{}", q);
        }
    }

    /// `display` is one line without control characters, and changes text
    /// without them not at all.
    #[test]
    fn shell_display_is_one_line(word in shell_word()) {
        use interlock_format::shell::display_bytes;
        let d = display_bytes(&word);
        prop_assert!(!d.chars().any(char::is_control), "{d:?}");
        if let Ok(s) = std::str::from_utf8(&word) {
            if !s.chars().any(char::is_control) {
                prop_assert_eq!(&*d, s);
            }
        }
    }
}
