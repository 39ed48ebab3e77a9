//! The prose: what to do, in the order that is safe, from a finished report.
//! Decisions are taken in the other modules; this one only words them.

use super::*;

/// What to do, safest first.
pub(super) fn remedy(
    r: &StatusReport,
    cx: &Ctx<'_>,
    stage: &LockStage,
    recycling: bool,
) -> Vec<String> {
    let mut steps = Vec::new();
    // Every path goes into a command or sentence shell-quoted: one word
    // that pastes back to its exact bytes, on one line.
    let dir = shell::quote_os(cx.shown.as_os_str());
    let lock_path = cx.shown.join(interlock::LOCK_FILE_NAME);
    let lock = shell::quote_os(lock_path.as_os_str());
    let has = |c: Code| cx.findings.iter().any(|f| f.code == c);
    let nobody_attached = r.holders.is_empty();
    let look_first = last_holder_elsewhere(r.fence_file.as_ref())
        .map(|l| format!("; {l}"))
        .unwrap_or_default();

    if has(Code::PermissionDenied) && rustix::process::geteuid().as_raw() != 0 {
        steps.push(format!(
            "Run this again as root (or as {}, the directory's owner): some of what decides the answer could not be read.",
            cx.host.user_name(cx.owner.0)
        ));
    }
    if cx.dir_owner != cx.owner.0 {
        steps.push(format!(
            "Give the directory back to the server's user: chown -R {}: {dir}",
            shell::quote(&cx.host.user_name(cx.owner.0))
        ));
    } else if has(Code::DataDirInvalid) {
        if let Some(f) = cx.findings.iter().find(|f| f.code == Code::DataDirInvalid) {
            steps.push(format!("Fix the data directory first: {}.", f.message));
        }
    }
    if cx
        .findings
        .iter()
        .any(|f| f.code == Code::ContainerNamespace && f.severity == Severity::Problem)
    {
        steps.push(format!(
            "Do not start the server here or remove {lock} until you know that no other container (nor the host) runs a server on {dir}: run `interlock status` on the host itself, where every container's processes are visible, on this volume's path there (see the container_namespace finding){look_first}; fix never removes this lock file here. To make a second container refuse by itself, run the server in every container through the etcd fence: interlock run --etcd ENDPOINTS {dir} -- postgres -D {dir}"
        ));
    } else if cx
        .findings
        .iter()
        .any(|f| f.code == Code::SharedStorage && f.severity == Severity::Problem)
    {
        steps.push(format!(
            "Do not start the server here or remove {lock} until you have checked every other host that mounts {dir} for a PostgreSQL server on it (ps -C postgres -o pid,args there; see the shared_storage finding){look_first}; fix never removes this lock file. To make a second host refuse by itself, run the server on every host through the etcd fence: interlock run --etcd ENDPOINTS {dir} -- postgres -D {dir}"
        ));
    } else if cx.findings.iter().any(|f| f.code == Code::SharedStorage)
        && r.verdict != Verdict::Running
    {
        steps.push(format!(
            "The lock file and the segment guard this host only, and {dir} is on storage other hosts may mount: start the server through the etcd fence on every host (interlock run --etcd ENDPOINTS {dir} -- postgres -D {dir}), so that a second host refuses."
        ));
    }
    match r.verdict {
        Verdict::Running => {
            let pid = r.lock_file.pid.unwrap_or(0);
            if pid < 0 {
                steps.push(format!(
                    "Nothing to do: PID {} holds the directory (a single-user server or `interlock hold`); wait for it to finish.",
                    -pid
                ));
            } else if let Some(how) = r.managed_by.manager.restart_step() {
                steps.push(format!(
                    "Nothing to do: the server runs (PID {pid}), managed by {}. To {how}.",
                    r.managed_by.manager.describe()
                ));
            } else {
                steps.push(format!(
                    "Nothing to do: the server runs (PID {pid}). To stop it: pg_ctl stop -D {dir} -m fast"
                ));
            }
            return steps;
        }
        Verdict::WillStart if r.safe_to_start => {
            if let Some(how) = start_step(r, &dir) {
                steps.push(format!("{}{}.", how[..1].to_uppercase(), &how[1..]));
            } else if matches!(stage, LockStage::Dead) {
                steps.push(format!(
                    "Start it (pg_ctl start -D {dir}); it removes the stale {lock} itself."
                ));
            } else {
                steps.push(format!("Start it: pg_ctl start -D {dir}"));
            }
        }
        _ => {}
    }
    if let Some(f) = cx
        .findings
        .iter()
        .find(|f| f.code == Code::ControlFileInvalid)
    {
        steps.push(format!(
            "Do not start the server on a guess: {}. Restore global/pg_control from a backup of this cluster (pg_resetwal rewrites it but loses data; it is the last resort).",
            f.message
        ));
    }
    if let Some(f) = cx.findings.iter().find(|f| f.code == Code::HeldByCreator) {
        steps.push(format!(
            "Do not kill anything and do not remove the segment: {}. Wait for it to finish, or stop it the way it was started ({}).",
            f.message,
            match r.managed_by.manager.restart_step() {
                Some(how) => format!("it is run by {}: {how}", r.managed_by.manager.describe()),
                None => format!("a server: pg_ctl stop -D {dir}"),
            }
        ));
        return steps;
    }
    if cx.findings.iter().any(|f| f.code == Code::MaintenanceHold) {
        steps.push(
            "Do not kill anything and do not remove the segment or the lock file: a maintenance command run by `interlock hold` still works on this directory (see the finding). Wait for it to finish; its keeper exits with it, and PostgreSQL can start then.".into(),
        );
        return steps;
    }
    if let Some(f) = cx.findings.iter().find(|f| f.code == Code::ForeignHolders) {
        steps.push(format!(
            "Find out what the processes of another user are before stopping anything (ls -l /proc/PID/exe, ipcs -m -i ID): {}",
            f.message
        ));
    }
    // Only the owner's processes can be a server's leftovers (the
    // others are named above, never given a kill command).
    let leftovers: Vec<&Holder> = r
        .holders
        .iter()
        .filter(|h| h.process.uid == cx.owner.0)
        .collect();
    if !leftovers.is_empty() && r.lock_file.identity != Some(Identity::Owner) {
        let pids: Vec<String> = leftovers
            .iter()
            .map(|h| h.process.pid.to_string())
            .collect();
        let pids = {
            let mut p = pids;
            p.dedup();
            p.join(" ")
        };
        let stopped: Vec<String> = leftovers
            .iter()
            .filter(|h| h.process.state == ProcState::Stopped)
            .map(|h| h.process.pid.to_string())
            .collect();
        if r.verdict == Verdict::WillStart {
            steps.push("Do not start PostgreSQL yet: it would run alongside the old processes below and corrupt the data.".into());
        }
        if let Manager::Patroni { config, .. } = &r.managed_by.manager {
            let ctl = match config {
                Some(c) => format!("patronictl -c {}", shell::quote(c)),
                None => "patronictl".into(),
            };
            steps.push(format!(
                "Patroni may start the server again while they run: pause it first ({ctl} pause), and resume it once they are gone ({ctl} resume)."
            ));
        }
        steps.push(format!(
            "Stop the old server's leftover processes (all of them are attached to this directory's segment): kill -TERM {pids}"
        ));
        if !stopped.is_empty() {
            steps.push(format!(
                "Some are stopped and cannot act on SIGTERM until continued: kill -CONT {}",
                stopped.join(" ")
            ));
        }
        steps.push(format!(
            "If any is still there after 10 seconds: kill -KILL {pids}"
        ));
        steps.push("Do not remove the segment with ipcrm: that does not stop those processes, it only hides them from the next server.".into());
        let dead = matches!(stage, LockStage::Dead | LockStage::Absent);
        if let Some(how) = start_step(r, &dir).filter(|_| dead) {
            steps.push(format!("Then {how}."));
        } else if dead {
            steps.push(format!(
                "Then start PostgreSQL (pg_ctl start -D {dir}): it removes the old segment{} itself.",
                if matches!(stage, LockStage::Dead) { " and lock file" } else { "" }
            ));
        }
    }
    match stage {
        LockStage::Live(Identity::Zombie) | LockStage::Live(Identity::Reused)
            if nobody_attached =>
        {
            let elsewhere = r.lock_file.serves_elsewhere;
            let what = if matches!(stage, LockStage::Live(Identity::Zombie)) {
                "a zombie holds nothing"
            } else if elsewhere {
                "the process at that PID is proven another data directory's server (leave it running)"
            } else {
                "the process at that PID is not a server of this directory"
            };
            steps.push(format!(
                "Remove the lock file, which is safe because {what} and no process is attached to this directory's segment: rm {lock}"
            ));
            if matches!(stage, LockStage::Live(Identity::Zombie)) {
                if let Some(p) = &r.lock_file.process {
                    steps.push(format!(
                        "Then find out why PID {} does not collect its exited children (in a container, run an init such as tini, or docker run --init).",
                        p.ppid
                    ));
                }
            }
        }
        LockStage::Live(Identity::Zombie) | LockStage::Live(Identity::Reused) => {
            steps.push(format!(
                "Once they are gone, remove the lock file: rm {lock}"
            ));
        }
        LockStage::Empty | LockStage::Bogus(_) => {
            if !cx.workers.is_empty() {
                steps.push(format!(
                    "Wait: processes working in {dir} may be a server that is starting ({}); run this again in a few seconds.",
                    cx.workers.iter().map(|w| w.pid.to_string()).collect::<Vec<_>>().join(" ")
                ));
            } else if nobody_attached {
                steps.push(format!(
                    "Make sure no server is starting in {dir} (nothing is attached to its segment now), then remove the lock file: rm {lock}"
                ));
            } else {
                steps.push(format!(
                    "Once they are gone, remove the lock file: rm {lock}"
                ));
            }
        }
        _ => {}
    }
    for s in r.socket_locks.iter().filter(|s| s.blocks) {
        let postmaster = s
            .process
            .as_ref()
            .is_some_and(|p| p.role == Some(PgRole::Postmaster));
        match s.identity {
            Some(Identity::Owner) => {}
            Some(Identity::Reused) if postmaster => steps.push(format!(
                "Another server (PID {}, data directory {}) uses this port's socket {}: start this one on another port (port = … in postgresql.conf, or -p).",
                s.pid.unwrap_or(0),
                shell::display(s.data_dir.as_deref().unwrap_or("?")),
                shell::quote(s.path.trim_end_matches(".lock"))
            )),
            Some(_) => steps.push(format!(
                "Remove the stale socket lock file, whose PID is not a server: rm {}",
                shell::quote(&s.path)
            )),
            None => steps.push(format!(
                "Make sure no server is starting on this port, then remove the socket lock file: rm {}",
                shell::quote(&s.path)
            )),
        }
    }
    for s in &r.segments {
        if s.nattch == 0 && s.belongs == Whose::ThisDirectory && has(Code::LeakedSegment) {
            steps.push(format!(
                "Remove the leftover segment, which nothing is attached to: ipcrm -m {}",
                s.shmid
            ));
        }
    }
    let leaked: Vec<std::borrow::Cow<'_, str>> = r
        .dsm
        .iter()
        .filter(|d| d.status == DsmStatus::Leaked)
        .map(|d| shell::quote(&d.path))
        .collect();
    if !leaked.is_empty() && !recycling {
        steps.push(format!(
            "Free the leaked dynamic shared memory, which no process maps: rm {}",
            leaked.join(" ")
        ));
    }
    if r.verdict == Verdict::Blocked && steps.is_empty() {
        steps.push("Fix the cause above, then start the server again.".into());
    }
    steps
}

/// How to start the server through its manager, when one is found.
fn start_step(r: &StatusReport, dir: &str) -> Option<String> {
    r.managed_by.manager.start_step(dir)
}
