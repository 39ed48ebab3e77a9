//! The scenarios: each builds a situation with the real server, then
//! compares `interlock status` with a real start ([`Cell::probe`]), and ends
//! with [`Cell::finish`]: `interlock fix --yes` where the start was not
//! safe, a start, and the rows counted.

use std::fs;
use std::path::Path;

use rustix::process::Signal;

use crate::cell::{
    line7, running, signal, Cell, Cluster, Server, R, ROWS_AFTER_INSERT, TEMPLATE_ROWS,
};
use crate::env::Build;

#[derive(Debug)]
pub struct Scenario {
    /// Stable name (JSON, `--scenario`).
    pub name: &'static str,
    /// One line for the table.
    pub title: &'static str,
    /// `Err(reason)` where the scenario cannot exist on this version.
    pub applies: fn(&Build) -> Result<(), &'static str>,
    pub run: fn(&mut Cell) -> R,
}

fn always(_: &Build) -> Result<(), &'static str> {
    Ok(())
}

fn port_keys(b: &Build) -> Result<(), &'static str> {
    if b.major <= 12 {
        Ok(())
    } else {
        Err("13+ derive keys from the inode, not the port")
    }
}

fn inode_keys(b: &Build) -> Result<(), &'static str> {
    if b.major >= 13 {
        Ok(())
    } else {
        Err("10-12 derive keys from the port, not the inode")
    }
}

pub const ALL: &[Scenario] = &[
    Scenario {
        name: "clean_stop",
        title: "cleanly stopped cluster",
        applies: always,
        run: clean_stop,
    },
    Scenario {
        name: "running",
        title: "server running; a second start on the same directory",
        applies: always,
        run: running_server,
    },
    Scenario {
        name: "stopped_backend",
        title: "postmaster SIGKILLed while a SIGSTOPped backend stays attached",
        applies: always,
        run: stopped_backend,
    },
    Scenario {
        name: "lock_file_reused_pid",
        title: "lock file naming a live process of the same user that is not a postmaster",
        applies: always,
        run: lock_file_reused_pid,
    },
    Scenario {
        name: "lock_file_start_time",
        title: "lock file naming a live process of the same user started at line 3's time",
        applies: always,
        run: lock_file_start_time,
    },
    Scenario {
        name: "copied_running",
        title: "data directory copied (cp -a) from a running cluster, on its own port",
        applies: always,
        run: copied_running,
    },
    Scenario {
        name: "root_owned_dir",
        title: "data directory chowned to root (mode 0755), its contents still the server's",
        applies: always,
        run: root_owned_dir,
    },
    Scenario {
        name: "mode_0750",
        title: "data directory mode 0750 (10 allows 0700 only)",
        applies: always,
        run: mode_0750,
    },
    Scenario {
        name: "lock_file_empty",
        title: "empty lock file",
        applies: always,
        run: lock_file_empty,
    },
    Scenario {
        name: "lock_file_garbage",
        title: "lock file with garbage",
        applies: always,
        run: lock_file_garbage,
    },
    Scenario {
        name: "zombie_postmaster",
        title: "postmaster killed but not reaped (a zombie named in the lock file)",
        applies: always,
        run: zombie_postmaster,
    },
    Scenario {
        name: "ipcrm_attached",
        title: "ipcrm of the segment while a stopped checkpointer is attached",
        applies: always,
        run: ipcrm_attached,
    },
    Scenario {
        name: "lock_file_deleted_orphan",
        title: "postmaster.pid deleted while an orphaned backend is attached",
        applies: always,
        run: lock_file_deleted_orphan,
    },
    Scenario {
        name: "dsm_leftovers",
        title: "DSM files left in /dev/shm by a crash",
        applies: always,
        run: dsm_leftovers,
    },
    Scenario {
        name: "foreign_segment",
        title: "another user's segment on the first probe key",
        applies: always,
        run: foreign_segment,
    },
    Scenario {
        name: "same_port",
        title: "two clusters on the same port (port-based keys collide)",
        applies: port_keys,
        run: twins_collide,
    },
    Scenario {
        name: "same_inode",
        title: "two data directories with the same inode on different file systems",
        applies: inode_keys,
        run: twins_collide,
    },
    Scenario {
        name: "key_shift",
        title: "the key shift of the case study: a twin stopped, postmaster.pid moved aside",
        applies: always,
        run: key_shift,
    },
    Scenario {
        name: "held_without_lock_file",
        title: "`interlock hold --no-lock-file`: only our segment holds the directory",
        applies: always,
        run: held_without_lock_file,
    },
    Scenario {
        name: "hold_other_dir",
        title: "server killed while `interlock hold` holds another directory on the same first key",
        applies: always,
        run: hold_other_dir,
    },
    Scenario {
        name: "read_only_fs",
        title: "data directory on a read-only file system, then remounted read-write",
        applies: always,
        run: read_only_fs,
    },
    Scenario {
        name: "full_fs",
        title: "data directory on a full file system (no room for postmaster.pid)",
        applies: always,
        run: full_fs,
    },
    Scenario {
        name: "socket_dir_missing",
        title: "a unix_socket_directories entry that does not exist (as after a reboot empties /run)",
        applies: always,
        run: socket_dir_missing,
    },
    Scenario {
        name: "tcp_port_taken",
        title: "another cluster listens on 127.0.0.1 at the same port",
        applies: always,
        run: tcp_port_taken,
    },
    Scenario {
        name: "orphan_other_port",
        title: "started with -p N (not the configured port), crashed with an orphan, postmaster.pid removed",
        applies: port_keys,
        run: orphan_other_port,
    },
];

/// The running server of `c` with rows 1001–1500 committed, and a session
/// whose backend is returned.
fn running_with_session(cell: &mut Cell, c: &Cluster) -> R<(Server, i32)> {
    let s = cell.start_ok(c)?;
    cell.insert_rows(c)?;
    let backend = cell.session(c)?;
    Ok((s, backend))
}

fn write_lock_file(cell: &Cell, c: &Cluster, bytes: &[u8]) -> R {
    let p = c.data.join("postmaster.pid");
    fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))?;
    rustix::fs::chown(
        &p,
        Some(rustix::fs::Uid::from_raw(cell.env.pg_uid)),
        Some(rustix::fs::Gid::from_raw(cell.env.pg_gid)),
    )
    .map_err(|e| e.to_string())
}

fn clean_stop(cell: &mut Cell) -> R {
    let c = cell.cluster("a", cell.port(0))?;
    let s = cell.probe(&c, "start", false)?;
    cell.finish(&c, s, TEMPLATE_ROWS, &[])
}

fn running_server(cell: &mut Cell) -> R {
    let c = cell.cluster("a", cell.port(0))?;
    let s = cell.start_ok(&c)?;
    cell.insert_rows(&c)?;
    if let Some(second) = cell.probe(&c, "a second start", false)? {
        cell.stop(second)?;
    }
    cell.fix_leaves_alone(&c, s.pid)?;
    cell.finish(&c, Some(s), ROWS_AFTER_INSERT, &[])
}

fn stopped_backend(cell: &mut Cell) -> R {
    let c = cell.cluster("a", cell.port(0))?;
    let (s, backend) = running_with_session(cell, &c)?;
    cell.crash_leaving_stopped(&c, s, &[backend])?;
    let s = cell.probe(&c, "start after the crash", false)?;
    cell.finish(&c, s, ROWS_AFTER_INSERT, &[])
}

fn lock_file_reused_pid(cell: &mut Cell) -> R {
    let c = cell.cluster("a", cell.port(0))?;
    let sleeper = cell.bystander()?;
    let text = format!(
        "{sleeper}\n{d}\n1700000000\n{p}\n{d}\n\n",
        d = c.data.display(),
        p = c.port
    );
    write_lock_file(cell, &c, text.as_bytes())?;
    let s = cell.probe(&c, "start", false)?;
    cell.finish(&c, s, TEMPLATE_ROWS, &[sleeper])
}

/// A live process of the postgres user whose start time is line 3's: start
/// time alone must not make it the postmaster.
fn lock_file_start_time(cell: &mut Cell) -> R {
    let c = cell.cluster("a", cell.port(0))?;
    let sleeper = cell.bystander()?;
    let started = interlock::process::ProcFs::default()
        .info(sleeper)
        .map_err(|e| format!("/proc/{sleeper}: {e}"))?
        .start_time;
    let text = format!(
        "{sleeper}\n{d}\n{started}\n{p}\n{d}\n\n",
        d = c.data.display(),
        p = c.port
    );
    write_lock_file(cell, &c, text.as_bytes())?;
    let s = cell.probe(&c, "start", false)?;
    cell.finish(&c, s, TEMPLATE_ROWS, &[sleeper])
}

/// A copy of a running cluster's directory: its lock file names the
/// original's postmaster. Fix must remove the copy's lock file and spare
/// the original, which still serves.
fn copied_running(cell: &mut Cell) -> R {
    let a = cell.cluster("a", cell.port(0))?;
    let sa = cell.start_ok(&a)?;
    cell.insert_rows(&a)?;
    cell.psql(&a, "checkpoint")?;
    let b = cell.cluster("b", cell.port(1))?;
    fs::remove_dir_all(&b.data).map_err(|e| format!("{}: {e}", b.data.display()))?;
    crate::cell::run(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(&a.data)
            .arg(&b.data),
    )?;
    let b = cell.adopt(&b.data, b.port)?;
    let s = cell.probe(&b, "start the copy", false)?;
    let pa = sa.pid;
    cell.finish(&b, s, ROWS_AFTER_INSERT, &[pa])?;
    if !running(pa) {
        cell.problem("the original's postmaster is gone");
    }
    let rows = cell.rows(&a)?;
    if rows != ROWS_AFTER_INSERT {
        cell.problem(format!("the original serves {rows} rows"));
    }
    cell.stop(sa)
}

fn set_owner_and_mode(c: &crate::cell::Cluster, uid: u32, gid: u32, mode: u32) -> R {
    use std::os::unix::fs::PermissionsExt;
    rustix::fs::chown(
        &c.data,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(|e| e.to_string())?;
    fs::set_permissions(&c.data, fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
}

/// `chown root` of the data directory itself: wrong ownership, said by the
/// server's user (pg_control's owner); then given back, it starts.
fn root_owned_dir(cell: &mut Cell) -> R {
    let c = cell.cluster("a", cell.port(0))?;
    set_owner_and_mode(&c, 0, 0, 0o755)?;
    if let Some(s) = cell.probe(&c, "start", false)? {
        cell.stop(s)?;
    }
    let (uid, gid) = (cell.env.pg_uid, cell.env.pg_gid);
    set_owner_and_mode(&c, uid, gid, 0o700)?;
    let s = cell.probe(&c, "start after chown back", false)?;
    cell.finish(&c, s, TEMPLATE_ROWS, &[])
}

/// Mode 0750: PostgreSQL 10's "group or world access", 11+ start.
fn mode_0750(cell: &mut Cell) -> R {
    let c = cell.cluster("a", cell.port(0))?;
    let (uid, gid) = (cell.env.pg_uid, cell.env.pg_gid);
    set_owner_and_mode(&c, uid, gid, 0o750)?;
    let s = match cell.probe(&c, "start", false)? {
        Some(s) => Some(s),
        None => {
            set_owner_and_mode(&c, uid, gid, 0o700)?;
            cell.probe(&c, "start after chmod 700", false)?
        }
    };
    cell.finish(&c, s, TEMPLATE_ROWS, &[])
}

fn lock_file_empty(cell: &mut Cell) -> R {
    let c = cell.cluster("a", cell.port(0))?;
    write_lock_file(cell, &c, b"")?;
    let s = cell.probe(&c, "start", false)?;
    cell.finish(&c, s, TEMPLATE_ROWS, &[])
}

fn lock_file_garbage(cell: &mut Cell) -> R {
    let c = cell.cluster("a", cell.port(0))?;
    write_lock_file(cell, &c, b"not a pid\nat all\n")?;
    let s = cell.probe(&c, "start", false)?;
    cell.finish(&c, s, TEMPLATE_ROWS, &[])
}

fn zombie_postmaster(cell: &mut Cell) -> R {
    let c = cell.cluster("a", cell.port(0))?;
    let s = cell.start_ok(&c)?;
    cell.insert_rows(&c)?;
    let shmid = line7(&c)?.1;
    // Killed, and not reaped: we are its parent and do not wait for it
    // until the clean-up.
    signal(s.pid, Signal::KILL);
    cell.wait_until("the children to exit", |_| {
        crate::cell::nattch(shmid).unwrap_or(0) == 0
    })?;
    let pm = s.pid;
    let s = cell.probe(&c, "start beside the zombie", false)?;
    if running(pm) {
        cell.problem(format!("the zombie {pm} came back to life"));
    }
    cell.finish(&c, s, ROWS_AFTER_INSERT, &[])
}

fn ipcrm_attached(cell: &mut Cell) -> R {
    let c = cell.cluster("a", cell.port(0))?;
    let s = cell.start_ok(&c)?;
    cell.insert_rows(&c)?;
    let checkpointer = *cell
        .children_named(s.pid, "checkpointer")
        .first()
        .ok_or("no checkpointer")?;
    let shmid = line7(&c)?.1;
    cell.crash_leaving_stopped(&c, s, &[checkpointer])?;
    crate::cell::run(std::process::Command::new("ipcrm").args(["-m", &shmid.to_string()]))?;
    let s = cell.probe(&c, "start after ipcrm", false)?;
    cell.finish(&c, s, ROWS_AFTER_INSERT, &[])
}

fn lock_file_deleted_orphan(cell: &mut Cell) -> R {
    let c = cell.cluster("a", cell.port(0))?;
    let (s, backend) = running_with_session(cell, &c)?;
    cell.crash_leaving_stopped(&c, s, &[backend])?;
    fs::remove_file(c.data.join("postmaster.pid")).map_err(|e| e.to_string())?;
    let s = cell.probe(&c, "start without postmaster.pid", false)?;
    cell.finish(&c, s, ROWS_AFTER_INSERT, &[])
}

/// The `/dev/shm` files `pid` maps.
fn dsm_mapped_by(pid: i32) -> Vec<String> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut v: Vec<String> = maps
        .lines()
        .filter_map(|l| l.find("/dev/shm/PostgreSQL.").map(|i| l[i..].to_string()))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn dsm_leftovers(cell: &mut Cell) -> R {
    let c = cell.cluster("a", cell.port(0))?;
    let s = cell.start_ok(&c)?;
    cell.insert_rows(&c)?;
    let files = dsm_mapped_by(s.pid);
    if files.is_empty() {
        return Err("the postmaster maps no /dev/shm/PostgreSQL.* file".into());
    }
    let shmid = line7(&c)?.1;
    cell.kill_postmaster(s)?;
    cell.wait_until("the children to exit", |_| {
        crate::cell::nattch(shmid).unwrap_or(0) == 0
    })?;
    let left: Vec<&String> = files.iter().filter(|f| Path::new(f).exists()).collect();
    cell.notes
        .push(format!("{} DSM file(s) left by the crash", left.len()));
    let s = cell.probe(&c, "start after the crash", false)?;
    if s.is_some() {
        // The server's own startup removes them (through the old segment's
        // header), as status told.
        let still: Vec<&&String> = left
            .iter()
            .filter(|f| Path::new(f.as_str()).exists())
            .collect();
        if !still.is_empty() {
            cell.problem(format!("the start left {still:?} behind"));
        }
    }
    cell.finish(&c, s, ROWS_AFTER_INSERT, &[])
}

fn foreign_segment(cell: &mut Cell) -> R {
    let c = cell.cluster("a", cell.port(0))?;
    let key = cell.first_key(&c)?;
    cell.foreign_segment(key)?;
    let s = cell.probe(&c, "start", false)?;
    if s.is_some() {
        let taken = line7(&c)?.0;
        cell.notes.push(keys(
            "nobody's segment",
            key as u32 as u64,
            "the server",
            taken,
        ));
    }
    cell.finish(&c, s, TEMPLATE_ROWS, &[])
}

/// How two keys relate, in words that hold for every version (the keys
/// themselves differ from run to run).
fn keys(first: &str, k1: u64, second: &str, k2: u64) -> String {
    if k2 == k1 + 1 {
        format!("{second} took the key after {first}'s (K+1)")
    } else {
        format!("{first}: key {k1}, {second}: key {k2}")
    }
}

/// Two clusters with the same first key: one running, the other starts on
/// the next key.
fn twins_collide(cell: &mut Cell) -> R {
    let (a, b) = cell.twins()?;
    let sa = cell.start_ok(&a)?;
    let s = cell.probe(&b, "start the second cluster", false)?;
    if s.is_some() {
        let (ka, kb) = (line7(&a)?.0, line7(&b)?.0);
        cell.notes
            .push(keys("the running cluster", ka, "the second", kb));
    }
    let pa = sa.pid;
    cell.finish(&b, s, TEMPLATE_ROWS, &[pa])?;
    cell.stop(sa)
}

fn key_shift(cell: &mut Cell) -> R {
    let (other, c) = cell.twins()?;
    let so = cell.start_ok(&other)?;
    let (s, backend) = running_with_session(cell, &c)?;
    let (k_other, k) = (line7(&other)?.0, line7(&c)?.0);
    cell.notes
        .push(keys("the twin", k_other, "the crashed cluster", k));
    cell.crash_leaving_stopped(&c, s, &[backend])?;
    cell.stop(so)?;
    if let Some(s) = cell.probe(&c, "start after the twin stopped", false)? {
        cell.stop(s)?;
    }
    let lock = c.data.join("postmaster.pid");
    fs::rename(&lock, c.data.join("postmaster.pid.bak")).map_err(|e| e.to_string())?;
    let s = cell.probe(&c, "start with postmaster.pid moved aside", true)?;
    cell.finish(&c, s, ROWS_AFTER_INSERT, &[])
}

fn hold_other_dir(cell: &mut Cell) -> R {
    let (c, held) = cell.twins()?;
    let (s, backend) = running_with_session(cell, &c)?;
    let hold = cell.hold(&held)?;
    let (k, k_held) = (line7(&c)?.0, line7(&held)?.0);
    cell.notes.push(keys("the server", k, "hold", k_held));
    cell.crash_leaving_stopped(&c, s, &[backend])?;
    let s = cell.probe(&c, "start after the crash", false)?;
    cell.finish(&c, s, ROWS_AFTER_INSERT, &[hold])?;
    // And the held directory is still held: PostgreSQL refuses it.
    let p = cell.status(&held)?;
    if p.verdict == "will_start" {
        cell.problem(format!("the held directory is free after fix: {p:?}"));
    }
    Ok(())
}

/// Our library's segment, without a lock file, must stop a real server of
/// every version (its key is the one that version probes first), and fix
/// must not break a maintenance hold.
fn held_without_lock_file(cell: &mut Cell) -> R {
    let c = cell.cluster("a", cell.port(0))?;
    let hold = cell.hold_with(&c, &["--no-lock-file"])?;
    if let Some(s) = cell.probe(&c, "start while held", false)? {
        cell.stop(s)?;
    }
    cell.fix_refuses(&c, hold)?;
    cell.release(hold)?;
    let s = cell.probe(&c, "start after the hold", false)?;
    cell.finish(&c, s, TEMPLATE_ROWS, &[])
}

fn append_conf(c: &Cluster, text: &str) -> R {
    use std::io::Write;
    let conf = c.data.join("postgresql.conf");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .map_err(|e| format!("{}: {e}", conf.display()))?;
    writeln!(f, "{text}").map_err(|e| e.to_string())
}

fn remount(c: &Cluster, how: &str) -> R {
    let mnt = c.data.parent().ok_or("no mount point")?;
    crate::cell::run(
        std::process::Command::new("mount")
            .args(["-o", &format!("remount,{how}")])
            .arg(mnt),
    )
}

fn read_only_fs(cell: &mut Cell) -> R {
    let c = cell.cluster_on_tmpfs("fs", cell.port(0))?;
    remount(&c, "ro")?;
    if let Some(s) = cell.probe(&c, "start on a read-only file system", false)? {
        cell.stop(s)?;
    }
    remount(&c, "rw")?;
    let s = cell.probe(&c, "start once read-write", false)?;
    cell.finish(&c, s, TEMPLATE_ROWS, &[])
}

fn full_fs(cell: &mut Cell) -> R {
    let c = cell.cluster_on_tmpfs("fs", cell.port(0))?;
    let fill = c.data.parent().ok_or("no mount point")?.join("fill");
    {
        use std::io::Write;
        let mut f = fs::File::create(&fill).map_err(|e| e.to_string())?;
        let block = vec![0u8; 1 << 16];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
    }
    if let Some(s) = cell.probe(&c, "start on a full file system", false)? {
        cell.stop(s)?;
    }
    fs::remove_file(&fill).map_err(|e| e.to_string())?;
    let s = cell.probe(&c, "start once there is room", false)?;
    cell.finish(&c, s, TEMPLATE_ROWS, &[])
}

fn socket_dir_missing(cell: &mut Cell) -> R {
    let c = cell.cluster("a", cell.port(0))?;
    let gone = cell.dir.join("run/postgresql");
    append_conf(
        &c,
        &format!(
            "unix_socket_directories = '{}, {}'",
            c.data.display(),
            gone.display()
        ),
    )?;
    if let Some(s) = cell.probe(&c, "start without the second socket directory", false)? {
        cell.stop(s)?;
    }
    fs::create_dir_all(&gone).map_err(|e| e.to_string())?;
    rustix::fs::chown(
        &gone,
        Some(rustix::fs::Uid::from_raw(cell.env.pg_uid)),
        Some(rustix::fs::Gid::from_raw(cell.env.pg_gid)),
    )
    .map_err(|e| e.to_string())?;
    let s = cell.probe(&c, "start once it exists", false)?;
    cell.finish(&c, s, TEMPLATE_ROWS, &[])
}

fn tcp_port_taken(cell: &mut Cell) -> R {
    let p = cell.port(0);
    let a = cell.cluster("a", p)?;
    let b = cell.cluster("b", p)?;
    for c in [&a, &b] {
        append_conf(c, "listen_addresses = '127.0.0.1'")?;
    }
    let sa = cell.start_ok(&a)?;
    if let Some(s) = cell.probe(&b, "start the second on the same port", false)? {
        cell.stop(s)?;
    }
    cell.stop(sa)?;
    let s = cell.probe(&b, "start once the first stopped", false)?;
    cell.finish(&b, s, TEMPLATE_ROWS, &[])
}

/// `postgres -D DIR -p N` with the configuration on another port: after
/// the crash and `rm postmaster.pid`, the last command line gives the port
/// (the orphan's keys are N's).
fn orphan_other_port(cell: &mut Cell) -> R {
    let mut c = cell.cluster("a", cell.port(0))?;
    c.port = cell.port(1);
    c.args = vec!["-p".into(), c.port.to_string()];
    let (s, backend) = running_with_session(cell, &c)?;
    cell.crash_leaving_stopped(&c, s, &[backend])?;
    fs::remove_file(c.data.join("postmaster.pid")).map_err(|e| e.to_string())?;
    let s = cell.probe(&c, "start -p N without postmaster.pid", false)?;
    cell.finish(&c, s, ROWS_AFTER_INSERT, &[])
}
