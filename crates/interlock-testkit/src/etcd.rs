//! A real etcd for the fence's tests: Debian's `etcd-server` (3.4), one
//! member on loopback with free ports and a temporary data directory,
//! killed by PID when the guard drops (even when a test fails).

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
        use std::io::{Read, Write};
        let addr = self.endpoint.trim_start_matches("http://");
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
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let pid = self.pid();
        crate::signal(pid, rustix::process::Signal::CONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
