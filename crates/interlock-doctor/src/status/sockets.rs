//! The start's settings (port, listen addresses, socket directories: from
//! `--port`, `postmaster.opts`, line 4, the configuration) and its sockets: the
//! TCP port in use, the Unix socket directories, and the socket lock files the
//! server judges as it judges `postmaster.pid` (`Lock_AF_UNIX`,
//! src/backend/libpq/pqcomm.c).

use super::*;

/// What the next start uses: the port, the listen addresses and the
/// socket directories, from the command line the start repeats.
pub(super) struct StartSettings {
    /// One port for the keys (10–12), the TCP sockets and the socket lock files.
    pub(super) port: u16,
    /// Which source decided it.
    pub(super) port_from: String,
    /// `listen_addresses` (default `localhost`).
    pub(super) listen: String,
    /// `unix_socket_directories`, when the last start or the
    /// configuration sets it (else the build's default, unknown here).
    pub(super) socket_dirs: Option<String>,
}

/// The settings of the next start. The port, in order: `--port`; the last
/// start's command line (`postmaster.opts`, which `pg_ctl restart`
/// repeats) or line 4 of `postmaster.pid`; the configuration; for 10–12
/// the key of a segment of this directory (`port * 1000 + n`, see
/// `PGSharedMemoryCreate` in src/backend/port/sysv_shmem.c); else 5432.
pub(super) fn start_settings(
    cx: &mut Ctx<'_>,
    version: &VersionInfo,
    lock_info: &LockFileInfo,
) -> StartSettings {
    let settings = crate::config::read_settings(&cx.opts.root, &cx.real);
    for r in &settings.refused {
        cx.find(
            Code::UnsafeFile,
            Severity::Warning,
            format!("{r}; its settings are not known"),
        );
    }
    // The last start's command line (`pg_ctl restart` repeats it).
    let last = match interlock::safe_fs::read_to_string(
        Some(&cx.real),
        Path::new("postmaster.opts"),
        interlock::safe_fs::OPTS_MAX,
    ) {
        Ok(t) => postmaster_opts_settings(&t),
        Err(e) => {
            if !e.is_not_found() {
                cx.find(
                    if e.is_hostile() {
                        Code::UnsafeFile
                    } else {
                        Code::PermissionDenied
                    },
                    Severity::Warning,
                    format!("{e}; the last start's options are not known"),
                );
            }
            Vec::new()
        }
    };
    let last_get = |name: &str| {
        last.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let segment_port = || {
        if version.keys != Some(KeySeed::Port) {
            return None;
        }
        let mut ours: Vec<&ShmEntry> = cx
            .host
            .shm
            .iter()
            .filter(|e| cx.belongs.get(&e.shmid).is_some_and(Belongs::is_this))
            .filter(|e| e.key > 1000 && e.key % 1000 != 0)
            .collect();
        ours.sort_by_key(|e| std::cmp::Reverse(e.nattch));
        ours.first().and_then(|e| {
            let port = u16::try_from(e.key / 1000).ok()?;
            Some((
                port,
                format!(
                    "the key {} of segment ID {} of this directory",
                    e.key, e.shmid
                ),
            ))
        })
    };
    // A copied directory carries another directory's last start: its
    // postmaster.opts (-D) and lock file (line 2) name that directory, and
    // its port is not this one's.
    let dir_id = cx.dir_id;
    let names_this_dir = |d: &str| {
        let p = Path::new(d);
        !p.is_absolute() || fs::metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == dir_id)
    };
    let last_is_ours = last_get("data_directory").is_none_or(|d| names_this_dir(&d));
    let lock_is_ours = lock_info.data_dir.as_deref().is_none_or(names_this_dir);
    let (port, port_from) = if let Some(p) = cx.opts.port {
        (p, "--port".to_string())
    } else if let Some(p) = last_get("port")
        .filter(|_| last_is_ours)
        .and_then(|p| p.trim().parse().ok())
    {
        (
            p,
            "the last start's command line, postmaster.opts".to_string(),
        )
    } else if let Some(p) = lock_info.port.filter(|_| lock_is_ours) {
        (p, "line 4 of postmaster.pid (the last start)".to_string())
    } else if let Some(p) = settings.port() {
        // The configuration (the `port` setting, `PostPortNumber` in
        // src/backend/postmaster/postmaster.c), when the last start's
        // command line and lock file do not say, or are another
        // directory's (a copied cluster's).
        let file = settings
            .values
            .get("port")
            .map(|s| s.file.display().to_string())
            .unwrap_or_default();
        (p, file)
    } else if let Some(found) = segment_port() {
        found
    } else {
        (5432, "the default".to_string())
    };
    let last_get = |name: &str| last_get(name).filter(|_| last_is_ours);
    let listen = last_get("listen_addresses")
        .or_else(|| settings.get("listen_addresses").map(str::to_string))
        .unwrap_or_else(|| "localhost".to_string());
    let socket_dirs = last_get("unix_socket_directories")
        .or_else(|| settings.get("unix_socket_directories").map(str::to_string));
    StartSettings {
        port,
        port_from,
        listen,
        socket_dirs,
    }
}

/// The Unix-socket lock files the server will meet, in the
/// `unix_socket_directories` of the next start (see [`start_settings`]),
/// else in the directory line 5 of `postmaster.pid` names and, in the
/// usual default directories, only files whose line 2 names this data
/// directory; with the first socket stage FATAL, in the server's order.
pub(super) fn socket_locks(
    cx: &mut Ctx<'_>,
    lock_info: &LockFileInfo,
    reading: Option<&ServerReading>,
    start: &StartSettings,
    user: &startup::ServerUser,
) -> (Vec<SocketLockInfo>, Option<String>) {
    let port = start.port;
    let mut first_fail: Option<String> = None;
    // (directory, whether the server surely uses it)
    let mut dirs: Vec<(String, bool)> = Vec::new();
    if let Some(v) = start.socket_dirs.clone() {
        for d in v.split(',') {
            let d = d.trim().trim_matches('"').trim();
            if !d.is_empty() && !d.starts_with('@') {
                dirs.push((d.to_string(), true));
            }
        }
    } else {
        let line5 = reading
            .and_then(|r| PidFile::parse(&r.buffer).ok())
            .and_then(|p| p.socket_dir)
            .map(|d| d.display().to_string())
            .filter(|d| !d.starts_with('@'));
        if let Some(d) = line5 {
            dirs.push((d, true));
        }
        for d in ["/var/run/postgresql", "/run/postgresql", "/tmp"] {
            dirs.push((d.to_string(), false));
        }
    }
    let mut out: Vec<SocketLockInfo> = Vec::new();
    for (dir, sure) in dirs {
        let path = pg::socket_lock_file(&dir, port);
        if out.iter().any(|s| s.path == path) {
            continue;
        }
        let bytes = match read_lock_file(Path::new(&path)) {
            Ok(Some((bytes, _))) => bytes,
            Ok(None) if sure => {
                match startup::socket_dir(&dir, port, user) {
                    startup::Step::Fine => {}
                    startup::Step::Fails(msg, why) => {
                        cx.find(
                            Code::SocketDirectoryUnusable,
                            Severity::Problem,
                            format!("{why}; the server would stop there when it creates its socket lock file {path}"),
                        );
                        first_fail.get_or_insert(msg);
                    }
                    startup::Step::Unknown(why) => cx.find(
                        Code::SocketDirectoryUnusable,
                        Severity::Warning,
                        format!("whether the server can create {path} cannot be told: {why}"),
                    ),
                }
                continue;
            }
            _ => continue,
        };
        let mut info = SocketLockInfo {
            path: path.clone(),
            state: LockState::Present,
            pid: None,
            data_dir: None,
            this_directory: false,
            identity: None,
            process: None,
            blocks: false,
            would_say: None,
        };
        if bytes.is_empty() {
            info.state = LockState::Empty;
            info.blocks = sure;
            info.would_say = Some(format!("lock file \"{path}\" is empty"));
        } else {
            let r = ServerReading::of(&bytes);
            if r.is_bogus() {
                info.state = LockState::Bogus;
                info.blocks = sure;
                info.would_say = Some(format!(
                    "bogus data in lock file \"{path}\": \"{}\"",
                    String::from_utf8_lossy(&r.buffer)
                ));
            } else {
                let dd = r.buffer.split(|&b| b == b'\n').nth(1).unwrap_or(&[]);
                let dd = Path::new(std::ffi::OsStr::from_bytes(dd));
                info.data_dir = Some(dd.display().to_string());
                info.this_directory = dd == cx.real || dd == cx.shown;
                let pid = r.other_pid();
                info.pid = Some(pid);
                info.process = summary(cx.host, pid);
                let identity = socket_lock_identity(cx, pid, &info, &r);
                info.identity = Some(identity);
                info.blocks = matches!(
                    identity,
                    Identity::Owner | Identity::Zombie | Identity::Reused
                );
                if info.blocks {
                    info.would_say = Some(format!("lock file \"{path}\" already exists"));
                }
            }
        }
        if !sure && !info.this_directory {
            continue;
        }
        // The running server's own file: the lock file stage stops a
        // second start first, so it is shown as the server's, not a danger.
        let own = info.identity == Some(Identity::Owner)
            && lock_info.identity == Some(Identity::Owner)
            && info.pid.is_some()
            && info.pid.map(i32::abs) == lock_info.pid.map(i32::abs);
        if own {
            info.blocks = false;
            info.would_say = None;
            cx.find(
                Code::SocketLockFile,
                Severity::Info,
                format!(
                    "the socket lock file {path} is the running server's own (PID {})",
                    info.pid.unwrap_or(0)
                ),
            );
        } else if info.blocks {
            let what = match (info.state, info.identity) {
                (LockState::Empty, _) => "is empty".to_string(),
                (LockState::Bogus, _) => "does not start with a PID".to_string(),
                (_, Some(Identity::Zombie)) => format!(
                    "names PID {}, a zombie that PostgreSQL's kill(pid, 0) still finds",
                    info.pid.unwrap_or(0)
                ),
                (_, Some(Identity::Owner)) => format!(
                    "names PID {}, this directory's live server",
                    info.pid.unwrap_or(0)
                ),
                _ => format!(
                    "names PID {}, which is now {}",
                    info.pid.unwrap_or(0),
                    info.process
                        .as_ref()
                        .map(|p| p.cmdline.clone())
                        .unwrap_or_default()
                ),
            };
            cx.find(
                Code::SocketLockFile,
                Severity::Problem,
                format!(
                    "the socket lock file {path} {what}; the server would stop there when it creates its socket"
                ),
            );
            if let Some(m) = &info.would_say {
                first_fail.get_or_insert(m.clone());
            }
        }
        out.push(info);
    }
    (out, first_fail)
}

/// The PID of a socket lock file, judged as the server's `kill(pid, 0)`
/// would (as the directory's owner) and against this directory.
pub(super) fn socket_lock_identity(
    cx: &Ctx<'_>,
    pid: i32,
    info: &SocketLockInfo,
    r: &ServerReading,
) -> Identity {
    let owner_uid = cx.owner.0;
    let Some(f) = cx.host.info(pid) else {
        if !cx.host.procfs.is_host() {
            // A fixture tree: its /proc alone says whether the PID runs.
            return Identity::Gone;
        }
        return match rustix::process::Pid::from_raw(pid).map(rustix::process::test_kill_process) {
            Some(Ok(())) | Some(Err(rustix::io::Errno::PERM)) => Identity::OtherUser,
            _ => Identity::Gone,
        };
    };
    if f.uid != owner_uid && f.suid != owner_uid {
        return Identity::OtherUser;
    }
    if f.state == ProcState::Zombie {
        return Identity::Zombie;
    }
    let _ = r;
    if info.this_directory
        && cx
            .host
            .procfs
            .judge_pid(pid, None, &cx.real, owner_uid, std::process::id() as i32)
            .is_alive()
    {
        Identity::Owner
    } else {
        Identity::Reused
    }
}
