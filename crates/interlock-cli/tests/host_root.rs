//! The hidden global `--root DIR`: every command that reads the host reads
//! DIR/proc, DIR/dev/shm, DIR/etc and DIR/sys instead, and whether a PID
//! runs comes from DIR/proc/PID alone (never from `kill(pid, 0)` on the
//! real host).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use assert_cmd::Command;

const BTIME: i64 = 1_700_000_000;
const SHMID: i32 = 65538;
const HOLDER: i32 = 4242;

fn write(root: &Path, rel: &str, text: impl AsRef<[u8]>) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// A host tree: one data directory (PostgreSQL 16) whose postmaster.pid
/// names PID 1 — alive on any real host, absent from the fixture's /proc —
/// and line 7's segment, still attached by a stopped checkpointer (PID
/// 4242) working in the directory; a leaked DSM file; the owner named
/// in the fixture's /etc/passwd.
fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("host");
    let data = tmp.path().join("data");
    fs::create_dir_all(data.join("global")).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
    write(&data, "PG_VERSION", "16\n");
    write(
        &data,
        "global/pg_control",
        interlock_format::pgcontrol::minimal_control_file(
            16,
            interlock_format::pgcontrol::DbState::InProduction,
        )
        .unwrap(),
    );
    let m = fs::metadata(&data).unwrap();
    let uid = m.uid();
    let key = interlock::pg::key_for_inode(m.ino()).0;
    write(
        &data,
        "postmaster.pid",
        format!(
            "1\n{}\n{}\n5432\n/tmp\n*\n{:>9} {:>9}\nready   \n",
            data.display(),
            BTIME + 100,
            key as i64 as u64,
            SHMID
        ),
    );

    write(&root, "proc/stat", format!("cpu 1 2 3\nbtime {BTIME}\n"));
    write(
        &root,
        "proc/sysvipc/shm",
        format!(
            "{}{key:>10} {SHMID:>10}  1600 {:>21} {:>5} {:>5} {:>6} {uid:>5} {uid:>5} {uid:>5} {uid:>5} {:>10} {:>10} {:>10} {:>21} {:>21}\n",
            interlock_format::sysvipc::SHM_TABLE_HEADER,
            56, HOLDER - 1, HOLDER, 1, BTIME + 100, 0, BTIME + 100, 4096, 0
        ),
    );
    let hz = rustix::param::clock_ticks_per_second() as i64;
    let p = format!("proc/{HOLDER}");
    write(
        &root,
        &format!("{p}/stat"),
        format!(
            "{HOLDER} (postgres) T 1 {HOLDER} {HOLDER} 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {} \
             228147200 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
            100 * hz
        ),
    );
    write(
        &root,
        &format!("{p}/status"),
        format!("Name:\tpostgres\nState:\tT (stopped)\nPPid:\t1\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t0\t0\t0\t0\nNSpid:\t{HOLDER}\n"),
    );
    write(&root, &format!("{p}/cmdline"), b"postgres: checkpointer \0");
    write(
        &root,
        &format!("{p}/maps"),
        format!(
            "7f2b61b05000-7f2b61b06000 rw-s 00000000 00:01 {SHMID}                      /SYSV{:08x} (deleted)\n",
            key as u32
        ),
    );
    std::os::unix::fs::symlink(&data, root.join(&p).join("cwd")).unwrap();
    write(
        &root,
        "etc/passwd",
        format!("fixtureowner:x:{uid}:{uid}::/x:/bin/sh\nfixtureroot:x:0:0::/root:/bin/sh\n"),
    );
    // A DSM file nobody maps, old enough to be called leaked.
    write(&root, "dev/shm/PostgreSQL.77", vec![0u8; 4096]);
    fs::File::options()
        .write(true)
        .open(root.join("dev/shm/PostgreSQL.77"))
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(BTIME as u64))
        .unwrap();
    (tmp, root, data)
}

fn status_json(root: &Path, data: &Path) -> serde_json::Value {
    let out = Command::cargo_bin("interlock")
        .unwrap()
        .arg("--root")
        .arg(root)
        .args(["status", "--json"])
        .arg(data)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn status_reads_the_fixture_tree() {
    let (_tmp, root, data) = fixture();
    let r = status_json(&root, &data);
    let text = r.to_string();
    // PID 1 runs on the real host; the fixture's /proc has no PID 1.
    assert_eq!(r["lock_file"]["identity"], "gone", "{r:#}");
    assert_eq!(r["verdict"], "blocked", "{r:#}");
    let holders = r["holders"].as_array().unwrap();
    assert_eq!(holders.len(), 1, "{r:#}");
    assert_eq!(holders[0]["pid"], HOLDER, "{r:#}");
    assert_eq!(holders[0]["state"], "stopped");
    assert_eq!(holders[0]["start_time"], BTIME + 100);
    assert!(text.contains("orphaned_holders"), "{r:#}");
    assert!(text.contains("leaked_dsm"), "{r:#}");
    // The owner's name comes from the fixture's /etc/passwd.
    assert!(text.contains("fixtureowner"), "{r:#}");
}

#[test]
fn status_without_the_fixture_reads_the_real_host() {
    // The same directory read against the real /: no such segment or
    // holder there, and PID 1 runs (so the tree above is what decided).
    let (_tmp, _root, data) = fixture();
    let r = status_json(Path::new("/"), &data);
    assert!(r["holders"].as_array().unwrap().is_empty(), "{r:#}");
    assert!(!r.to_string().contains("fixtureowner"), "{r:#}");
}

#[test]
fn root_is_hidden_from_help() {
    let out = Command::cargo_bin("interlock")
        .unwrap()
        .arg("--help")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("--root"));
}

#[test]
fn limits_reads_the_fixture_sysctls() {
    let (_tmp, root, _data) = fixture();
    write(&root, "proc/sys/kernel/shmmax", "33554432\n");
    write(&root, "proc/sys/kernel/shmall", "2097152\n");
    write(&root, "proc/sys/kernel/shmmni", "4097\n");
    let out = Command::cargo_bin("interlock")
        .unwrap()
        .arg("--root")
        .arg(&root)
        .args(["limits", "--json"])
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["host"]["shmmax"], 33554432u64, "{r:#}");
    assert_eq!(r["host"]["shmall"], 2097152u64, "{r:#}");
    assert_eq!(r["host"]["shmmni"], 4097u64, "{r:#}");
}

#[test]
fn fix_yes_refuses_a_fixture_root() {
    let (_tmp, root, data) = fixture();
    Command::cargo_bin("interlock")
        .unwrap()
        .arg("--root")
        .arg(&root)
        .args(["fix", "--yes"])
        .arg(&data)
        .assert()
        .code(2);
}

#[test]
fn a_directory_on_nfs_by_the_fixtures_mountinfo_is_shared_storage() {
    let (_tmp, root, data) = fixture();
    let data = data.canonicalize().unwrap();
    write(
        &root,
        "proc/self/mountinfo",
        format!(
            "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n40 22 0:40 / {} rw - nfs4 filer:/export/pg rw\n",
            data.display()
        ),
    );
    let r = status_json(&root, &data);
    let shared: Vec<_> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "shared_storage")
        .collect();
    assert_eq!(shared.len(), 1, "{r:#}");
    assert_eq!(shared[0]["severity"], "problem", "{r:#}");
    assert!(
        shared[0]["message"].as_str().unwrap().contains("is on nfs"),
        "{r:#}"
    );
    // The plan refuses: the lock file may be another host's server's.
    let out = Command::cargo_bin("interlock")
        .unwrap()
        .arg("--root")
        .arg(&root)
        .args(["fix", "--json"])
        .arg(&data)
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert!(
        plan["plan"]["refused"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["code"] == "other_host"),
        "{plan:#}"
    );
    assert!(
        !plan["plan"]["remove"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x.to_string().contains("postmaster.pid")),
        "{plan:#}"
    );
}

#[test]
fn local_directories_on_the_real_host_are_not_shared_storage() {
    // The real /: the test's temporary directory (ext4, overlay…) and a
    // copy under /dev/shm (tmpfs), told by statfs.
    let (_tmp, _root, data) = fixture();
    let shm = tempfile::tempdir_in("/dev/shm").ok();
    let mut dirs = vec![data.clone()];
    if let Some(shm) = &shm {
        let copy = shm.path().join("data");
        fs::create_dir_all(copy.join("global")).unwrap();
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o700)).unwrap();
        fs::copy(data.join("PG_VERSION"), copy.join("PG_VERSION")).unwrap();
        fs::copy(
            data.join("global/pg_control"),
            copy.join("global/pg_control"),
        )
        .unwrap();
        dirs.push(copy);
    }
    for d in dirs {
        let r = status_json(Path::new("/"), &d);
        assert!(r["verdict"].is_string(), "{r:#}");
        assert!(
            !r.to_string().contains("shared_storage"),
            "{}: {r:#}",
            d.display()
        );
    }
}
