use super::*;
use crate::{HowKnown, Manager};
use std::os::unix::fs::PermissionsExt;

const BTIME: i64 = 1_700_000_000;
/// A PID above any pid_max, so that the real kill(pid, 0) says ESRCH.
const DEAD_PID: i32 = 2_000_000_000;

struct Fixture {
    _root: tempfile::TempDir,
    data: PathBuf,
    opts: StatusOptions,
    shmid: i32,
    key: i32,
}

/// A temporary root holding `data`, a data directory of `major` (mode
/// 0700, `PG_VERSION`, a `global/pg_control` in state `state`).
fn data_dir_of(
    major: u32,
    state: interlock_format::pgcontrol::DbState,
) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    fs::create_dir_all(data.join("global")).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(data.join("PG_VERSION"), format!("{major}\n")).unwrap();
    fs::write(
        data.join("global/pg_control"),
        interlock_format::pgcontrol::minimal_control_file(major, state).unwrap(),
    )
    .unwrap();
    (root, data)
}

/// A data directory whose server was killed; its checkpointer (a name
/// with spaces and parentheses, stopped) is still attached to the
/// segment on line 7. /proc and /dev/shm are fixture trees; the
/// segment table has octal permissions.
fn fixture() -> Fixture {
    let (root, data) = data_dir_of(16, interlock_format::pgcontrol::DbState::InProduction);
    let m = fs::metadata(&data).unwrap();
    let uid = m.uid();
    let key = pg::key_for_inode(m.ino()).0;
    let shmid = 65538;
    fs::write(
        data.join("postmaster.pid"),
        format!(
            "{DEAD_PID}\n{}\n{}\n5432\n/tmp\n*\n{:>9} {:>9}\nready   \n",
            data.display(),
            BTIME + 100,
            key as i64 as u64,
            shmid
        ),
    )
    .unwrap();

    let proc_root = root.path().join("proc");
    fs::create_dir_all(proc_root.join("sysvipc")).unwrap();
    fs::write(
        proc_root.join("stat"),
        format!("cpu 1 2 3\nbtime {BTIME}\n"),
    )
    .unwrap();
    fs::write(
        proc_root.join("sysvipc/shm"),
        format!(
            "{}{key:>10} {shmid:>10}  1600 {:>21} {:>5} {:>5} {:>6} {uid:>5} {uid:>5} {uid:>5} {uid:>5} {:>10} {:>10} {:>10} {:>21} {:>21}\n",
            interlock_format::sysvipc::SHM_TABLE_HEADER,
            56, 4241, 4242, 1, BTIME + 100, 0, BTIME + 100, 4096, 0
        ),
    )
    .unwrap();
    let p = proc_root.join("4242");
    fs::create_dir_all(&p).unwrap();
    let hz = rustix::param::clock_ticks_per_second() as i64;
    fs::write(
        p.join("stat"),
        format!(
            "4242 (postgres: a (b) ) T 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {} \
             228147200 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
            100 * hz
        ),
    )
    .unwrap();
    fs::write(
        p.join("status"),
        format!(
            "Name:\tpostgres: a (b) \nState:\tT (stopped)\nPPid:\t1\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t0\t0\t0\t0\nNSpid:\t4242\n"
        ),
    )
    .unwrap();
    fs::write(p.join("cmdline"), b"postgres: checkpointer \0").unwrap();
    fs::write(
        p.join("maps"),
        format!(
            "7f2b61b05000-7f2b61b06000 rw-s 00000000 00:01 {shmid}                      /SYSV{:08x} (deleted)\n",
            key as u32
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(&data, p.join("cwd")).unwrap();

    let dev_shm = root.path().join("dev/shm");
    fs::create_dir_all(&dev_shm).unwrap();
    fs::write(dev_shm.join("PostgreSQL.77"), vec![0u8; 4096]).unwrap();
    let old = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: BTIME,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: BTIME,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        dev_shm.join("PostgreSQL.77"),
        &old,
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();

    let opts = StatusOptions {
        root: crate::HostRoot::new(root.path()),
        ..StatusOptions::default()
    };
    Fixture {
        _root: root,
        data,
        opts,
        shmid,
        key,
    }
}

#[test]
fn a_stopped_orphan_blocks_with_the_servers_message() {
    let f = fixture();
    let r = status(&f.data, &f.opts).unwrap();
    assert_eq!(r.verdict, Verdict::Blocked);
    assert_eq!(
        r.postgres_would_say.as_deref(),
        Some(format!(
            "pre-existing shared memory block (key {}, ID {}) is still in use",
            f.key as i64 as u64, f.shmid
        ))
        .as_deref()
    );
    assert_eq!(r.lock_file.identity, Some(Identity::Gone));
    assert_eq!(r.holders.len(), 1);
    let h = &r.holders[0].process;
    assert_eq!((h.pid, h.state), (4242, ProcState::Stopped));
    assert_eq!(h.role.map(|r| r.name()), Some("checkpointer"));
    assert_eq!(h.start_time, BTIME + 100);
    let codes: Vec<Code> = r.findings.iter().map(|f| f.code).collect();
    assert!(codes.contains(&Code::OrphanedHolders), "{codes:?}");
    assert!(codes.contains(&Code::StaleLockFile), "{codes:?}");
    assert!(codes.contains(&Code::LeakedDsm), "{codes:?}");
    // Attributed without attaching: the holder works in this directory.
    assert_eq!(r.segments[0].belongs, Whose::ThisDirectory);
    assert!(r.segments[0].evidence.contains("works in this directory"));
    assert!(
        r.remedy.iter().any(|s| s.contains("kill -CONT 4242")),
        "{:?}",
        r.remedy
    );
    assert!(!r.safe_to_start);
}

#[test]
fn once_the_orphan_is_gone_it_will_start_and_recycle_the_segment() {
    let f = fixture();
    let root = f.opts.root.procfs().root().to_path_buf();
    fs::remove_dir_all(root.join("4242")).unwrap();
    let table = fs::read_to_string(root.join("sysvipc/shm")).unwrap();
    // nattch 1 -> 0
    let table = table.replacen("     1 ", "     0 ", 1);
    fs::write(root.join("sysvipc/shm"), table).unwrap();
    let r = status(&f.data, &f.opts).unwrap();
    assert_eq!(r.verdict, Verdict::WillStart, "{:#?}", r.findings);
    assert!(r.safe_to_start);
    assert_eq!(r.postgres_would_say, None);
    assert!(
        r.probe
            .outcome
            .contains(&format!("finds segment ID {} at key", f.shmid)),
        "{}",
        r.probe.outcome
    );
}

#[test]
fn a_segment_owned_by_another_user_is_foreign() {
    let f = fixture();
    let root = f.opts.root.procfs().root().to_path_buf();
    let uid = fs::metadata(&f.data).unwrap().uid();
    let table = fs::read_to_string(root.join("sysvipc/shm")).unwrap();
    // uid and cuid 100000 (above 16 bits), mode 0600.
    let other = 100_000u32;
    assert_ne!(uid, other);
    let table = table.replace(
        &format!(" {uid:>5} {uid:>5} {uid:>5} {uid:>5} "),
        &format!(" {other:>5} {uid:>5} {other:>5} {uid:>5} "),
    );
    fs::write(root.join("sysvipc/shm"), table).unwrap();
    let r = status(&f.data, &f.opts).unwrap();
    assert_eq!(r.verdict, Verdict::WillStart, "{:#?}", r.findings);
    assert!(r.findings.iter().any(|x| x.code == Code::SegmentForeign));
    assert!(r.findings.iter().any(|x| x.code == Code::KeyCollision));
}

/// What holds the first key of a PostgreSQL 10 directory (port 5999, key
/// 5999001) in [`old_minor_fixture`].
struct AtFirstKey {
    /// The kernel's `shm_cpid`.
    cpid: i32,
    /// Attached processes; a holder (PID 4242, working elsewhere) is
    /// visible when 1.
    nattch: u64,
    /// The segment's first bytes, readable through the holder's memory;
    /// `None`: its memory cannot be read.
    header: Option<[u8; interlock_format::shmem_header::HEADER_SIZE]>,
}

const OLD_FIRST_KEY: i32 = 5_999_001;
const HOLDER: i32 = 4242;

/// A stopped PostgreSQL 10 directory, no lock file, whose first key is
/// taken by segment ID 77 of the directory's owner (mode 0600, 4096 bytes),
/// diagnosed as `status --port 5999 --postgres P` where P says `version`.
fn old_minor_fixture(version: &str, at: AtFirstKey) -> (tempfile::TempDir, PathBuf, StatusOptions) {
    let (root, data) = data_dir_of(10, interlock_format::pgcontrol::DbState::ShutDown);
    let uid = fs::metadata(&data).unwrap().uid();

    let postgres = root.path().join("postgres");
    fs::write(
        &postgres,
        format!("#!/bin/sh\necho 'postgres (PostgreSQL) {version}'\n"),
    )
    .unwrap();
    fs::set_permissions(&postgres, fs::Permissions::from_mode(0o755)).unwrap();
    // A fork in another test thread may still hold the file open for
    // writing for a moment (ETXTBSY): wait until it runs.
    for _ in 0..100 {
        match std::process::Command::new(&postgres).output() {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error()) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            _ => break,
        }
    }

    let proc_root = root.path().join("proc");
    fs::create_dir_all(proc_root.join("sysvipc")).unwrap();
    fs::write(
        proc_root.join("stat"),
        format!("cpu 1 2 3\nbtime {BTIME}\n"),
    )
    .unwrap();
    let shmid = 77;
    fs::write(
        proc_root.join("sysvipc/shm"),
        format!(
            "{}{OLD_FIRST_KEY:>10} {shmid:>10}   600 {:>21} {:>5} {:>5} {:>6} {uid:>5} {uid:>5} {uid:>5} {uid:>5} {:>10} {:>10} {:>10} {:>21} {:>21}\n",
            interlock_format::sysvipc::SHM_TABLE_HEADER,
            4096, at.cpid, HOLDER, at.nattch, BTIME + 100, 0, BTIME + 100, 4096, 0
        ),
    )
    .unwrap();
    let elsewhere = root.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    for pid in [HOLDER].into_iter().filter(|_| at.nattch > 0) {
        let p = proc_root.join(pid.to_string());
        fs::create_dir_all(&p).unwrap();
        let hz = rustix::param::clock_ticks_per_second() as i64;
        fs::write(
            p.join("stat"),
            format!(
                "{pid} (someapp) S 1 {pid} {pid} 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {} \
                 228147200 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
                100 * hz
            ),
        )
        .unwrap();
        fs::write(
            p.join("status"),
            format!(
                "Name:\tsomeapp\nState:\tS (sleeping)\nPPid:\t1\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t0\t0\t0\t0\nNSpid:\t{pid}\n"
            ),
        )
        .unwrap();
        fs::write(p.join("cmdline"), b"someapp\0").unwrap();
        fs::write(
            p.join("maps"),
            format!(
                "00010000-00011000 rw-s 00000000 00:01 {shmid}                      /SYSV{:08x}\n",
                OLD_FIRST_KEY as u32
            ),
        )
        .unwrap();
        if let Some(header) = at.header {
            let mut mem = vec![0u8; 0x11000];
            mem[0x10000..0x10000 + header.len()].copy_from_slice(&header);
            fs::write(p.join("mem"), mem).unwrap();
        }
        std::os::unix::fs::symlink(&elsewhere, p.join("cwd")).unwrap();
    }
    let opts = StatusOptions {
        postgres: Some(postgres),
        port: Some(5999),
        root: crate::HostRoot::new(root.path()),
        ..StatusOptions::default()
    };
    (root, data, opts)
}

/// A PostgreSQL header of another directory whose `creatorPID` is `pid`.
fn pg_header_of(pid: i32) -> [u8; interlock_format::shmem_header::HEADER_SIZE] {
    ShmemHeader::new_interlock(pid, 1, 2).render()
}

#[test]
fn old_minors_pass_over_a_dead_creators_segment_without_a_postgresql_header() {
    // Not PostgreSQL's (no magic), its creator dead, removable by the
    // server's user: 10.5's loop says "a non-Postgres app" and takes the
    // next key; it does not remove it.
    let mut not_pg = [0u8; interlock_format::shmem_header::HEADER_SIZE];
    not_pg[..8].copy_from_slice(b"someapp\0");
    for version in ["10.5", "10.8"] {
        let (_root, data, opts) = old_minor_fixture(
            version,
            AtFirstKey {
                cpid: DEAD_PID,
                nattch: 1,
                header: Some(not_pg),
            },
        );
        let r = status(&data, &opts).unwrap();
        let old = version == "10.5";
        assert_eq!(
            r.version.algorithm,
            Some(if old { Algorithm::Old } else { Algorithm::New }),
            "{:#?}",
            r.version
        );
        assert_eq!(
            r.verdict,
            Verdict::WillStart,
            "{version}: {:#?}",
            r.findings
        );
        assert_eq!(
            r.probe.creates_at,
            Some(key_u64(OLD_FIRST_KEY + 1)),
            "{version}: {}",
            r.probe.outcome
        );
        assert_eq!(
            r.probe.outcome,
            format!("creates its segment at key {}", key_hex(OLD_FIRST_KEY + 1))
        );
        assert!(
            r.findings
                .iter()
                .any(|f| f.code == Code::KeyCollision
                    && f.message.contains("not a PostgreSQL segment")),
            "{version}: {:#?}",
            r.findings
        );
    }
}

#[test]
fn old_minors_ask_the_headers_creator_pid_not_the_kernels() {
    // Another directory's PostgreSQL header naming a live creator (the
    // holder), while the kernel's creator is dead: the next key.
    let (_root, data, opts) = old_minor_fixture(
        "10.5",
        AtFirstKey {
            cpid: DEAD_PID,
            nattch: 1,
            header: Some(pg_header_of(HOLDER)),
        },
    );
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.version.algorithm, Some(Algorithm::Old));
    assert_eq!(r.verdict, Verdict::WillStart, "{:#?}", r.findings);
    assert_eq!(
        r.probe.creates_at,
        Some(key_u64(OLD_FIRST_KEY + 1)),
        "{}",
        r.probe.outcome
    );

    // The header's creator dead, the kernel's alive (the holder): removed,
    // attached as it is, and its key taken.
    let (_root, data, opts) = old_minor_fixture(
        "10.5",
        AtFirstKey {
            cpid: HOLDER,
            nattch: 1,
            header: Some(pg_header_of(DEAD_PID)),
        },
    );
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.verdict, Verdict::WillStart, "{:#?}", r.findings);
    assert_eq!(
        r.probe.creates_at,
        Some(key_u64(OLD_FIRST_KEY)),
        "{}",
        r.probe.outcome
    );
    assert!(
        r.probe.outcome.contains("removes the old segment ID 77"),
        "{}",
        r.probe.outcome
    );
    assert!(
        !r.findings.iter().any(|f| f.code == Code::KeyCollision),
        "the old loop does not move on: {:#?}",
        r.findings
    );
}

#[test]
fn old_minors_with_an_unread_header_start_at_a_key_not_told() {
    // Nobody attached: the header is not read, and 10.5 removes it (a dead
    // creator's PostgreSQL segment) or passes over it (anything else).
    let (_root, data, opts) = old_minor_fixture(
        "10.5",
        AtFirstKey {
            cpid: DEAD_PID,
            nattch: 0,
            header: None,
        },
    );
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.version.algorithm, Some(Algorithm::Old));
    assert_eq!(r.verdict, Verdict::WillStart, "{:#?}", r.findings);
    assert_eq!(r.probe.creates_at, None, "{}", r.probe.outcome);
    assert!(
        r.probe.outcome.contains(&format!(
            "finds segment ID 77 at key {}, whose header cannot be read here: removes it and creates its own there if it is a PostgreSQL segment whose creator is dead",
            key_hex(OLD_FIRST_KEY)
        )),
        "{}",
        r.probe.outcome
    );
    // Attached, its holder's memory unreadable: the same step (whether
    // an attached segment may be this directory's is another question).
    let (_root, data, opts) = old_minor_fixture(
        "10.5",
        AtFirstKey {
            cpid: DEAD_PID,
            nattch: 1,
            header: None,
        },
    );
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.probe.creates_at, None, "{}", r.probe.outcome);
    assert!(
        r.probe.outcome.contains("whose header cannot be read here"),
        "{}",
        r.probe.outcome
    );
}

/// Rewrite every row of the fixture's segment table: `f` gets a row's
/// columns (key shmid perms size cpid lpid nattch uid gid cuid cgid atime
/// dtime ctime rss swap).
fn edit_segments(root: &HostRoot, f: impl Fn(&mut Vec<String>)) {
    let path = root.procfs().root().join("sysvipc/shm");
    let table = fs::read_to_string(&path).unwrap();
    let mut lines = table.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for line in lines {
        let mut cols: Vec<String> = line.split_whitespace().map(String::from).collect();
        f(&mut cols);
        out.push_str(&cols.join(" "));
        out.push('\n');
    }
    fs::write(path, out).unwrap();
}

/// Another user than the fixtures' (100000: above 16 bits).
const OTHER_USER: u32 = 100_000;

#[test]
fn a_segment_the_server_may_read_but_not_attach_is_foreign_to_13_plus() {
    // The first key of a 16 directory (no lock file, nobody attached) is
    // taken by another user's segment the server's user may read but not
    // write: shmat(shmid, NULL, 0) asks for both, fails with EACCES, and
    // PGSharedMemoryAttach calls that SHMSTATE_FOREIGN: the next key.
    let f = fixture();
    let proc_root = f.opts.root.procfs().root().to_path_buf();
    fs::remove_file(f.data.join("postmaster.pid")).unwrap();
    fs::remove_dir_all(proc_root.join("4242")).unwrap();
    let gid = fs::metadata(&f.data).unwrap().gid();
    // Readable by others; readable by everybody; readable by the
    // server's group.
    for (mode, group) in [("644", OTHER_USER), ("444", OTHER_USER), ("640", gid)] {
        edit_segments(&f.opts.root, |c| {
            c[2] = mode.into();
            c[6] = "0".into();
            c[7] = OTHER_USER.to_string();
            c[8] = group.to_string();
            c[9] = OTHER_USER.to_string();
            c[10] = group.to_string();
        });
        let r = status(&f.data, &f.opts).unwrap();
        assert_eq!(r.version.algorithm, Some(Algorithm::New));
        assert_eq!(r.verdict, Verdict::WillStart, "{mode}: {:#?}", r.findings);
        assert_eq!(
            r.probe.creates_at,
            Some(key_u64(f.key.wrapping_add(1))),
            "{mode}: {}",
            r.probe.outcome
        );
        assert!(
            r.findings.iter().any(|x| x.code == Code::KeyCollision
                && x.message.contains("can read it but not attach it")),
            "{mode}: {:#?}",
            r.findings
        );
        assert_eq!(r.segments[0].belongs, Whose::Foreign, "{mode}");
    }
    // Writable too (0666): the server may attach it, and whose it is
    // cannot be read here (nobody attached): not the next key for sure.
    edit_segments(&f.opts.root, |c| c[2] = "666".into());
    let r = status(&f.data, &f.opts).unwrap();
    assert_eq!(r.probe.creates_at, None, "{}", r.probe.outcome);
}

/// [`old_minor_fixture`] with a stale lock file (its PID dead) whose line
/// 7 names segment ID 77 on the first key, which now belongs to another
/// user, mode 0644 (the server may read it, not attach it), with its
/// holder attached.
fn old_minor_line7_fixture(version: &str) -> (tempfile::TempDir, PathBuf, StatusOptions) {
    let (root, data, opts) = old_minor_fixture(
        version,
        AtFirstKey {
            cpid: DEAD_PID,
            nattch: 1,
            header: None,
        },
    );
    fs::write(
        data.join("postmaster.pid"),
        format!(
            "{DEAD_PID}\n{}\n{}\n5999\n/tmp\n*\n{OLD_FIRST_KEY:>9} {:>9}\nready   \n",
            data.display(),
            BTIME + 100,
            77
        ),
    )
    .unwrap();
    edit_segments(&opts.root, |c| {
        c[2] = "644".into();
        // uid gid cuid cgid
        for col in &mut c[7..=10] {
            *col = OTHER_USER.to_string();
        }
    });
    (root, data, opts)
}

#[test]
fn line_7_on_a_segment_the_server_may_read_but_not_attach_per_minor() {
    // 10.5: PGSharedMemoryIsInUse reads the attach count (1), then shmat
    // fails with EACCES, and any shmat failure is "in use": FATAL.
    let (_root, data, opts) = old_minor_line7_fixture("10.5");
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.version.algorithm, Some(Algorithm::Old));
    assert_eq!(r.verdict, Verdict::Blocked, "{:#?}", r.findings);
    assert_eq!(r.stops_at, Some(Stage::SharedMemory));
    assert_eq!(
        r.postgres_would_say.as_deref(),
        Some(
            format!(
                "pre-existing shared memory block (key {OLD_FIRST_KEY}, ID 77) is still in use"
            )
            .as_str()
        )
    );
    assert!(
        r.findings.iter().any(|f| f.code == Code::SegmentForeign
            && f.message.contains("before 10.8 takes it for in use")),
        "{:#?}",
        r.findings
    );

    // 10.8: PGSharedMemoryAttach's shmat EACCES is SHMSTATE_FOREIGN: not
    // in use; the probe passes over it too.
    let (_root, data, opts) = old_minor_line7_fixture("10.8");
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.version.algorithm, Some(Algorithm::New));
    assert_eq!(r.verdict, Verdict::WillStart, "{:#?}", r.findings);
    assert_eq!(r.postgres_would_say, None);
    assert_eq!(
        r.probe.creates_at,
        Some(key_u64(OLD_FIRST_KEY + 1)),
        "{}",
        r.probe.outcome
    );
    assert!(
        r.findings
            .iter()
            .any(|f| f.code == Code::SegmentForeign && f.message.contains("PostgreSQL ignores it")),
        "{:#?}",
        r.findings
    );

    // The minor unknown (the binary's version has none): the two answers
    // differ, so the verdict is unknown, and says why.
    let (_root, data, opts) = old_minor_line7_fixture("10");
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.version.algorithm, None);
    assert_eq!(r.verdict, Verdict::Unknown, "{:#?}", r.findings);
    assert!(
        r.findings.iter().any(|f| f.code == Code::VersionUnknown
            && f.message.contains("(line 7) has 1 attached")
            && f.message.contains("before 10.8 takes it for in use")),
        "{:#?}",
        r.findings
    );
}

// --- who manages the cluster (supervisor.rs) --------------------------------

/// Write process `pid` into the fixture's /proc: child of `ppid`, in
/// state `state`, with `argv`, owned by the data directory's owner.
fn write_proc(f: &Fixture, pid: i32, ppid: i32, state: char, argv: &[&str]) {
    let uid = fs::metadata(&f.data).unwrap().uid();
    let p = f.opts.root.procfs().root().join(pid.to_string());
    fs::create_dir_all(&p).unwrap();
    let comm: String = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap().chars().take(15).collect())
        .unwrap_or_default();
    let hz = rustix::param::clock_ticks_per_second() as i64;
    fs::write(
        p.join("stat"),
        format!(
            "{pid} ({comm}) {state} {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {} \
             228147200 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
            100 * hz
        ),
    )
    .unwrap();
    fs::write(
        p.join("status"),
        format!(
            "Name:\t{comm}\nState:\t{state} (x)\nPPid:\t{ppid}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t0\t0\t0\t0\nNSpid:\t{pid}\n"
        ),
    )
    .unwrap();
    fs::write(p.join("comm"), format!("{comm}\n")).unwrap();
    let mut cmdline = argv.join("\0");
    cmdline.push('\0');
    fs::write(p.join("cmdline"), cmdline).unwrap();
}

/// The orphaned checkpointer of [`fixture`] as a child of `ppid`.
fn orphan_of(f: &Fixture, ppid: i32) {
    write_proc(f, 4242, ppid, 'S', &["postgres: checkpointer "]);
}

fn in_cgroup(f: &Fixture, pid: i32, path: &str, members: &[i32]) {
    let proc_root = f.opts.root.procfs().root();
    fs::write(
        proc_root.join(pid.to_string()).join("cgroup"),
        format!("0::{path}\n"),
    )
    .unwrap();
    let dir = f
        .opts
        .root
        .at("/sys/fs/cgroup")
        .join(path.trim_start_matches('/'));
    fs::create_dir_all(&dir).unwrap();
    let list: String = members.iter().map(|m| format!("{m}\n")).collect();
    fs::write(dir.join("cgroup.procs"), list).unwrap();
}

fn remedy_has(r: &StatusReport, what: &str) -> bool {
    r.remedy.iter().any(|s| s.contains(what))
}

/// A stopped cluster: no lock file owner, no holder.
fn stopped(f: &Fixture) {
    let root = f.opts.root.procfs().root().to_path_buf();
    fs::remove_dir_all(root.join("4242")).unwrap();
    let table = fs::read_to_string(root.join("sysvipc/shm")).unwrap();
    fs::write(
        root.join("sysvipc/shm"),
        table.replacen("     1 ", "     0 ", 1),
    )
    .unwrap();
}

#[test]
fn orphans_in_a_units_cgroup_are_that_units() {
    let f = fixture();
    orphan_of(&f, 1);
    in_cgroup(
        &f,
        4242,
        "/system.slice/postgresql@16-main.service",
        &[4242],
    );
    let r = status(&f.data, &f.opts).unwrap();
    assert_eq!(
        r.managed_by.manager,
        Manager::Systemd {
            unit: "postgresql@16-main.service".into()
        },
        "{:?}",
        r.managed_by
    );
    assert_eq!(r.managed_by.how_known, HowKnown::Proven);
    assert!(
        r.managed_by.evidence.contains("leftover"),
        "{}",
        r.managed_by.evidence
    );
    assert!(
        remedy_has(&r, "Then start it through systemd: systemctl start postgresql@16-main.service (starting it with pg_ctl behind systemd's back"),
        "{:?}",
        r.remedy
    );
    assert!(!remedy_has(&r, "pg_ctl start -D"), "{:?}", r.remedy);
    // fix still stops the orphan: a dead server's leftovers are no manager's.
    let plan = crate::fix::plan(
        &f.data,
        &crate::FixOptions {
            status: f.opts.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(plan.managed_by, r.managed_by);
    assert!(plan.refused.is_empty(), "{:?}", plan.refused);
    assert_eq!(plan.stop.iter().map(|s| s.pid).collect::<Vec<_>>(), [4242]);
}

#[test]
fn a_unit_that_runs_more_than_postgresql_is_not_the_manager() {
    let f = fixture();
    orphan_of(&f, 1);
    // A CI runner's service: the runner itself is in the cgroup too.
    write_proc(
        &f,
        4000,
        1,
        'S',
        &["/opt/runner/bin/Runner.Listener", "run"],
    );
    in_cgroup(
        &f,
        4242,
        "/system.slice/actions.runner.service",
        &[4000, 4242],
    );
    let r = status(&f.data, &f.opts).unwrap();
    assert_eq!(r.managed_by.manager, Manager::None, "{:?}", r.managed_by);
    assert!(r.managed_by.evidence.contains("runs more than PostgreSQL"));
    assert!(remedy_has(&r, "pg_ctl start -D"), "{:?}", r.remedy);
}

#[test]
fn scopes_and_the_root_cgroup_are_no_unit() {
    for path in [
        "/",
        "/system.slice/docker-0123abcdef.scope",
        "/system.slice/run-u7.scope",
        "/user.slice/user-1000.slice/session-2.scope",
    ] {
        let f = fixture();
        orphan_of(&f, 1);
        in_cgroup(&f, 4242, path, &[4242]);
        let r = status(&f.data, &f.opts).unwrap();
        assert_eq!(
            r.managed_by.manager,
            Manager::None,
            "{path}: {:?}",
            r.managed_by
        );
        assert_eq!(r.managed_by.how_known, HowKnown::Proven);
    }
}

fn patroni_fixture(role_argv: &[&str]) -> Fixture {
    let f = fixture();
    write_proc(
        &f,
        4100,
        1,
        'S',
        &[
            "/usr/bin/python3",
            "/usr/local/bin/patroni",
            "/etc/patroni.yml",
        ],
    );
    fs::create_dir_all(f.opts.root.at("/etc")).unwrap();
    fs::write(
        f.opts.root.at("/etc/patroni.yml"),
        "scope: batman\nnamespace: /service/\nname: node1\nrestapi:\n  listen: 0.0.0.0:8008\n",
    )
    .unwrap();
    write_proc(&f, 4242, 4100, 'S', role_argv);
    f
}

#[test]
fn a_child_of_patroni_is_patronis() {
    let f = patroni_fixture(&["postgres: checkpointer "]);
    let r = status(&f.data, &f.opts).unwrap();
    assert_eq!(
        r.managed_by.manager,
        Manager::Patroni {
            config: Some("/etc/patroni.yml".into()),
            cluster: Some("batman".into()),
            member: Some("node1".into()),
        }
    );
    assert!(
        r.managed_by.evidence.contains("parent is PID 4100"),
        "{}",
        r.managed_by.evidence
    );
    assert!(
        remedy_has(&r, "patronictl -c /etc/patroni.yml pause"),
        "{:?}",
        r.remedy
    );
    assert!(
        remedy_has(&r, "Patroni starts it by itself"),
        "{:?}",
        r.remedy
    );
}

#[test]
fn fix_refuses_to_stop_a_postmaster_patroni_runs() {
    let f = patroni_fixture(&["/usr/lib/postgresql/16/bin/postgres", "-D", "/x"]);
    let plan = crate::fix::plan(
        &f.data,
        &crate::FixOptions {
            status: f.opts.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    let refusal = plan
        .refused
        .iter()
        .find(|r| r.code == crate::fix::RefusalCode::ManagedServer)
        .unwrap_or_else(|| panic!("{:?}", plan.refused));
    assert_eq!(refusal.pid, Some(4242));
    assert!(
        refusal
            .message
            .contains("patronictl -c /etc/patroni.yml restart batman node1"),
        "{}",
        refusal.message
    );
    assert!(plan.stop.is_empty());
}

#[test]
fn a_descendant_of_pacemaker_execd_is_pacemakers() {
    let f = fixture();
    write_proc(&f, 4000, 1, 'S', &["/usr/lib/pacemaker/pacemaker-execd"]);
    write_proc(
        &f,
        4100,
        4000,
        'S',
        &[
            "/bin/sh",
            "/usr/lib/ocf/resource.d/heartbeat/pgsql",
            "start",
        ],
    );
    orphan_of(&f, 4100);
    let r = status(&f.data, &f.opts).unwrap();
    assert_eq!(r.managed_by.manager, Manager::Pacemaker { resource: None });
    assert!(
        r.managed_by.evidence.contains("ancestor is PID 4000"),
        "{}",
        r.managed_by.evidence
    );
    assert!(remedy_has(&r, "crm_mon -1"), "{:?}", r.remedy);
    assert!(
        remedy_has(&r, "crm resource cleanup RESOURCE"),
        "{:?}",
        r.remedy
    );
}

#[test]
fn orphans_adopted_by_cloudnativepgs_instance_manager_are_its() {
    let f = fixture();
    write_proc(
        &f,
        4100,
        0,
        'S',
        &[
            "/controller/manager",
            "instance",
            "run",
            "--pod-name=pg-main-2",
            "--log-level=info",
        ],
    );
    orphan_of(&f, 4100);
    let r = status(&f.data, &f.opts).unwrap();
    assert_eq!(
        r.managed_by.manager,
        Manager::CloudNativePg {
            cluster: Some("pg-main".into()),
            pod: Some("pg-main-2".into())
        }
    );
    assert!(
        remedy_has(&r, "kubectl cnpg restart pg-main pg-main-2"),
        "{:?}",
        r.remedy
    );
}

#[test]
fn repmgrd_naming_a_stopped_directory_gives_its_start_command() {
    let f = fixture();
    stopped(&f);
    write_proc(
        &f,
        4500,
        1,
        'S',
        &[
            "/usr/lib/postgresql/16/bin/repmgrd",
            "-f",
            "/etc/repmgr.conf",
            "--daemonize=false",
        ],
    );
    fs::create_dir_all(f.opts.root.at("/etc")).unwrap();
    fs::write(
        f.opts.root.at("/etc/repmgr.conf"),
        format!(
            "node_id=1\nnode_name='node1'\ndata_directory='{}'\nservice_start_command='sudo systemctl start postgresql@16-main'\n",
            f.data.display()
        ),
    )
    .unwrap();
    let r = status(&f.data, &f.opts).unwrap();
    assert_eq!(r.verdict, Verdict::WillStart);
    assert_eq!(
        r.managed_by.manager,
        Manager::Repmgr {
            config: "/etc/repmgr.conf".into(),
            start_command: Some("sudo systemctl start postgresql@16-main".into())
        }
    );
    assert!(
        remedy_has(&r, "Start it the way repmgr does (service_start_command): sudo systemctl start postgresql@16-main"),
        "{:?}",
        r.remedy
    );
}

#[test]
fn debians_enabled_unit_likely_manages_a_stopped_cluster() {
    let f = fixture();
    stopped(&f);
    let conf = f.opts.root.at("/etc/postgresql/16/main");
    fs::create_dir_all(&conf).unwrap();
    fs::write(
        conf.join("postgresql.conf"),
        format!("data_directory = '{}'\nport = 5432\n", f.data.display()),
    )
    .unwrap();
    let r = status(&f.data, &f.opts).unwrap();
    assert_eq!(r.managed_by.manager, Manager::None, "{:?}", r.managed_by);
    assert!(
        r.managed_by.evidence.contains("not enabled"),
        "{}",
        r.managed_by.evidence
    );
    assert!(remedy_has(&r, "pg_ctl start -D"), "{:?}", r.remedy);

    let wants = f
        .opts
        .root
        .at("/etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants).unwrap();
    fs::write(wants.join("postgresql@16-main.service"), "").unwrap();
    let r = status(&f.data, &f.opts).unwrap();
    assert_eq!(
        r.managed_by.manager,
        Manager::Systemd {
            unit: "postgresql@16-main.service".into()
        }
    );
    assert_eq!(r.managed_by.how_known, HowKnown::Likely);
    assert!(
        remedy_has(
            &r,
            "Start it through systemd: systemctl start postgresql@16-main.service"
        ),
        "{:?}",
        r.remedy
    );
}

#[test]
fn a_running_postmaster_in_its_unit_is_restarted_through_systemd() {
    let f = fixture();
    let pid_file = f.data.join("postmaster.pid");
    let text = fs::read_to_string(&pid_file).unwrap();
    fs::write(&pid_file, text.replacen(&DEAD_PID.to_string(), "4242", 1)).unwrap();
    let data = f.data.display().to_string();
    write_proc(
        &f,
        4242,
        1,
        'S',
        &["/usr/lib/postgresql/16/bin/postgres", "-D", &data],
    );
    in_cgroup(
        &f,
        4242,
        "/system.slice/postgresql@16-main.service",
        &[4242],
    );
    let r = status(&f.data, &f.opts).unwrap();
    assert_eq!(r.verdict, Verdict::Running, "{:#?}", r.findings);
    assert_eq!(
        r.managed_by.manager,
        Manager::Systemd {
            unit: "postgresql@16-main.service".into()
        }
    );
    assert!(
        remedy_has(&r, "systemctl restart postgresql@16-main.service"),
        "{:?}",
        r.remedy
    );
    assert!(!remedy_has(&r, "pg_ctl stop"), "{:?}", r.remedy);
}

/// A stopped cluster whose `postmaster.pid` names `pid` (started at line
/// 3's `start`), with no segment: under a fixture root whose
/// `proc/self/mountinfo` mounts the directory's parent as `fs_type` (none:
/// no mountinfo, a local file system).
fn shared_fixture(
    fs_type: Option<&str>,
    lock: Option<(i32, i64)>,
) -> (tempfile::TempDir, PathBuf, StatusOptions) {
    let (root, data) = data_dir_of(16, interlock_format::pgcontrol::DbState::ShutDown);
    let data = data.canonicalize().unwrap();
    if let Some((pid, start)) = lock {
        fs::write(
            data.join("postmaster.pid"),
            format!(
                "{pid}\n{}\n{start}\n5432\n/tmp\n*\n        0         0\nready   \n",
                data.display()
            ),
        )
        .unwrap();
    }
    let proc_root = root.path().join("proc");
    fs::create_dir_all(proc_root.join("sysvipc")).unwrap();
    fs::create_dir_all(proc_root.join("self")).unwrap();
    fs::write(
        proc_root.join("stat"),
        format!("cpu 1 2 3\nbtime {BTIME}\n"),
    )
    .unwrap();
    fs::write(
        proc_root.join("sysvipc/shm"),
        interlock_format::sysvipc::SHM_TABLE_HEADER,
    )
    .unwrap();
    if let Some(t) = fs_type {
        // The parent's mount, escaped as the kernel writes it.
        let mp = data
            .parent()
            .unwrap()
            .display()
            .to_string()
            .replace(' ', "\\040");
        fs::write(
            proc_root.join("self/mountinfo"),
            format!(
                "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                 40 22 0:40 / {mp} rw,relatime shared:20 - {t} filer:/export/pg rw,vers=4.2\n"
            ),
        )
        .unwrap();
    }
    let opts = StatusOptions {
        root: crate::HostRoot::new(root.path()),
        ..StatusOptions::default()
    };
    (root, data, opts)
}

fn fix_plan(data: &Path, opts: &StatusOptions) -> crate::Plan {
    crate::fix::plan(
        data,
        &crate::FixOptions {
            status: opts.clone(),
            ..Default::default()
        },
    )
    .unwrap()
}

fn shared_finding(r: &StatusReport) -> Option<&Finding> {
    r.findings.iter().find(|f| f.code == Code::SharedStorage)
}

#[test]
fn on_nfs_a_lock_file_whose_pid_is_not_here_is_unknown_and_never_removed() {
    // Written before this host's boot: before a reboot, or on another host.
    let (_root, data, opts) = shared_fixture(Some("nfs4"), Some((DEAD_PID, BTIME - 3600)));
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.verdict, Verdict::Unknown, "{:#?}", r.findings);
    assert!(!r.safe_to_start);
    assert_eq!(r.postgres_would_say, None);
    let f = shared_finding(&r).unwrap_or_else(|| panic!("{:#?}", r.findings));
    assert_eq!(f.severity, Severity::Problem);
    assert!(f.message.contains("is on nfs"), "{}", f.message);
    assert!(f.message.contains("another host may run a server on it"));
    assert!(f
        .message
        .contains(&format!("names PID {DEAD_PID}, which does not run here")));
    assert!(
        f.message.contains("before this host booted"),
        "{}",
        f.message
    );
    assert!(remedy_has(&r, "interlock run --etcd"), "{:?}", r.remedy);
    assert!(!remedy_has(&r, "pg_ctl start"), "{:?}", r.remedy);

    let plan = fix_plan(&data, &opts);
    let refusal = plan
        .refused
        .iter()
        .find(|r| r.code == crate::fix::RefusalCode::OtherHost)
        .unwrap_or_else(|| panic!("{:?}", plan.refused));
    assert_eq!(refusal.pid, Some(DEAD_PID));
    assert!(plan.remove.is_empty(), "{:?}", plan.remove);
    assert!(plan.left_to_server.is_empty(), "{:?}", plan.left_to_server);
    assert!(plan.stop.is_empty());
}

#[test]
fn on_glusterfs_through_fuse_the_mount_type_tells() {
    let (_root, data, opts) = shared_fixture(Some("fuse.glusterfs"), Some((DEAD_PID, BTIME + 100)));
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.verdict, Verdict::Unknown, "{:#?}", r.findings);
    let f = shared_finding(&r).unwrap();
    assert!(f.message.contains("is on glusterfs"), "{}", f.message);
    assert!(f.message.contains("as fuse.glusterfs"), "{}", f.message);
    // After boot: nothing said of a reboot.
    assert!(!f.message.contains("booted"), "{}", f.message);
}

#[test]
fn on_a_local_file_system_the_same_lock_file_is_left_to_the_server() {
    for fs_type in [None, Some("ext4")] {
        let (_root, data, opts) = shared_fixture(fs_type, Some((DEAD_PID, BTIME - 3600)));
        let r = status(&data, &opts).unwrap();
        assert_eq!(r.verdict, Verdict::WillStart, "{:#?}", r.findings);
        assert!(r.safe_to_start);
        assert!(shared_finding(&r).is_none(), "{:#?}", r.findings);
        assert!(
            r.findings.iter().any(|f| f.code == Code::StaleLockFile),
            "{:#?}",
            r.findings
        );
        let plan = fix_plan(&data, &opts);
        assert!(plan.refused.is_empty(), "{:?}", plan.refused);
        assert!(plan.remove.is_empty(), "{:?}", plan.remove);
        assert_eq!(plan.left_to_server.len(), 1, "{:?}", plan.left_to_server);
    }
}

#[test]
fn on_nfs_without_a_lock_file_it_will_start_with_a_warning() {
    let (_root, data, opts) = shared_fixture(Some("nfs"), None);
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.verdict, Verdict::WillStart, "{:#?}", r.findings);
    assert!(r.safe_to_start);
    let f = shared_finding(&r).unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.message.contains("none runs on it now"), "{}", f.message);
    assert!(remedy_has(&r, "interlock run --etcd"), "{:?}", r.remedy);
    let plan = fix_plan(&data, &opts);
    assert!(plan.refused.is_empty(), "{:?}", plan.refused);
}

#[test]
fn on_nfs_a_reused_pids_lock_file_is_never_removed() {
    // PID 4242 runs here, a shell of the owner working elsewhere: locally
    // a reused PID, whose lock file fix removes; on NFS it may be another
    // host's live server's.
    for (fs_type, removed) in [(None, true), (Some("nfs4"), false)] {
        let (root, data, opts) = shared_fixture(fs_type, Some((4242, BTIME - 3600)));
        let uid = fs::metadata(&data).unwrap().uid();
        let p = root.path().join("proc/4242");
        fs::create_dir_all(&p).unwrap();
        let hz = rustix::param::clock_ticks_per_second() as i64;
        fs::write(
            p.join("stat"),
            format!(
                "4242 (bash) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {} \
                 228147200 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
                100 * hz
            ),
        )
        .unwrap();
        fs::write(
            p.join("status"),
            format!("Name:\tbash\nState:\tS (sleeping)\nPPid:\t1\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t0\t0\t0\t0\nNSpid:\t4242\n"),
        )
        .unwrap();
        fs::write(p.join("cmdline"), b"-bash\0").unwrap();
        fs::write(p.join("maps"), b"").unwrap();
        std::os::unix::fs::symlink("/", p.join("cwd")).unwrap();
        let r = status(&data, &opts).unwrap();
        assert_eq!(r.verdict, Verdict::Blocked, "{:#?}", r.findings);
        assert_eq!(r.lock_file.identity, Some(Identity::Reused));
        let plan = fix_plan(&data, &opts);
        let has_other_host = plan
            .refused
            .iter()
            .any(|r| r.code == crate::fix::RefusalCode::OtherHost);
        assert_eq!(has_other_host, !removed, "{:?}", plan.refused);
        assert_eq!(
            plan.remove
                .iter()
                .any(|x| matches!(x, crate::fix::Removal::LockFile { .. })),
            removed,
            "{:?} {:?}",
            plan.remove,
            plan.refused
        );
    }
}

/// [`shared_fixture`] on a local file system, seen from a PID namespace
/// whose `proc/self/ns/pid` link names `ns_inode`.
fn container_fixture(
    ns_inode: u64,
    lock: Option<(i32, i64)>,
) -> (tempfile::TempDir, PathBuf, StatusOptions) {
    let (root, data, opts) = shared_fixture(None, lock);
    let ns = root.path().join("proc/self/ns");
    fs::create_dir_all(&ns).unwrap();
    std::os::unix::fs::symlink(format!("pid:[{ns_inode}]"), ns.join("pid")).unwrap();
    (root, data, opts)
}

#[test]
fn in_a_container_a_lock_file_whose_pid_is_not_here_is_unknown_and_never_removed() {
    let (_root, data, opts) = container_fixture(4026532301, Some((DEAD_PID, BTIME + 100)));
    assert_eq!(
        opts.root.nested_pid_namespace().as_deref(),
        Some("pid:[4026532301]")
    );
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.verdict, Verdict::Unknown, "{:#?}", r.findings);
    assert!(!r.safe_to_start);
    let f = r
        .findings
        .iter()
        .find(|f| f.code == Code::ContainerNamespace)
        .unwrap_or_else(|| panic!("{:#?}", r.findings));
    assert_eq!(f.severity, Severity::Problem);
    assert!(f.message.contains("pid:[4026532301]"), "{}", f.message);
    assert!(f
        .message
        .contains(&format!("names PID {DEAD_PID}, which does not run here")));
    assert!(remedy_has(&r, "on the host itself"), "{:?}", r.remedy);
    assert!(remedy_has(&r, "interlock run --etcd"), "{:?}", r.remedy);
    let plan = fix_plan(&data, &opts);
    assert!(
        plan.refused
            .iter()
            .any(|r| r.code == crate::fix::RefusalCode::OtherHost),
        "{:?}",
        plan.refused
    );
    assert!(plan.remove.is_empty() && plan.left_to_server.is_empty());
}

#[test]
fn in_the_hosts_own_pid_namespace_or_without_a_lock_file_nothing_changes() {
    // The initial namespace (PROC_PID_INIT_INO): the stale lock file is
    // left to the server, as on any host.
    let (_root, data, opts) = container_fixture(0xEFFF_FFFC, Some((DEAD_PID, BTIME + 100)));
    assert_eq!(opts.root.nested_pid_namespace(), None);
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.verdict, Verdict::WillStart, "{:#?}", r.findings);
    // A container without a lock file: no server runs on the directory.
    let (_root, data, opts) = container_fixture(4026532301, None);
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.verdict, Verdict::WillStart, "{:#?}", r.findings);
    assert!(
        !r.findings
            .iter()
            .any(|f| f.code == Code::ContainerNamespace),
        "{:#?}",
        r.findings
    );
}

/// This host, as the fixture root names it (`proc/sys/kernel/hostname`,
/// `random/boot_id`), and `interlock.fence` in `data` as the holders write
/// it (`fence_file_content`), by `host` in boot `boot_id`.
fn fence_file_fixture(root: &HostRoot, data: &Path, host: &str, boot_id: &str, token: i64) {
    let kernel = root.at("/proc/sys/kernel/random");
    fs::create_dir_all(&kernel).unwrap();
    fs::write(root.at("/proc/sys/kernel/hostname"), "db2\n").unwrap();
    fs::write(kernel.join("boot_id"), "b2\n").unwrap();
    let holder = interlock_fence::key::HolderValue {
        host: host.into(),
        boot_id: boot_id.into(),
        pid: Some(4242),
        since: "2026-11-29T21:07:34Z".into(),
        datadir: data.display().to_string(),
    };
    fs::write(
        data.join("interlock.fence"),
        interlock_fence::key::fence_file_content(token, "/interlock/7/pg", &holder),
    )
    .unwrap();
}

#[test]
fn the_fence_file_is_reported_and_changes_no_verdict() {
    let (_root, data, opts) = shared_fixture(None, Some((DEAD_PID, BTIME - 3600)));
    let r = status(&data, &opts).unwrap();
    assert!(r.fence_file.is_none());
    let before = serde_json::to_value(&r).unwrap();
    assert_eq!(before["fence_file"], serde_json::Value::Null);

    fence_file_fixture(&opts.root, &data, "db2", "b2", 42);
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.verdict, Verdict::WillStart, "{:#?}", r.findings);
    let f = r.fence_file.as_ref().unwrap();
    assert_eq!(f.path, data.join("interlock.fence").display().to_string());
    assert_eq!((f.token, f.pid, f.here), (Some(42), Some(4242), Some(true)));
    assert_eq!(f.key.as_deref(), Some("/interlock/7/pg"));
    assert_eq!(
        f.line,
        "token 42 by host db2 (PID 4242, since 2026-11-29T21:07:34Z), this host"
    );
    assert_eq!(f.problem, None);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["fence_file"]["token"], 42);
    assert_eq!(json["fence_file"]["boot_id"], "b2");
    assert_eq!(json["fence_file"]["here"], true);
    assert_eq!(json["fence_file"]["versus_etcd"], serde_json::Value::Null);
    assert_eq!(json["findings"], before["findings"]);

    // Another boot of this host is not here; without the host's own name
    // and boot id, whether it is cannot be told.
    fence_file_fixture(&opts.root, &data, "db2", "b1", 42);
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.fence_file.unwrap().here, Some(false));
    fs::remove_dir_all(opts.root.at("/proc/sys")).unwrap();
    let r = status(&data, &opts).unwrap();
    let f = r.fence_file.unwrap();
    assert_eq!((f.here, f.token), (None, Some(42)));
    assert!(!f.line.contains("this host"), "{}", f.line);
}

#[test]
fn on_nfs_and_in_a_container_the_last_fenced_holder_elsewhere_is_where_to_look() {
    let (_root, data, opts) = shared_fixture(Some("nfs4"), Some((DEAD_PID, BTIME - 3600)));
    fence_file_fixture(&opts.root, &data, "db1", "b1", 42);
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.verdict, Verdict::Unknown, "{:#?}", r.findings);
    let f = shared_finding(&r).unwrap();
    let note = "the last fenced holder was host db1 (token 42, since 2026-11-29T21:07:34Z; interlock.fence): check there first";
    assert!(f.message.ends_with(note), "{}", f.message);
    assert!(remedy_has(&r, note), "{:?}", r.remedy);

    // No lock file: the warning says it too, and nothing else changes.
    fs::remove_file(data.join("postmaster.pid")).unwrap();
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.verdict, Verdict::WillStart, "{:#?}", r.findings);
    assert!(shared_finding(&r).unwrap().message.ends_with(note));

    // This host's own record: nothing to look for elsewhere.
    fence_file_fixture(&opts.root, &data, "db2", "b2", 43);
    let r = status(&data, &opts).unwrap();
    assert!(!shared_finding(&r)
        .unwrap()
        .message
        .contains("fenced holder"));

    let (_root, data, opts) = container_fixture(4026532301, Some((DEAD_PID, BTIME + 100)));
    fence_file_fixture(&opts.root, &data, "pod-a", "b2", 7);
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.verdict, Verdict::Unknown, "{:#?}", r.findings);
    let f = r
        .findings
        .iter()
        .find(|f| f.code == Code::ContainerNamespace)
        .unwrap();
    assert!(
        f.message
            .contains("the last fenced holder was host pod-a (token 7"),
        "{}",
        f.message
    );
    assert!(remedy_has(&r, "host pod-a (token 7"), "{:?}", r.remedy);
}

#[test]
fn a_fence_file_that_is_not_a_holders_is_refused_or_a_problem() {
    let (_root, data, opts) = shared_fixture(None, None);
    let path = data.join("interlock.fence");
    let unsafe_file = |r: &StatusReport| {
        r.findings
            .iter()
            .find(|f| f.code == Code::UnsafeFile)
            .map(|f| f.message.clone())
    };
    // A link, even in our own directory: only a program writes the file.
    fs::write(data.join("elsewhere"), "token 1\n").unwrap();
    std::os::unix::fs::symlink("elsewhere", &path).unwrap();
    let r = status(&data, &opts).unwrap();
    assert_eq!(r.verdict, Verdict::WillStart, "{:#?}", r.findings);
    let msg = unsafe_file(&r).unwrap_or_else(|| panic!("{:#?}", r.findings));
    assert!(msg.contains("symbolic link"), "{msg}");
    let f = r.fence_file.unwrap();
    assert_eq!(f.token, None);
    assert!(f.problem.unwrap().starts_with("not read: "));
    fs::remove_file(&path).unwrap();
    // A FIFO: refused without blocking.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let r = status(&data, &opts).unwrap();
    assert!(unsafe_file(&r).unwrap().contains("FIFO"));
    fs::remove_file(&path).unwrap();
    // Far larger than any holder writes.
    fs::File::create(&path).unwrap().set_len(1 << 20).unwrap();
    let r = status(&data, &opts).unwrap();
    assert!(unsafe_file(&r).unwrap().contains("1048576 bytes"));
    // Not what a holder writes: a problem, not a hostile file.
    fs::write(&path, "token 1\nhost \x1b]0;owned\x07\n").unwrap();
    let r = status(&data, &opts).unwrap();
    assert_eq!(unsafe_file(&r), None, "{:#?}", r.findings);
    let f = r.fence_file.unwrap();
    let problem = f.problem.unwrap();
    assert!(
        problem.starts_with("not what a fence holder writes: line 2 (host)"),
        "{problem}"
    );
    assert!(!f.line.contains('\x1b'), "{}", f.line);
}

#[test]
fn with_etcd_the_fence_file_is_compared_with_the_key_and_the_key_decides() {
    use crate::fence::{apply_fence, FenceHolder, FenceInfo, FenceState};
    use crate::FenceFileVersus as V;
    let (_root, data, opts) = shared_fixture(None, None);
    fence_file_fixture(&opts.root, &data, "db1", "b1", 42);
    let fence = |state: FenceState, token: Option<i64>, key: &str| FenceInfo {
        key: Some(key.into()),
        state,
        holder: token.map(|token| FenceHolder {
            host: "db1".into(),
            boot_id: "b1".into(),
            pid: Some(4242),
            token,
            since: "2026-11-29T21:07:34Z".into(),
            lease_expires_in: Some(9),
        }),
        error: None,
        line: format!("{key}: held"),
    };
    let k = "/interlock/7/pg";
    let cases = [
        (fence(FenceState::HeldElsewhere, Some(42), k), Some(V::Consistent), "interlock.fence agrees (token 42)", Verdict::Blocked),
        (fence(FenceState::HeldHere, Some(50), k), Some(V::EarlierHolder), "interlock.fence is an earlier holder's (token 42 by host db1, before the key's token 50)", Verdict::WillStart),
        (fence(FenceState::Free, None, k), Some(V::EarlierHolder), "interlock.fence is an earlier holder's (token 42 by host db1; the key is not held now)", Verdict::WillStart),
        (fence(FenceState::HeldHere, Some(40), k), Some(V::AheadOfEtcd), "interlock.fence has a later token than the key's 40 (token 42 by host db1): etcd lost revisions", Verdict::WillStart),
        (fence(FenceState::HeldHere, Some(42), "/interlock/7/other"), Some(V::OtherKey), "interlock.fence names another key, /interlock/7/pg (token 42 by host db1)", Verdict::WillStart),
        (fence(FenceState::Unknown, None, k), None, "", Verdict::Unknown),
    ];
    for (f, versus, words, verdict) in cases {
        let mut r = status(&data, &opts).unwrap();
        assert_eq!(r.verdict, Verdict::WillStart);
        apply_fence(&mut r, f);
        let file = r.fence_file.as_ref().unwrap();
        assert_eq!(file.versus_etcd, versus);
        let line = &r.fence.as_ref().unwrap().line;
        assert!(line.contains(words), "{line}");
        // The key decides: the file changes no verdict.
        assert_eq!(r.verdict, verdict, "{line}");
        assert!(!file.line.contains("agrees"), "{}", file.line);
    }
}
