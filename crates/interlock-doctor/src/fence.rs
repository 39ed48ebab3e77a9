//! The fence across hosts (`interlock run --etcd`): who holds the data
//! directory's key in etcd, and what that does to a report's verdict.
//!
//! Another host (or this host in another boot: a different boot id) holding
//! the key makes the verdict `blocked`, whatever this host shows: a server
//! started here would be the second one. This host holding it is for the
//! record. etcd unreachable makes the verdict `unknown`: whether another
//! host runs a server cannot be told.

use std::path::Path;
use std::time::{Duration, Instant};

use interlock_fence::etcd::{Client, EtcdError, Holder};
use interlock_fence::key::{self, HolderValue};
use serde::Serialize;

use crate::{Code, Finding, Severity, StatusReport, Verdict};

/// How long the fence's reads may take, in all.
pub const LIMIT: Duration = Duration::from_secs(3);

/// Who holds the fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FenceState {
    /// Nobody: the key is absent.
    Free,
    /// This host, this boot.
    HeldHere,
    /// Another host, or this host in another boot.
    HeldElsewhere,
    /// It cannot be told.
    Unknown,
}

/// The holder, as it wrote its value.
#[derive(Debug, Clone, Serialize)]
pub struct FenceHolder {
    pub host: String,
    pub boot_id: String,
    pub pid: Option<u32>,
    /// The key's create revision: the holder's fencing token.
    pub token: i64,
    pub since: String,
    /// Seconds left on the holder's lease (`-1`: expired), when read.
    pub lease_expires_in: Option<i64>,
}

/// The fence, as `status --etcd` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct FenceInfo {
    /// The key (`/interlock/SYSID/NAME`), when the system identifier was
    /// read.
    pub key: Option<String>,
    pub state: FenceState,
    pub holder: Option<FenceHolder>,
    /// Why it cannot be told, when unknown.
    pub error: Option<String>,
    /// In one line.
    pub line: String,
}

fn holder_of(h: &Holder) -> FenceHolder {
    let v = HolderValue::parse(&h.value);
    FenceHolder {
        host: v.host,
        boot_id: v.boot_id,
        pid: v.pid,
        token: h.create_revision,
        since: v.since,
        lease_expires_in: h.ttl_remaining,
    }
}

fn holder_words(h: &FenceHolder) -> String {
    format!(
        "host {} (PID {}, token {}, since {}, {})",
        h.host,
        h.pid.map_or("?".into(), |p| p.to_string()),
        h.token,
        h.since,
        key::lease_words(h.lease_expires_in)
    )
}

/// Reads fences from one etcd for one or many data directories (`status`
/// reads one, `scan` every cluster it finds): one client, one budget for
/// every read together, and once etcd has been found unreachable no
/// further attempt, so a scan pays the time limit once, not once per
/// cluster.
///
/// What counts, for each directory: the key `/interlock/SYSID/NAME`
/// ([`key::key_for`], the rule `interlock run` creates it by), NAME given
/// or else the directory's absolute path as given (`std::path::absolute`,
/// as `run` takes it: no symbolic link resolved). A directory fenced under
/// another name, or under another spelling of its path, is not found by
/// `scan`, which has no name to give.
#[derive(Debug)]
pub struct FenceReader {
    client: Result<Client, String>,
    host: String,
    boot_id: String,
    deadline: Instant,
    budget: Duration,
    unreachable: Option<String>,
}

impl FenceReader {
    /// A reader of etcd at `endpoints` (comma-separated), as seen from
    /// this host (`host`, `boot_id`), every read within `budget` in all.
    pub fn new(endpoints: &str, budget: Duration, host: &str, boot_id: &str) -> FenceReader {
        FenceReader {
            client: Client::new(endpoints).map_err(|e| e.to_string()),
            host: host.into(),
            boot_id: boot_id.into(),
            deadline: Instant::now() + budget,
            budget,
            unreachable: None,
        }
    }

    /// A reader as this host sees it ([`key::this_host`],
    /// [`key::this_boot_id`]).
    pub fn here(endpoints: &str, budget: Duration) -> FenceReader {
        FenceReader::new(endpoints, budget, &key::this_host(), &key::this_boot_id())
    }

    /// Why etcd could not be reached (the client not made, an endpoint
    /// list refused, or no endpoint answering), once it is known: every
    /// read since then, and after, is unknown for that reason.
    pub fn unreachable(&self) -> Option<&str> {
        self.unreachable.as_deref()
    }

    /// Read the fence of `data_dir`, named `name` or else by its absolute
    /// path.
    pub fn read(&mut self, data_dir: &Path, name: Option<&str>) -> FenceInfo {
        let unknown = |key: Option<String>, error: String| FenceInfo {
            key,
            state: FenceState::Unknown,
            holder: None,
            line: format!("cannot be told: {error}"),
            error: Some(error),
        };
        let abs = match std::path::absolute(data_dir) {
            Ok(p) => p,
            Err(e) => return unknown(None, format!("{}: {e}", data_dir.display())),
        };
        let k = match key::key_for(&abs, name) {
            Ok(k) => k,
            Err(e) => return unknown(None, format!("cannot read the system identifier: {e}")),
        };
        let client = match &self.client {
            Ok(c) => c,
            Err(e) => {
                self.unreachable = Some(e.clone());
                return unknown(Some(k), e.clone());
            }
        };
        if let Some(e) = &self.unreachable {
            return unknown(Some(k), e.clone());
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let e = format!(
                "etcd too slow: no time left for this read ({} ms for every read in all)",
                self.budget.as_millis()
            );
            return unknown(Some(k), e);
        }
        match client.get(&k, left.min(LIMIT)) {
            Err(e) => {
                if matches!(e, EtcdError::Unreachable(_)) {
                    self.unreachable = Some(e.to_string());
                }
                unknown(Some(k), e.to_string())
            }
            Ok(None) => FenceInfo {
                line: format!("{k}: not held"),
                key: Some(k),
                state: FenceState::Free,
                holder: None,
                error: None,
            },
            Ok(Some(h)) => {
                let here = HolderValue::parse(&h.value).is_here(&self.host, &self.boot_id);
                let holder = holder_of(&h);
                FenceInfo {
                    line: format!(
                        "{k}: held by {}{}",
                        holder_words(&holder),
                        if here { ", this host" } else { "" }
                    ),
                    key: Some(k),
                    state: if here {
                        FenceState::HeldHere
                    } else {
                        FenceState::HeldElsewhere
                    },
                    holder: Some(holder),
                    error: None,
                }
            }
        }
    }
}

/// Read the fence of `data_dir` (named `name`, else by its absolute path)
/// from etcd at `endpoints`, as seen from this host (`host`, `boot_id`),
/// within [`LIMIT`].
pub fn read_fence(
    data_dir: &Path,
    endpoints: &str,
    name: Option<&str>,
    host: &str,
    boot_id: &str,
) -> FenceInfo {
    FenceReader::new(endpoints, LIMIT, host, boot_id).read(data_dir, name)
}

/// Add `fence` to `report`: its finding, and the verdict and remedy it
/// decides.
pub fn apply_fence(report: &mut StatusReport, fence: FenceInfo) {
    let key = fence.key.clone().unwrap_or_else(|| "the fence".into());
    match fence.state {
        FenceState::Free => {}
        FenceState::HeldHere => {
            report.findings.push(Finding {
                code: Code::FencedHere,
                severity: Severity::Info,
                message: format!("this host holds the fence: {}", fence.line),
            });
        }
        FenceState::HeldElsewhere => {
            let h = fence.holder.as_ref().map(holder_words).unwrap_or_default();
            let running_here = report.verdict == Verdict::Running;
            report.findings.push(Finding {
                code: Code::FencedElsewhere,
                severity: if running_here {
                    Severity::Danger
                } else {
                    Severity::Problem
                },
                message: format!(
                    "{key} is held by {h}: a server started here would be a second one{}",
                    if running_here {
                        "; one runs here already"
                    } else {
                        ""
                    }
                ),
            });
            report.verdict = Verdict::Blocked;
            report.safe_to_start = false;
            let host = fence
                .holder
                .as_ref()
                .map(|h| h.host.clone())
                .unwrap_or_else(|| "?".into());
            report.remedy.insert(
                0,
                format!(
                    "Do not start the server here: {h} holds {key}. Stop it on {host} \
                     (its `interlock run` then releases the key), or wait for its lease \
                     to lapse if that host is down, before starting here."
                ),
            );
        }
        FenceState::Unknown => {
            let why = fence.error.clone().unwrap_or_default();
            report.findings.push(Finding {
                code: Code::FenceUnknown,
                severity: Severity::Problem,
                message: format!("whether another host holds {key} cannot be told: {why}"),
            });
            report.verdict = Verdict::Unknown;
            report.safe_to_start = false;
            report.remedy.insert(
                0,
                format!(
                    "Reach etcd ({why}) before trusting this report: another host may run \
                     a server on this directory."
                ),
            );
        }
    }
    report
        .findings
        .sort_by_key(|f| std::cmp::Reverse(f.severity));
    report.fence = Some(fence);
}

/// Read the fence as this host sees it and add it to `report`.
pub fn check_fence(
    report: &mut StatusReport,
    data_dir: &Path,
    endpoints: &str,
    name: Option<&str>,
) {
    let fence = read_fence(
        data_dir,
        endpoints,
        name,
        &key::this_host(),
        &key::this_boot_id(),
    );
    apply_fence(report, fence);
}

#[cfg(test)]
mod tests {
    use super::*;
    use interlock_format::pgcontrol::{minimal_control_file, DbState};
    use std::net::TcpListener;

    fn cluster() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("global")).unwrap();
        std::fs::write(
            d.path().join("global/pg_control"),
            minimal_control_file(16, DbState::ShutDown).unwrap(),
        )
        .unwrap();
        d
    }

    #[test]
    fn etcd_unreachable_is_paid_once_then_every_read_unknown_at_once() {
        // Accepts connections, never answers: a read waits its whole limit.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", silent.local_addr().unwrap());
        let mut reader = FenceReader::new(&endpoint, Duration::from_millis(300), "h", "b");
        let (a, b) = (cluster(), cluster());
        let start = Instant::now();
        let first = reader.read(a.path(), None);
        assert_eq!(first.state, FenceState::Unknown);
        assert!(first.key.is_some());
        let why = reader.unreachable().unwrap().to_string();
        assert!(why.contains("etcd unreachable"), "{why}");
        let paid = start.elapsed();
        assert!(paid >= Duration::from_millis(250), "{paid:?}");
        let second = reader.read(b.path(), None);
        assert_eq!(second.state, FenceState::Unknown);
        assert_eq!(second.error.as_deref(), Some(why.as_str()));
        assert!(start.elapsed() - paid < Duration::from_millis(100));
    }

    #[test]
    fn no_budget_left_is_unknown_and_says_so() {
        let mut reader = FenceReader::new("http://127.0.0.1:9", Duration::ZERO, "h", "b");
        let f = reader.read(cluster().path(), Some("n"));
        assert_eq!(f.state, FenceState::Unknown);
        assert!(f.key.unwrap().ends_with("/n"));
        assert!(f.error.unwrap().contains("too slow"));
        assert!(reader.unreachable().is_none());
    }

    #[test]
    fn endpoints_refused_by_the_client_are_unknown_for_every_read() {
        let mut reader = FenceReader::new("https://etcd:2379", LIMIT, "h", "b");
        let f = reader.read(cluster().path(), None);
        assert_eq!(f.state, FenceState::Unknown);
        assert!(f.error.unwrap().contains("only http://"));
        assert!(reader.unreachable().is_some());
    }
}
