//! A real etcd for the fence's tests: Debian's `etcd-server` (3.4), one
//! member ([`Etcd`]) or a cluster of several ([`EtcdCluster`], for the
//! quorum cases) on loopback with free ports and temporary data
//! directories, killed by PID when the guard drops (even when a test
//! fails).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The etcd binary, if installed.
pub fn etcd_binary() -> Option<PathBuf> {
    let p = Path::new("/usr/bin/etcd");
    p.exists().then(|| p.to_path_buf())
}

/// Skip the test (return) with a message when etcd is not installed.
#[macro_export]
macro_rules! require_etcd {
    () => {
        match $crate::etcd::etcd_binary() {
            Some(b) => b,
            None => {
                eprintln!("skipped: etcd is not installed (apt-get install etcd-server)");
                return;
            }
        }
    };
}

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One etcd member; killed (by PID) and its directory removed on drop.
#[derive(Debug)]
pub struct Etcd {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// Start one member and wait until it answers. Ports picked free can be
    /// taken by a test running beside this one before etcd binds them: a
    /// member that exits at once is started again on other ports.
    pub fn start(bin: &Path) -> Etcd {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Etcd::try_start(bin) {
                Ok(etcd) => return etcd,
                Err(log) if attempt < 4 => eprintln!("etcd exited at start, again: {log}"),
                Err(log) => panic!("etcd did not come up: {log}"),
            }
        }
    }

    fn try_start(bin: &Path) -> Result<Etcd, String> {
        let dir = tempfile::tempdir().unwrap();
        // Both listeners held until both ports are known: two ports picked
        // one after the other can be the same.
        let (cp, pp) = {
            let a = TcpListener::bind("127.0.0.1:0").unwrap();
            let b = TcpListener::bind("127.0.0.1:0").unwrap();
            (
                a.local_addr().unwrap().port(),
                b.local_addr().unwrap().port(),
            )
        };
        let client = format!("http://127.0.0.1:{cp}");
        let peer = format!("http://127.0.0.1:{pp}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let child = Command::new(bin)
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t={peer}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        let mut etcd = Etcd {
            child,
            endpoint: client,
            _dir: dir,
        };
        let start = Instant::now();
        while !etcd.healthy() {
            let log =
                || std::fs::read_to_string(etcd._dir.path().join("etcd.log")).unwrap_or_default();
            if etcd.child.try_wait().ok().flatten().is_some() {
                return Err(log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "etcd did not come up: {}",
                log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(etcd)
    }

    /// The member's PID.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Whether `/health` says true.
    pub fn healthy(&self) -> bool {
        health(&self.endpoint)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let pid = self.pid();
        crate::signal(pid, rustix::process::Signal::CONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Several members of one etcd cluster on loopback; every member killed
/// (by PID, after a SIGCONT) and the directories removed on drop.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Child>,
    /// `http://127.0.0.1:PORT` of each member.
    pub endpoints: Vec<String>,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Start `n` members and wait until every one answers healthy (a
    /// quorum and a leader). Started again on other ports when a member
    /// exits at once (a port taken meanwhile).
    pub fn start(bin: &Path, n: usize) -> EtcdCluster {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match EtcdCluster::try_start(bin, n) {
                Ok(c) => return c,
                Err(log) if attempt < 4 => eprintln!("etcd cluster failed at start, again: {log}"),
                Err(log) => panic!("etcd cluster did not come up: {log}"),
            }
        }
    }

    fn try_start(bin: &Path, n: usize) -> Result<EtcdCluster, String> {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = {
            let held: Vec<TcpListener> = (0..2 * n)
                .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
                .collect();
            held.iter()
                .map(|l| l.local_addr().unwrap().port())
                .collect()
        };
        let url = |p: u16| format!("http://127.0.0.1:{p}");
        let initial: Vec<String> = (0..n)
            .map(|i| format!("m{i}={}", url(ports[n + i])))
            .collect();
        let initial = initial.join(",");
        let token = format!("interlock-test-{}-{}", std::process::id(), ports[0]);
        let mut cluster = EtcdCluster {
            members: Vec::new(),
            endpoints: (0..n).map(|i| url(ports[i])).collect(),
            dir,
        };
        for i in 0..n {
            let log = std::fs::File::create(cluster.dir.path().join(format!("m{i}.log"))).unwrap();
            let child = Command::new(bin)
                .args(["--name", &format!("m{i}"), "--data-dir"])
                .arg(cluster.dir.path().join(format!("m{i}")))
                .args(["--listen-client-urls", &url(ports[i])])
                .args(["--advertise-client-urls", &url(ports[i])])
                .args(["--listen-peer-urls", &url(ports[n + i])])
                .args(["--initial-advertise-peer-urls", &url(ports[n + i])])
                .args(["--initial-cluster", &initial])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", &token])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start etcd");
            cluster.members.push(child);
        }
        let start = Instant::now();
        while !(0..n).all(|i| cluster.healthy(i)) {
            let logs = || {
                (0..n)
                    .map(|i| {
                        std::fs::read_to_string(cluster.dir.path().join(format!("m{i}.log")))
                            .unwrap_or_default()
                    })
                    .collect::<Vec<_>>()
                    .join("\n---\n")
            };
            if cluster
                .members
                .iter_mut()
                .any(|m| m.try_wait().ok().flatten().is_some())
            {
                return Err(logs());
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!("not healthy after 30 s: {}", logs()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(cluster)
    }

    /// All client endpoints, comma-separated (for `--etcd`).
    pub fn endpoints_arg(&self) -> String {
        self.endpoints.join(",")
    }

    /// Member `i`'s PID.
    pub fn pid(&self, i: usize) -> i32 {
        self.members[i].id() as i32
    }

    /// Whether member `i`'s `/health` says true (it has a leader).
    pub fn healthy(&self, i: usize) -> bool {
        health(&self.endpoints[i])
    }

    /// SIGSTOP member `i`: to the others it is gone, its state kept.
    pub fn pause(&self, i: usize) {
        crate::signal(self.pid(i), rustix::process::Signal::STOP);
    }

    /// SIGCONT member `i`.
    pub fn resume(&self, i: usize) {
        crate::signal(self.pid(i), rustix::process::Signal::CONT);
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            crate::signal(m.id() as i32, rustix::process::Signal::CONT);
            let _ = m.kill();
            let _ = m.wait();
        }
    }
}

/// Whether the member at `endpoint` answers `/health` with true.
fn health(endpoint: &str) -> bool {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let req = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.contains("\"health\":\"true\"")
}
