//! The startup steps that need the file systems and the network, told
//! without writing anything: creating `postmaster.pid` (`CreateLockFile`
//! called by `CreateDataDirLockFile`, src/backend/utils/init/miscinit.c),
//! the TCP listen sockets and the Unix-socket lock files (`StreamServerPort`
//! and `Lock_AF_UNIX` in src/backend/libpq/pqcomm.c, called from
//! `PostmasterMain` in src/backend/postmaster/postmaster.c).
//!
//! The server runs as the data directory's owner, never as root, so what it
//! may do is judged from mode bits for that user (not `access(2)`, which
//! answers for us), and free space from `f_bavail` (blocks reserved for
//! root are not its).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use interlock_format::nettcp::{
    inet_diag_listen_request, parse_inet_diag_reply, parse_net_tcp, TcpSocket,
};
use rustix::fs::StatVfsMountFlags;

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// It goes through.
    Fine,
    /// The server stops: (its FATAL primary message, why, in our words).
    Fails(String, String),
    /// It cannot be told, and why.
    Unknown(String),
}

/// The server's user: its uid and every group it is in (the primary one
/// from `/etc/passwd`, the others from `/etc/group`, under the root).
pub(crate) struct ServerUser {
    pub uid: u32,
    pub gids: Vec<u32>,
}

impl ServerUser {
    /// The data directory's owner (`dir_gid`: the directory's group, which
    /// counts when the user's groups cannot be read).
    pub fn of(uid: u32, dir_gid: u32, root: &crate::HostRoot) -> ServerUser {
        let mut gids = vec![dir_gid];
        let entry = interlock::process::passwd_entry_at(root.root(), |e| e.uid == uid);
        gids.extend(entry.as_ref().and_then(|e| e.gid));
        if let Some(name) = entry.map(|e| e.name) {
            let group = std::fs::read_to_string(root.at("/etc/group")).unwrap_or_default();
            for l in group.lines() {
                let f: Vec<&str> = l.split(':').collect();
                if f.len() > 3 && f[3].split(',').any(|m| m == name) {
                    gids.extend(f[2].parse::<u32>().ok());
                }
            }
        }
        ServerUser { uid, gids }
    }

    /// Whether the user has the permission bits `want` (r=4, w=2, x=1) on
    /// a file of this metadata, as the kernel's `generic_permission` judges
    /// a non-root user (fs/namei.c: owner bits, else group bits, else
    /// other bits; ACLs not looked at).
    fn may(&self, m: &std::fs::Metadata, want: u32) -> bool {
        let mode = m.mode();
        let bits = if m.uid() == self.uid {
            mode >> 6
        } else if self.gids.contains(&m.gid()) {
            mode >> 3
        } else {
            mode
        } & 7;
        bits & want == want
    }
}

fn errno_text(e: rustix::io::Errno) -> String {
    std::io::Error::from(e)
        .to_string()
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `CreateLockFile` for `postmaster.pid` (cwd = the data directory):
/// `open(O_CREAT|O_EXCL)` then one `write` and `fsync`; a stale file is
/// first `unlink`ed (`stale`: the file is there and its PID is taken for
/// dead). Messages: "could not create lock file", "could not remove old
/// lock file", "could not write lock file" (a short write is ENOSPC).
pub(crate) fn data_dir_lock_file(dir: &Path, user: &ServerUser, stale: bool) -> Step {
    let name = "postmaster.pid";
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) => return Step::Unknown(format!("stat(\"{}\"): {e}", dir.display())),
    };
    let vfs = match rustix::fs::statvfs(dir) {
        Ok(v) => v,
        Err(e) => {
            return Step::Unknown(format!(
                "statvfs(\"{}\") failed ({}), so whether the server can create {name} there cannot be told",
                dir.display(),
                errno_text(e)
            ))
        }
    };
    let (verb, lead) = if stale {
        ("remove old", "the server removes the stale file first")
    } else {
        ("create", "the server creates it")
    };
    if vfs.f_flag.contains(StatVfsMountFlags::RDONLY) {
        return Step::Fails(
            format!("could not {verb} lock file \"{name}\": Read-only file system"),
            format!(
                "the file system of {} is mounted read-only; {lead} there",
                dir.display()
            ),
        );
    }
    if !user.may(&meta, 2) {
        return Step::Fails(
            format!("could not {verb} lock file \"{name}\": Permission denied"),
            format!(
                "{} (mode {:04o}) is not writable by uid {}, the server's user; {lead} there",
                dir.display(),
                meta.mode() & 0o7777,
                user.uid
            ),
        );
    }
    if stale {
        // Removing the old file frees its block and inode for the new one.
        return if vfs.f_bavail == 0 {
            Step::Unknown(format!(
                "the file system of {} is full: the server removes the stale postmaster.pid first, which frees room for its new one, but whether what it writes next fits (postmaster.opts, whose failure stops it; WAL) cannot be told",
                dir.display()
            ))
        } else {
            Step::Fine
        };
    }
    if vfs.f_favail == 0 && vfs.f_files > 0 {
        return Step::Fails(
            format!("could not create lock file \"{name}\": No space left on device"),
            format!("the file system of {} has no free inodes", dir.display()),
        );
    }
    if vfs.f_bavail == 0 {
        return Step::Fails(
            format!("could not write lock file \"{name}\": No space left on device"),
            format!(
                "the file system of {} has no free blocks for a user other than root ({} reserved for root)",
                dir.display(),
                vfs.f_bfree
            ),
        );
    }
    Step::Fine
}

/// `Lock_AF_UNIX` for a socket directory where no lock file is yet:
/// `CreateSocketLockFile` creates `DIR/.s.PGSQL.PORT.lock`, and stops
/// with "could not create lock file" when the directory is missing, not a
/// directory, on a read-only file system, or not writable.
pub(crate) fn socket_dir(dir: &str, port: u16, user: &ServerUser) -> Step {
    let lock = interlock::pg::socket_lock_file(dir, port);
    let fails = |errno: &str, why: String| {
        Step::Fails(
            format!("could not create lock file \"{lock}\": {errno}"),
            why,
        )
    };
    let p = Path::new(dir);
    // Every directory on the way must be searchable by the server's user.
    let mut walked = std::path::PathBuf::new();
    for c in p.components() {
        walked.push(c);
        if walked == p {
            break;
        }
        match std::fs::metadata(&walked) {
            Ok(m) if !m.is_dir() => {
                return fails(
                    "Not a directory",
                    format!("{} is not a directory", walked.display()),
                )
            }
            Ok(m) if !user.may(&m, 1) => {
                return fails(
                    "Permission denied",
                    format!(
                        "{} (mode {:04o}) is not searchable by uid {}, the server's user",
                        walked.display(),
                        m.mode() & 0o7777,
                        user.uid
                    ),
                )
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return fails(
                    "No such file or directory",
                    format!(
                        "the socket directory {dir} does not exist ({} is missing; a reboot empties /run)",
                        walked.display()
                    ),
                )
            }
            Err(e) => return Step::Unknown(format!("stat(\"{}\"): {e}", walked.display())),
        }
    }
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fails(
                "No such file or directory",
                format!("the socket directory {dir} does not exist (a reboot empties /run)"),
            )
        }
        Err(e) => return Step::Unknown(format!("stat(\"{dir}\"): {e}")),
    };
    if !meta.is_dir() {
        return fails("Not a directory", format!("{dir} is not a directory"));
    }
    match rustix::fs::statvfs(p) {
        Ok(v) if v.f_flag.contains(StatVfsMountFlags::RDONLY) => {
            return fails(
                "Read-only file system",
                format!("the socket directory {dir} is on a read-only file system"),
            )
        }
        Ok(_) => {}
        Err(e) => return Step::Unknown(format!("statvfs(\"{dir}\") failed ({})", errno_text(e))),
    }
    if !user.may(&meta, 3) {
        return fails(
            "Permission denied",
            format!(
                "the socket directory {dir} (mode {:04o}, uid {}, gid {}) is not writable by uid {}, the server's user",
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid(),
                user.uid
            ),
        );
    }
    Step::Fine
}

/// The addresses `listen_addresses` makes the server bind, as
/// `PostmasterMain` splits the list and `StreamServerPort` resolves each
/// (`*` = every IPv4 and IPv6 address); `None` when one is a host name
/// other than `localhost`, which would need a name lookup.
fn listen_targets(listen: &str, port: u16, ipv6: bool) -> Option<Vec<(String, Vec<IpAddr>)>> {
    let mut out = Vec::new();
    for item in listen.split(',') {
        let item = item.trim().trim_matches('"').trim();
        if item.is_empty() {
            continue;
        }
        let addrs: Vec<IpAddr> = if item == "*" {
            let mut v = vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
            if ipv6 {
                v.push(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
            }
            v
        } else if let Ok(ip) = item.parse::<IpAddr>() {
            vec![ip]
        } else if item.eq_ignore_ascii_case("localhost") {
            // /etc/hosts, through getaddrinfo as the server asks.
            let mut v: Vec<IpAddr> = ("localhost", port)
                .to_socket_addrs()
                .ok()?
                .map(|a| a.ip())
                .filter(|ip| ipv6 || ip.is_ipv4())
                .collect();
            v.dedup();
            v
        } else {
            return None;
        };
        out.push((item.to_string(), addrs));
    }
    Some(out)
}

/// Whether binding `ip:port` fails with EADDRINUSE beside `listeners`: the
/// server sets SO_REUSEADDR (and IPV6_V6ONLY on IPv6 sockets), so on Linux
/// only a socket in LISTEN on the same port and family whose address is
/// the same or a wildcard on either side stops it (net/ipv4/inet_connection_sock.c,
/// `inet_bind_conflict`), not TIME_WAIT or connected sockets.
fn taken(ip: IpAddr, port: u16, listeners: &[TcpSocket]) -> Option<IpAddr> {
    listeners
        .iter()
        .filter(|l| l.listens() && l.local_port == port)
        .find(|l| {
            l.local.is_ipv4() == ip.is_ipv4()
                && (l.local == ip || l.local.is_unspecified() || ip.is_unspecified())
        })
        .map(|l| l.local)
}

/// The TCP stage: `StreamServerPort` for each address of `listen`; a bind
/// that fails is logged ("could not bind IPv4 address …"), and when no
/// address could be bound the postmaster stops with "could not create any
/// TCP/IP sockets". `proc_net`: the directory holding `tcp` and `tcp6`.
/// `/proc/net`'s TCP sockets, read the first time they are asked for and
/// kept: a `scan` judges every directory's ports from one reading.
#[derive(Debug)]
pub(crate) struct NetTcp {
    dir: std::path::PathBuf,
    ipv6: Option<bool>,
    listeners: Option<Result<Vec<TcpSocket>, String>>,
}

impl NetTcp {
    pub(crate) fn new(proc_net: &Path) -> NetTcp {
        NetTcp {
            dir: proc_net.to_path_buf(),
            ipv6: None,
            listeners: None,
        }
    }

    fn ipv6(&mut self) -> bool {
        *self
            .ipv6
            .get_or_insert_with(|| self.dir.join("if_inet6").exists())
    }

    fn listeners(&mut self) -> &Result<Vec<TcpSocket>, String> {
        let host = self.dir == Path::new("/proc/net");
        self.listeners.get_or_insert_with(|| {
            // The running host's listeners are asked of the kernel; the
            // files are read when it does not answer, and under a fixture
            // tree.
            if let Some(l) = host.then(listeners_by_netlink).flatten() {
                return Ok(l);
            }
            let mut listeners = Vec::new();
            for f in ["tcp", "tcp6"] {
                let path = self.dir.join(f);
                match read_whole(&path) {
                    Ok(t) => match parse_net_tcp(&t) {
                        Ok(v) => listeners.extend(v),
                        Err(e) => return Err(format!("{}: {e}", path.display())),
                    },
                    Err(e) if f == "tcp6" && e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("{}: {e}", path.display())),
                }
            }
            Ok(listeners)
        })
    }
}

/// A `/proc/net/tcp*` file, read with one large buffer: the kernel walks
/// its whole socket hash table for every `read`, however little it returns,
/// so the small first reads of `fs::read_to_string` (the file reports size
/// 0) would each cost as much as the whole file.
fn read_whole(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::with_capacity(256 << 10);
    std::fs::File::open(path)?.read_to_string(&mut text)?;
    Ok(text)
}

/// The listening TCP sockets of this network namespace (IPv4, then IPv6)
/// through `NETLINK_SOCK_DIAG`, as `ss -lt` asks for them: for a dump of
/// listeners only, the kernel walks its listening table alone
/// (`inet_diag_dump_icsk`), where reading `/proc/net/tcp*` walks every
/// bucket of the connection table once per `read` (milliseconds on a host
/// with much memory, however few sockets it has). `None` if the kernel
/// does not answer as expected (no IPv6, no `sock_diag`, a sandbox).
fn listeners_by_netlink() -> Option<Vec<TcpSocket>> {
    use rustix::net::netlink::{self, SocketAddrNetlink};
    use rustix::net::sockopt::{set_socket_timeout, Timeout};
    use rustix::net::{recv, sendto, socket_with, AddressFamily, RecvFlags, SendFlags};
    use rustix::net::{SocketFlags, SocketType};
    let fd = socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(netlink::SOCK_DIAG),
    )
    .ok()?;
    // The kernel answers at once; a receive that waits longer than this is
    // not an answer, and /proc/net is read instead.
    set_socket_timeout(&fd, Timeout::Recv, Some(std::time::Duration::from_secs(1))).ok()?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    for (seq, ipv6) in [(1u32, false), (2, true)] {
        let req = inet_diag_listen_request(seq, ipv6);
        sendto(&fd, &req, SendFlags::empty(), &SocketAddrNetlink::new(0, 0)).ok()?;
        loop {
            let (n, _) = recv(&fd, &mut buf[..], RecvFlags::empty()).ok()?;
            let reply = parse_inet_diag_reply(buf.get(..n)?, seq, ipv6).ok()?;
            out.extend(reply.sockets);
            if reply.done {
                break;
            }
        }
    }
    Some(out)
}

/// The TCP step of a start on `port` with `listen_addresses` `listen`,
/// beside the sockets `net` shows.
pub(crate) fn tcp(listen: &str, port: u16, net: &mut NetTcp) -> Step {
    let ipv6 = net.ipv6();
    let Some(targets) = listen_targets(listen, port, ipv6) else {
        return Step::Unknown(format!(
            "listen_addresses '{listen}' names a host that would need a name lookup"
        ));
    };
    if targets.is_empty() {
        return Step::Fine;
    }
    let listeners = match net.listeners() {
        Ok(l) => l,
        Err(e) => return Step::Unknown(e.clone()),
    };
    let mut why = Vec::new();
    for (item, addrs) in &targets {
        for ip in addrs {
            match taken(*ip, port, listeners) {
                Some(other) => why.push(format!(
                    "{item} ({ip}) port {port}: a socket listens on {other}:{port}"
                )),
                None => return Step::Fine,
            }
        }
    }
    Step::Fails(
        "could not create any TCP/IP sockets".into(),
        format!(
            "every address of listen_addresses '{listen}' is taken: {}",
            why.join("; ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's answer lists the listeners `/proc/net/tcp*` shows,
    /// with the same fields.
    #[test]
    fn netlink_listeners_match_proc_net() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = std::net::TcpListener::bind("[::1]:0").ok();
        let Some(mut by_netlink) = listeners_by_netlink() else {
            return; // no sock_diag here (a sandbox): the files are read
        };
        let mut from_files = Vec::new();
        for f in ["tcp", "tcp6"] {
            if let Ok(t) = std::fs::read_to_string(Path::new("/proc/net").join(f)) {
                from_files.extend(parse_net_tcp(&t).unwrap());
            }
        }
        from_files.retain(TcpSocket::listens);
        let key = |s: &TcpSocket| (s.local_port, s.inode, s.local);
        by_netlink.sort_by_key(key);
        from_files.sort_by_key(key);
        // Other tests may open or close listeners meanwhile: ours are in
        // both, and every socket in both reads the same.
        for l in [Some(&v4), v6.as_ref()].into_iter().flatten() {
            let port = l.local_addr().unwrap().port();
            assert!(by_netlink
                .iter()
                .any(|s| s.local_port == port && s.listens()));
            assert!(from_files.iter().any(|s| s.local_port == port));
        }
        for s in &by_netlink {
            if let Some(f) = from_files.iter().find(|f| f.inode == s.inode) {
                assert_eq!(f, s);
            }
        }
    }

    fn sock(ip: &str, port: u16, state: u8) -> TcpSocket {
        TcpSocket {
            local: ip.parse().unwrap(),
            local_port: port,
            remote: "0.0.0.0".parse().unwrap(),
            remote_port: 0,
            state,
            uid: 0,
            inode: 1,
        }
    }

    #[test]
    fn only_a_listener_on_an_overlapping_address_takes_the_port() {
        let l = [
            sock("127.0.0.1", 5432, 0x0A),
            sock("10.0.0.1", 6000, 0x06),
            sock("::1", 7000, 0x0A),
        ];
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(taken(v4("127.0.0.1"), 5432, &l).is_some());
        assert!(taken(v4("0.0.0.0"), 5432, &l).is_some());
        assert!(taken(v4("127.0.0.2"), 5432, &l).is_none());
        assert!(taken(v4("127.0.0.1"), 5433, &l).is_none());
        // TIME_WAIT does not stop a SO_REUSEADDR bind.
        assert!(taken(v4("10.0.0.1"), 6000, &l).is_none());
        // IPv6 listeners do not take IPv4 addresses (V6ONLY).
        assert!(taken(v4("127.0.0.1"), 7000, &l).is_none());
        assert!(taken(v4("::"), 7000, &l).is_some());
    }

    #[test]
    fn listen_addresses_are_split_and_resolved() {
        let t = listen_targets("127.0.0.1, *", 5432, true).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].1.len(), 2);
        assert!(listen_targets("", 5432, true).unwrap().is_empty());
        assert!(listen_targets("db.example.org", 5432, true).is_none());
    }
}
