//! `interlock limits` on fixture hosts (a tree of proc/, sys/, etc/ and
//! dev/shm under --root) and on the live machine, with real clusters.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const MEMINFO: &str = "MemTotal:        8000000 kB\nMemAvailable:    6000000 kB\nSwapTotal:             0 kB\n\
CommitLimit:     4000000 kB\nCommitted_AS:    3900000 kB\nHugePages_Total:      10\nHugePages_Free:       10\n\
HugePages_Rsvd:        0\nHugepagesize:       2048 kB\n";

const SHM_HEADER: &str = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n";

/// A cramped host: 4 segment IDs, all taken; strict overcommit with
/// 100 MB of room; 10 huge pages; a 256 MB cgroup; logind removing IPC
/// of a postgres user with uid 1001.
fn cramped(root: &Path) {
    write(root, "proc/sys/kernel/shmmax", "33554432\n");
    write(root, "proc/sys/kernel/shmall", "2097152\n");
    write(root, "proc/sys/kernel/shmmni", "4\n");
    write(root, "proc/sys/kernel/sem", "250\t32000\t32\t128\n");
    write(root, "proc/sys/vm/overcommit_memory", "2\n");
    write(root, "proc/sys/vm/overcommit_ratio", "50\n");
    let mut shm = SHM_HEADER.to_string();
    for i in 0..4 {
        shm += &format!("{:>10} {:>10}  1600              1048576  100   100      1  1000  1000  1000  1000          0          0          0                     0                     0\n", 1000 + i, 32768 + i);
    }
    write(root, "proc/sysvipc/shm", &shm);
    write(
        root,
        "proc/sysvipc/sem",
        "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n",
    );
    write(root, "proc/meminfo", MEMINFO);
    write(root, "proc/self/cgroup", "0::/docker/abc\n");
    write(root, "sys/fs/cgroup/docker/abc/memory.max", "268435456\n");
    std::fs::create_dir_all(root.join("sys/kernel/mm/hugepages/hugepages-2048kB")).unwrap();
    write(root, "etc/systemd/logind.conf", "[Login]\n#RemoveIPC=yes\n");
    write(
        root,
        "etc/passwd",
        "root:x:0:0::/root:/bin/sh\npostgres:x:1001:1001::/var/lib/postgresql:/bin/sh\n",
    );
    write(root, "etc/login.defs", "SYS_UID_MAX 999\n");
    write(root, "lib/systemd/systemd-logind", "");
    std::fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    std::fs::create_dir_all(root.join("dev/shm")).unwrap();
}

/// A roomy host.
fn roomy(root: &Path) {
    cramped(root);
    write(root, "proc/sys/kernel/shmmax", "18446744073692774399\n");
    write(root, "proc/sys/kernel/shmall", "18446744073692774399\n");
    write(root, "proc/sys/kernel/shmmni", "4096\n");
    write(root, "proc/sys/vm/overcommit_memory", "0\n");
    write(
        root,
        "proc/meminfo",
        &MEMINFO
            .replace("HugePages_Total:      10", "HugePages_Total:    2000")
            .replace("HugePages_Free:       10", "HugePages_Free:     2000"),
    );
    write(root, "sys/fs/cgroup/docker/abc/memory.max", "max\n");
    write(
        root,
        "etc/systemd/logind.conf.d/postgresql.conf",
        "[Login]\nRemoveIPC=no\n",
    );
}

fn limits(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(bin())
        .arg("limits")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = if args.contains(&"--json") {
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    } else {
        Value::Null
    };
    (
        out.status.code().unwrap(),
        v,
        stdout + &String::from_utf8_lossy(&out.stderr),
    )
}

fn check<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {v}"))
}

/// A data directory asking for 1 GB of buffers and huge pages, nothing
/// running on it.
fn greedy_cluster() -> tempfile::TempDir {
    let d = fake_cluster();
    std::fs::write(d.path().join("PG_VERSION"), "15\n").unwrap();
    std::fs::write(
        d.path().join("postgresql.conf"),
        "shared_buffers = 1GB\nhuge_pages = on\nmax_connections = 200\n",
    )
    .unwrap();
    d
}

#[test]
fn a_cramped_fixture_host_is_too_low_with_the_sysctl_lines() {
    let root = tempfile::tempdir().unwrap();
    cramped(root.path());
    // /dev/shm of a container: 64 MB (a tmpfs when root can mount one).
    let mounted = is_root()
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(root.path().join("dev/shm"))
            .status()
            .is_ok_and(|s| s.success());
    let data = greedy_cluster();
    let r = root.path().to_str().unwrap();
    let (code, v, _) = limits(&[
        "--json",
        "--no-server",
        "--root",
        r,
        data.path().to_str().unwrap(),
    ]);
    if mounted {
        let _ = Command::new("umount")
            .arg(root.path().join("dev/shm"))
            .status();
    }
    assert_eq!(code, 1, "{v}");
    let need = &v["need"];
    // 1 GB of buffers, 200 connections: about 1.1 GB (the estimate, 15).
    let size = need["shared_memory_size"].as_u64().unwrap();
    assert!((1_100_000_000..1_200_000_000).contains(&size), "{size}");
    assert!(need["size_source"]
        .as_str()
        .unwrap()
        .starts_with("estimate"));
    assert_eq!(need["huge_pages_needed"], size / (2 << 20) + 1);

    let shmmni = check(&v, "kernel.shmmni");
    assert_eq!(shmmni["status"], "too_low");
    assert_eq!(shmmni["fix"][0], "sysctl -w kernel.shmmni=4096");
    assert_eq!(
        shmmni["fix"][1],
        "persist it: echo 'kernel.shmmni = 4096' > /etc/sysctl.d/30-postgresql-shm.conf"
    );
    assert_eq!(check(&v, "kernel.shmmax")["status"], "ok");
    let huge = check(&v, "huge pages");
    assert_eq!(huge["status"], "too_low");
    let target = size / (2 << 20) + 1 - 10 + 10;
    assert_eq!(
        huge["fix"][0],
        format!("sysctl -w vm.nr_hugepages={target}")
    );
    let mem = check(&v, "memory");
    assert_eq!(mem["status"], "too_low", "{mem}");
    assert!(mem["message"]
        .as_str()
        .unwrap()
        .contains("strict overcommit"));
    let cg = check(&v, "cgroup memory");
    assert_eq!(cg["status"], "too_low");
    assert!(cg["value"]
        .as_str()
        .unwrap()
        .contains("/sys/fs/cgroup/docker/abc/memory.max"));
    // The data directory's owner is root here (uid 0: a system user), so
    // RemoveIPC spares it…
    if is_root() {
        assert_eq!(check(&v, "RemoveIPC")["status"], "ok");
    }
    if mounted {
        let shm = check(&v, "/dev/shm");
        assert_eq!(shm["status"], "warning", "{shm}");
        assert_eq!(v["host"]["dev_shm_size"], 64 << 20);
    }
    // …while the host's postgres user (uid 1001) would lose its IPC.
    let (code, v, _) = limits(&["--json", "--root", r]);
    assert_eq!(code, 1);
    let rm = check(&v, "RemoveIPC");
    assert_eq!(rm["status"], "too_low", "{rm}");
    assert!(rm["value"].as_str().unwrap().contains("systemd's default"));
    assert!(rm["fix"][0].as_str().unwrap().contains("RemoveIPC=no"));

    // The human report names each fix.
    let (_, _, text) = limits(&["--no-server", "--root", r, data.path().to_str().unwrap()]);
    assert!(text.contains("TOO LOW  kernel.shmmni"), "{text}");
    assert!(text.contains("-> sysctl -w kernel.shmmni=4096"), "{text}");
}

#[test]
fn a_roomy_fixture_host_is_ok() {
    let root = tempfile::tempdir().unwrap();
    roomy(root.path());
    let data = greedy_cluster();
    let (code, v, _) = limits(&[
        "--json",
        "--no-server",
        "--root",
        root.path().to_str().unwrap(),
        data.path().to_str().unwrap(),
    ]);
    let bad: Vec<&Value> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "too_low" || c["status"] == "unknown")
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(code, 0);
    assert_eq!(
        check(&v, "RemoveIPC")["value"],
        "RemoveIPC=no (/etc/systemd/logind.conf.d/postgresql.conf:2)"
    );
}

#[test]
fn unreadable_and_garbled_files_are_unknown_and_named() {
    let root = tempfile::tempdir().unwrap();
    roomy(root.path());
    write(root.path(), "proc/sys/kernel/sem", "lots of semaphores\n");
    std::fs::remove_file(root.path().join("proc/sys/kernel/shmmax")).unwrap();
    let (code, v, _) = limits(&["--json", "--root", root.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(check(&v, "kernel.sem")["status"], "unknown");
    assert_eq!(check(&v, "kernel.shmmax")["status"], "unknown");
    let unread = v["host"]["unreadable"].to_string();
    assert!(
        unread.contains("/proc/sys/kernel/sem: line 1 (kernel.sem)"),
        "{unread}"
    );
    assert!(unread.contains("/proc/sys/kernel/shmmax"), "{unread}");
}

#[test]
fn the_live_host_reads_as_the_kernel_says() {
    let (code, v, text) = limits(&["--json"]);
    assert_ne!(code, 2, "{text}");
    let shmmax: u64 = std::fs::read_to_string("/proc/sys/kernel/shmmax")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(v["host"]["shmmax"], shmmax);
    let sem = std::fs::read_to_string("/proc/sys/kernel/sem").unwrap();
    let semmni: u64 = sem.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(v["host"]["semmni"], semmni);
    let segments = std::fs::read_to_string("/proc/sysvipc/shm")
        .unwrap()
        .lines()
        .count()
        - 1;
    // Other tests may create segments meanwhile: the count is of one moment.
    assert!(
        v["host"]["shm_segments"]
            .as_u64()
            .unwrap()
            .abs_diff(segments as u64)
            < 50
    );
}

#[test]
fn a_real_cluster_is_sized_by_the_server_or_its_mapping() {
    let bindir = require_postgres!();
    let t = cluster(&bindir);
    let mut c = Cleanup::for_dir(&t.data);
    let d = t.data.to_str().unwrap();
    let postgres = bindir.join("postgres");
    let p = postgres.to_str().unwrap();

    // Stopped, 15: the server's own figure, and the lock file it made is
    // gone again.
    let (code, v, text) = limits(&["--json", "--postgres", p, d]);
    assert_ne!(code, 2, "{text}");
    let own: u64 = {
        let out = as_postgres(Command::new(&postgres).args(["-D", d, "-C", "shared_memory_size"]))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    assert_eq!(v["need"]["shared_memory_size"], own << 20);
    assert!(v["need"]["size_source"]
        .as_str()
        .unwrap()
        .starts_with("the server's own figure"));
    assert!(!t.data.join("postmaster.pid").exists());
    let estimate = {
        let (_, v, _) = limits(&["--json", "--no-server", d]);
        v["need"]["shared_memory_size"].as_u64().unwrap()
    };
    assert!(
        estimate.abs_diff(own << 20) * 50 < own << 20,
        "estimate {estimate} vs {own} MB"
    );

    // Running: what it maps; postgres -C is not run (its FATAL would be
    // "lock file already exists"), and the lock file is the server's.
    let child = start(&bindir, &t.data, &mut c);
    let before = std::fs::read_to_string(t.data.join("postmaster.pid")).unwrap();
    let (_, v, _) = limits(&["--json", "--postgres", p, d]);
    assert!(
        v["need"]["size_source"]
            .as_str()
            .unwrap()
            .starts_with("what the running server"),
        "{}",
        v["need"]
    );
    let mapped = v["need"]["shared_memory_size"].as_u64().unwrap();
    assert!(mapped.abs_diff(own << 20) < 2 << 20, "{mapped} vs {own} MB");
    assert_eq!(
        std::fs::read_to_string(t.data.join("postmaster.pid")).unwrap(),
        before
    );
    stop_fast(&t.data, child);
}

#[test]
fn the_estimate_matches_what_old_servers_map() {
    require_postgres!();
    for (name, bindir) in cached_builds() {
        if !name.starts_with("10.") && !name.starts_with("12.") && !name.starts_with("14.") {
            continue;
        }
        let t = cluster(&bindir);
        let mut c = Cleanup::for_dir(&t.data);
        let d = t.data.to_str().unwrap();
        let (_, v, _) = limits(&["--json", d]);
        assert!(
            v["need"]["size_source"]
                .as_str()
                .unwrap()
                .contains("before 15"),
            "{name}"
        );
        let estimate = v["need"]["shared_memory_size"].as_u64().unwrap();
        let child = start(&bindir, &t.data, &mut c);
        let (_, v, _) = limits(&["--json", d]);
        let mapped = v["need"]["shared_memory_size"].as_u64().unwrap();
        stop_fast(&t.data, child);
        assert!(
            estimate.abs_diff(mapped) * 50 < mapped,
            "{name}: estimate {estimate}, mapped {mapped}"
        );
        eprintln!("{name}: estimate {estimate}, the server maps {mapped}");
    }
}

/// Issue 12, item 11: `limits PATH` and `scan PATH` with a path that is not
/// a data directory (a file; a directory without PG_VERSION) are errors,
/// exit 2, as `status` of a file is; `limits` alone stays host-only.
#[test]
fn a_path_that_is_not_a_data_directory_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("passwd");
    std::fs::write(&file, b"root:x:0:0::/root:/bin/sh\n").unwrap();
    for cmd in ["limits", "scan"] {
        assert_cmd::Command::new(common::bin())
            .args([cmd, "--json"])
            .arg(&file)
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicates::str::contains("is not a directory"));
        assert_cmd::Command::new(common::bin())
            .args([cmd, "--json"])
            .arg(d.path())
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicates::str::contains("has no PG_VERSION"));
    }
    let out = assert_cmd::Command::new(common::bin())
        .args(["limits", "--json", "--no-server"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["need"].is_null(), "host only: {v}");
}
