use super::*;
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

/// A data directory whose server was killed; its checkpointer (a name
/// with spaces and parentheses, stopped) is still attached to the
/// segment on line 7. /proc and /dev/shm are fixture trees; the
/// segment table has octal permissions.
fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    fs::create_dir_all(data.join("global")).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(data.join("PG_VERSION"), "16\n").unwrap();
    fs::write(
        data.join("global/pg_control"),
        interlock_format::pgcontrol::minimal_control_file(
            16,
            interlock_format::pgcontrol::DbState::InProduction,
        )
        .unwrap(),
    )
    .unwrap();
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
