//! Two "hosts" over one data directory, with real PostgreSQL (Debian's 15)
//! and a real etcd (Debian's etcd-server on loopback): each host is a set
//! of IPC, PID, mount and UTS namespaces of its own (`interlock_testkit::
//! nshost`), so neither sees the other's processes nor its segments, as on
//! shared storage. First the danger, unfenced; then `interlock run --etcd`
//! on each host: refused while the other holds, taken over only after the
//! holder's server is gone (its `interlock run` SIGKILLed or SIGSTOPped,
//! or etcd's quorum lost), never started with etcd unreachable, and one
//! winner in each of 100 races.
//!
//! TTL 3 s (`Timing::for_ttl`): renew every 0.5 s, self-fence after 1 s
//! without a renewal, SIGKILL 0.5 s after the SIGQUIT.
//!
//! Needs root (namespaces; PostgreSQL as `postgres`), PostgreSQL and etcd;
//! skipped, saying why, without them. `INTERLOCK_RACE_ROUNDS` sets the
//! number of races (default 100).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use interlock_testkit::etcd::{free_port, Etcd, EtcdCluster};
use interlock_testkit::nshost::NsHost;
use rustix::process::Signal;

const TTL: &str = "3";
/// fence_after + stop_within for a TTL of 3 s: a holder cut off from etcd
/// has its server stopped within this.
const STOPPED_BY: Duration = Duration::from_millis(1500);
/// The TTL.
const LEASE: Duration = Duration::from_secs(3);
/// Scheduling slack on a loaded test machine.
const SLACK: Duration = Duration::from_millis(700);
/// How long a server may take to start serving.
const START_LIMIT: Duration = Duration::from_secs(30);

/// One data directory that two hosts reach, each with its own socket
/// directory (`/var/run/postgresql` on a real host), one port.
struct Shared {
    bindir: PathBuf,
    dir: TestDir,
    logs: tempfile::TempDir,
    port: u16,
}

impl Shared {
    fn new(bindir: &Path) -> Shared {
        let dir = cluster(bindir);
        let logs = tempfile::tempdir().unwrap();
        for h in HOSTS {
            let s = dir.root.path().join(format!("sock-{h}"));
            std::fs::create_dir(&s).unwrap();
            chown_r(&s);
        }
        Shared {
            bindir: bindir.to_path_buf(),
            dir,
            logs,
            port: free_port(),
        }
    }

    fn data(&self) -> &Path {
        &self.dir.data
    }

    fn sock(&self, host: &str) -> PathBuf {
        self.dir.root.path().join(format!("sock-{host}"))
    }

    /// `postgres -D DATA` with the host's socket directory and no TCP.
    fn postgres(&self, host: &str) -> Vec<String> {
        vec![
            self.bindir.join("postgres").display().to_string(),
            "-D".into(),
            self.data().display().to_string(),
            "-k".into(),
            self.sock(host).display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-c".into(),
            "listen_addresses=".into(),
        ]
    }

    /// The server started as PostgreSQL's own packaging would, unfenced.
    fn unfenced(&self, host: &str) -> Vec<String> {
        let mut v: Vec<String> = [
            "setpriv",
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
        ]
        .map(String::from)
        .to_vec();
        v.extend(self.postgres(host));
        v
    }

    /// The server under `interlock run --etcd` (it takes the local
    /// interlock itself: `--server-locks`).
    fn fenced(&self, etcd: &str, host: &str) -> Vec<String> {
        let mut v = vec![
            bin().display().to_string(),
            "run".into(),
            "--etcd".into(),
            etcd.into(),
            "--ttl".into(),
            TTL.into(),
            "--name".into(),
            "shared-lun".into(),
            "--server-locks".into(),
            self.data().display().to_string(),
            "--".into(),
        ];
        v.extend(self.postgres(host));
        v
    }

    /// `sql` through `host`'s socket, as postgres; None when refused.
    fn psql(&self, host: &str, sql: &str) -> Option<String> {
        let out = as_postgres(
            Command::new(self.bindir.join("psql"))
                .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", "postgres"])
                .args(["-d", "postgres", "-p", &self.port.to_string(), "-h"])
                .arg(self.sock(host))
                .args(["-c", sql])
                .env("PGCONNECT_TIMEOUT", "3")
                .stdin(Stdio::null()),
        )
        .output()
        .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn serving(&self, host: &str) -> bool {
        self.psql(host, "select 1").as_deref() == Some("1")
    }

    fn start(&self, host: &str, argv: &[String]) -> NsHost {
        NsHost::start(host, self.logs.path(), argv)
    }
}

/// What one start on a host came to.
enum Outcome {
    /// Its server answers.
    Serving,
    /// `interlock run` (or the server) exited with this code.
    Exited(i32),
}

/// Wait until `h`'s server answers or its command exits.
fn outcome(s: &Shared, h: &NsHost, limit: Duration) -> Outcome {
    let start = Instant::now();
    loop {
        if let Some(code) = h.exit_code() {
            return Outcome::Exited(code);
        }
        if h.postmaster().is_some() && s.serving(&h.name) {
            return Outcome::Serving;
        }
        assert!(
            start.elapsed() < limit,
            "{}: neither serving nor exited after {limit:?}: {}",
            h.name,
            h.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The fenced server started on `host`, serving.
fn serving(s: &Shared, etcd: &str, host: &str) -> NsHost {
    let h = s.start(host, &s.fenced(etcd, host));
    assert!(
        matches!(outcome(s, &h, START_LIMIT), Outcome::Serving),
        "{}",
        h.stderr()
    );
    h
}

/// The fencing token `interlock run` printed.
fn token(h: &NsHost) -> i64 {
    let out = h.stdout();
    out.lines()
        .find_map(|l| l.strip_prefix("fencing token "))
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("no fencing token in {out:?}: {}", h.stderr()))
}

/// Start the fenced server on `host` again and again until it serves (the
/// key free); each refusal must be exit 75 naming a holder. Returns the
/// host and when it started serving.
fn take_over(s: &Shared, etcd: &str, host: &str, limit: Duration) -> (NsHost, Instant) {
    let start = Instant::now();
    loop {
        let h = s.start(host, &s.fenced(etcd, host));
        match outcome(s, &h, START_LIMIT) {
            Outcome::Serving => return (h, Instant::now()),
            Outcome::Exited(75) => {
                assert!(h.postmaster().is_none());
                assert!(
                    start.elapsed() < limit,
                    "{host} never took over: {}",
                    h.stderr()
                );
            }
            Outcome::Exited(c) => panic!("{host}: exit {c}: {}", h.stderr()),
        }
        drop(h);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Both hosts start the fenced server at once: each opens the FIFO `gun`
/// for reading, which blocks until the test opens it for writing, then
/// execs; both are let go by that one open, once both wait in it (started
/// in turn, A first or B first by `round`). Returns both hosts (A, B) and
/// the one that serves, if any; panics if both do, or on an exit other
/// than 75.
fn race(s: &Shared, etcd: &str, gun: &Path, round: usize) -> (Vec<NsHost>, Option<usize>) {
    let at_gun = |h: &NsHost| {
        h.processes().iter().any(|p| {
            std::fs::read_to_string(format!("/proc/{}/wchan", p.pid))
                .is_ok_and(|w| w == "wait_for_partner")
        })
    };
    let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
    let mut started: Vec<(usize, NsHost)> = order
        .iter()
        .map(|&i| {
            let h = HOSTS[i];
            let mut argv: Vec<String> = ["sh", "-c", r#"exec 3<"$0"; exec 3<&-; exec "$@""#]
                .map(String::from)
                .to_vec();
            argv.push(gun.display().to_string());
            argv.extend(s.fenced(etcd, h));
            (i, s.start(h, &argv))
        })
        .collect();
    started.sort_by_key(|(i, _)| *i);
    let hs: Vec<NsHost> = started.into_iter().map(|(_, h)| h).collect();
    wait_until("both hosts at the starting gun", || hs.iter().all(at_gun));
    drop(std::fs::OpenOptions::new().write(true).open(gun).unwrap());
    let outs: Vec<Outcome> = hs.iter().map(|h| outcome(s, h, START_LIMIT)).collect();
    let win = match (&outs[0], &outs[1]) {
        (Outcome::Serving, Outcome::Exited(75)) => Some(0),
        (Outcome::Exited(75), Outcome::Serving) => Some(1),
        (Outcome::Exited(75), Outcome::Exited(75)) => None,
        (Outcome::Serving, Outcome::Serving) => panic!("round {round}: both hosts serve"),
        _ => panic!(
            "round {round}: host-a {}; host-b {}",
            hs[0].stderr(),
            hs[1].stderr()
        ),
    };
    (hs, win)
}

/// The two hosts' names.
const HOSTS: [&str; 2] = ["host-a", "host-b"];

/// A FIFO for [`race`], in the logs directory.
fn starting_gun(s: &Shared) -> PathBuf {
    let gun = s.logs.path().join("gun");
    if !gun.exists() {
        let st = Command::new("mkfifo").arg(&gun).status().unwrap();
        assert!(st.success());
    }
    gun
}

/// The danger this fence exists for: two hosts, one data directory, no
/// fence. Each server's interlock looks only at its own host: the lock
/// file names a PID that is not alive (or is the server itself) there,
/// and line 7's segment is not in its IPC namespace; so the second starts
/// beside the first, and both write to one cluster.
#[test]
fn without_the_fence_both_hosts_start_on_one_data_directory() {
    interlock_testkit::require_namespaces!();
    let bindir = interlock_testkit::require_postgres!();
    let s = Shared::new(&bindir);

    let a = s.start("host-a", &s.unfenced("host-a"));
    assert!(
        matches!(outcome(&s, &a, START_LIMIT), Outcome::Serving),
        "{}",
        a.stderr()
    );
    // What `interlock status` says on host B meanwhile, without etcd: the
    // lock file names a PID that does not run there and the segment is
    // not in its IPC namespace, so PostgreSQL will start (as it does,
    // below); but in a container's namespace that cannot prove the
    // directory unused: `unknown`, and `fix` refuses to touch the file.
    let st = s.start(
        "host-b",
        &[
            bin().display().to_string(),
            "status".into(),
            "--json".into(),
            s.data().display().to_string(),
        ],
    );
    st.wait_exit(Duration::from_secs(20)).expect("status ended");
    let report: serde_json::Value = serde_json::from_str(&st.stdout())
        .unwrap_or_else(|e| panic!("{e}: {} {}", st.stdout(), st.stderr()));
    eprintln!("status on host-b: {}", report["verdict"]);
    assert_eq!(report["verdict"], "unknown", "{report:#}");
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert!(codes.contains(&"container_namespace"), "{report:#}");
    drop(st);
    let fix = s.start(
        "host-b",
        &[
            bin().display().to_string(),
            "fix".into(),
            "--json".into(),
            s.data().display().to_string(),
        ],
    );
    fix.wait_exit(Duration::from_secs(20)).expect("fix ended");
    assert!(
        fix.stdout().contains("\"other_host\""),
        "fix on host-b: {} {}",
        fix.stdout(),
        fix.stderr()
    );
    drop(fix);

    let b = s.start("host-b", &s.unfenced("host-b"));
    match outcome(&s, &b, START_LIMIT) {
        Outcome::Serving => {}
        Outcome::Exited(c) => panic!(
            "PostgreSQL on host-b refused ({c}); this test's premise, that a server \
             cannot see another host's, no longer holds: {}",
            b.stderr()
        ),
    }
    // Two postmasters, one data directory.
    let (pa, pb) = (a.postmaster().unwrap(), b.postmaster().unwrap());
    assert_ne!(pa, pb);
    assert!(s.serving("host-a") && s.serving("host-b"));
    let dir = |pid: i32| std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert_eq!(dir(pa), dir(pb));
    eprintln!(
        "two servers on {}: postmaster {pa} on host-a, {pb} on host-b",
        s.data().display()
    );
}

/// Fenced: host B is refused, naming host A, while A's server runs; after
/// a SIGKILL of A's `interlock run` its server is stopped (by the fence's
/// watchdog), the lease lapses, B takes over, and every committed row is
/// there.
#[test]
fn second_host_refused_naming_the_first_then_takes_over_after_sigkill_with_every_row() {
    interlock_testkit::require_namespaces!();
    let etcd_bin = interlock_testkit::require_etcd!();
    let bindir = interlock_testkit::require_postgres!();
    let etcd = Etcd::start(&etcd_bin);
    let s = Shared::new(&bindir);

    let a = serving(&s, &etcd.endpoint, "host-a");
    let token_a = token(&a);
    let run_a = a.interlock_run().expect("interlock run on host-a");
    let pm_a = a.postmaster().unwrap();

    // B, refused: exit 75, A named (its host name, its `interlock run`'s
    // PID in its own namespace, the token), B's server never started.
    let b = s.start("host-b", &s.fenced(&etcd.endpoint, "host-b"));
    assert_eq!(
        b.wait_exit(Duration::from_secs(20)),
        Some(75),
        "{}",
        b.stderr()
    );
    let refusal = b.stderr();
    assert!(refusal.contains("is held by host host-a"), "{refusal}");
    assert!(refusal.contains(&format!("token {token_a}")), "{refusal}");
    assert!(b.postmaster().is_none() && !s.serving("host-b"));
    eprintln!("host-b refused: {}", refusal.trim());
    drop(b);

    s.psql(
        "host-a",
        "create table t(i int); insert into t select generate_series(1, 1000)",
    )
    .expect("rows committed on host-a");

    let killed = Instant::now();
    signal(run_a, Signal::KILL);
    wait_until("host-a's postmaster to exit", || !running(pm_a));
    let stopped = killed.elapsed();
    eprintln!("host-a's postmaster stopped {stopped:?} after SIGKILL of its interlock run");
    assert!(stopped < STOPPED_BY + SLACK, "{stopped:?}");
    assert!(
        a.postmaster().is_none(),
        "a postgres process left on host-a"
    );

    let (b, serving) = take_over(&s, &etcd.endpoint, "host-b", LEASE * 3);
    let took = serving - killed;
    eprintln!("host-b serving {took:?} after the SIGKILL");
    assert!(token(&b) > token_a);
    assert_eq!(
        s.psql("host-b", "select count(*) from t").as_deref(),
        Some("1000")
    );
    // And host-a cannot come back while B holds.
    drop(a);
    let again = s.start("host-a", &s.fenced(&etcd.endpoint, "host-a"));
    assert_eq!(again.wait_exit(Duration::from_secs(20)), Some(75));
    assert!(again.stderr().contains("is held by host host-b"));
}

/// SIGSTOP of host A's `interlock run`: its server is stopped (by the
/// watchdog, which is not stopped) before the lease can lapse, and host B,
/// trying all along, gets in only after that.
#[test]
fn sigstop_of_the_holders_interlock_its_server_stops_before_the_other_host_starts() {
    interlock_testkit::require_namespaces!();
    let etcd_bin = interlock_testkit::require_etcd!();
    let bindir = interlock_testkit::require_postgres!();
    let etcd = Etcd::start(&etcd_bin);
    let s = Shared::new(&bindir);

    let a = serving(&s, &etcd.endpoint, "host-a");
    let run_a = a.interlock_run().unwrap();
    let pm_a = a.postmaster().unwrap();

    let stopped_at = Instant::now();
    signal(run_a, Signal::STOP);
    // B tries from the moment A is paused; A's server must be gone
    // before B's starts.
    let watcher = std::thread::spawn(move || {
        wait_until("host-a's postmaster to exit", || !running(pm_a));
        Instant::now()
    });
    let (b, serving) = take_over(&s, &etcd.endpoint, "host-b", LEASE * 3);
    let a_gone = watcher.join().unwrap();
    eprintln!(
        "host-a's postmaster gone {:?} after SIGSTOP of its interlock run; host-b serving \
         after {:?}",
        a_gone - stopped_at,
        serving - stopped_at
    );
    assert!(a_gone - stopped_at < STOPPED_BY + SLACK);
    assert!(a_gone < serving, "host-b served while host-a's server ran");
    assert!(
        serving - stopped_at >= LEASE - SLACK,
        "taken over before the lease could have lapsed"
    );
    assert!(s.serving("host-b") && !s.serving("host-a"));
    signal(run_a, Signal::CONT);
    drop(b);
}

/// Quorum lost (two of three members stopped): the holder cannot renew
/// and stops its server before its TTL; meanwhile the other host cannot
/// take the key; once quorum is back, both hosts race and one runs.
#[test]
fn quorum_lost_the_holder_self_fences_nobody_takes_over_then_one_host_runs() {
    interlock_testkit::require_namespaces!();
    let etcd_bin = interlock_testkit::require_etcd!();
    let bindir = interlock_testkit::require_postgres!();
    let etcd = EtcdCluster::start(&etcd_bin, 3);
    let endpoints = etcd.endpoints_arg();
    let s = Shared::new(&bindir);

    let a = serving(&s, &endpoints, "host-a");
    let pm_a = a.postmaster().unwrap();

    let lost = Instant::now();
    etcd.pause(1);
    etcd.pause(2);
    let watcher = std::thread::spawn(move || {
        wait_until("host-a's postmaster to exit", || !running(pm_a));
        lost.elapsed()
    });
    // Host B tries all through the outage: refused each time.
    let mut refused = 0;
    while lost.elapsed() < LEASE * 2 {
        let b = s.start("host-b", &s.fenced(&endpoints, "host-b"));
        match outcome(&s, &b, START_LIMIT) {
            Outcome::Exited(75) => refused += 1,
            Outcome::Exited(c) => panic!("host-b: exit {c}: {}", b.stderr()),
            Outcome::Serving => panic!("host-b started without quorum: {}", b.stderr()),
        }
    }
    let a_gone = watcher
        .join()
        .expect("host-a's server stopped without quorum");
    eprintln!(
        "quorum lost: host-a's postmaster gone after {a_gone:?} (TTL {LEASE:?}); host-b refused \
         {refused} times"
    );
    // Within fence_after + stop_within (TTL/2), though the member left
    // alone may be the leader, which grants keep-alives until it notices
    // it lost its quorum: a renewal counts only once a quorum read
    // confirms it (interlock_fence::lease).
    assert!(a_gone < STOPPED_BY + SLACK && a_gone < LEASE, "{a_gone:?}");
    assert!(a.stderr().contains("self-fence"), "{}", a.stderr());
    assert!(refused > 0);

    // Quorum back: both hosts try; exactly one serves.
    etcd.resume(1);
    etcd.resume(2);
    let back = Instant::now();
    let gun = starting_gun(&s);
    let mut round = 0;
    let (hs, win) = loop {
        assert!(back.elapsed() < LEASE * 8, "nobody took over");
        match race(&s, &endpoints, &gun, round) {
            (hs, Some(win)) => break (hs, win),
            (_, None) => std::thread::sleep(Duration::from_millis(100)),
        }
        round += 1;
    };
    let (w, name) = (&hs[win], HOSTS[win]);
    eprintln!("quorum back: {name} serving after {:?}", back.elapsed());
    let other = if name == "host-a" { "host-b" } else { "host-a" };
    assert!(s.serving(name) && !s.serving(other));
    assert!(w.interlock_run().is_some());
}

/// etcd unreachable at start: refused with exit 75, saying why and how to
/// run unfenced on purpose; the server never started.
#[test]
fn etcd_unreachable_at_start_the_server_is_not_started() {
    interlock_testkit::require_namespaces!();
    let bindir = interlock_testkit::require_postgres!();
    let s = Shared::new(&bindir);
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let a = s.start("host-a", &s.fenced(&nobody, "host-a"));
    assert_eq!(
        a.wait_exit(Duration::from_secs(20)),
        Some(75),
        "{}",
        a.stderr()
    );
    let err = a.stderr();
    assert!(err.contains("not running the command"), "{err}");
    assert!(err.contains("--local-only"), "{err}");
    assert!(a.postmaster().is_none() && !s.data().join("postmaster.pid").exists());
}

/// Both hosts start at once, again and again: each round exactly one
/// serves and the other is refused naming it.
#[test]
fn two_hosts_racing_to_start_exactly_one_runs_each_round() {
    interlock_testkit::require_namespaces!();
    let etcd_bin = interlock_testkit::require_etcd!();
    let bindir = interlock_testkit::require_postgres!();
    let rounds: usize = std::env::var("INTERLOCK_RACE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(100);
    let etcd = Etcd::start(&etcd_bin);
    let s = Shared::new(&bindir);
    let gun = starting_gun(&s);
    let started = Instant::now();
    let mut wins = [0usize; 2];
    let mut last_token = 0;
    for round in 0..rounds {
        let (hs, win) = race(&s, &etcd.endpoint, &gun, round);
        let win = win.unwrap_or_else(|| {
            panic!(
                "round {round}: no winner: host-a {}; host-b {}",
                hs[0].stderr(),
                hs[1].stderr()
            )
        });
        wins[win] += 1;
        let (w, l) = (&hs[win], &hs[1 - win]);
        assert!(
            l.stderr().contains(&format!("is held by host {}", w.name)),
            "round {round}: {}",
            l.stderr()
        );
        assert!(!s.serving(&l.name));
        let t = token(w);
        assert!(
            t > last_token,
            "round {round}: token {t} after {last_token}"
        );
        last_token = t;
        // A fast shutdown, passed on by `interlock run`, which then
        // revokes the lease: the next round starts from a free key.
        let run = w.interlock_run().unwrap();
        signal(run, Signal::INT);
        assert_eq!(
            w.wait_exit(Duration::from_secs(30)),
            Some(0),
            "round {round}: {}",
            w.stderr()
        );
    }
    eprintln!(
        "{rounds} rounds in {:?}: host-a won {}, host-b {}",
        started.elapsed(),
        wins[0],
        wins[1]
    );
}
