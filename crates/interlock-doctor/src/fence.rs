//! The fence across hosts (`interlock run --etcd`): who holds the data
//! directory's key in etcd, and what that does to a report's verdict.
//!
//! Another host (or this host in another boot: a different boot id) holding
//! the key makes the verdict `blocked`, whatever this host shows: a server
//! started here would be the second one. This host holding it is for the
//! record. etcd unreachable makes the verdict `unknown`: whether another
//! host runs a server cannot be told.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use interlock_fence::etcd::{Client, EtcdError, Holder};
use interlock_fence::key::{self, HolderValue};
use serde::Serialize;

use crate::{Code, FenceFileInfo, FenceFileVersus, Finding, Severity, StatusReport, Verdict};

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

/// The fence unknown, with why.
fn unknown(key: Option<String>, error: String) -> FenceInfo {
    FenceInfo {
        key,
        state: FenceState::Unknown,
        holder: None,
        line: format!("cannot be told: {error}"),
        error: Some(error),
    }
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
/// What counts, for [`FenceReader::read`] (`status`, `preflight`): the key
/// `/interlock/SYSID/NAME` ([`key::key_for`], the rule `interlock run`
/// creates it by), NAME given or else the directory's absolute path as
/// given (`std::path::absolute`, as `run` takes it: no symbolic link
/// resolved).
///
/// For [`FenceReader::read_found`] (`scan`, which has no name to give):
/// every key under `/interlock/SYSID/`, read in one range per system
/// identifier ([`Client::get_prefix`], kept for the next directory of the
/// same identifier). A key counts for a directory if it is the directory's
/// default key (its absolute path), or if the `datadir` its holder recorded
/// ([`HolderValue`]) is this directory's absolute path, or resolves here to
/// the same directory (both canonicalised: a symbolic link, another
/// spelling). A holder on another host recorded its own path: its key is
/// counted only if that path names this directory here too; the same path
/// is taken for the same storage, the assumption the default key makes
/// (so a replica at the same path on another host, fenced under its own
/// name, counts too: `status --name` tells which). When several keys
/// count, one held by another host (or boot) is reported, the default key
/// first, then in key order. Keys under the prefix that count for no
/// directory read are [`FenceReader::other_names`]: informational (replicas
/// share a system identifier), never a verdict.
#[derive(Debug)]
pub struct FenceReader {
    client: Result<Client, String>,
    host: String,
    boot_id: String,
    deadline: Instant,
    budget: Duration,
    unreachable: Option<String>,
    /// The keys under `/interlock/SYSID/`, by system identifier, as read
    /// once (or why they could not be).
    prefixes: BTreeMap<u64, Result<Vec<PrefixKey>, String>>,
}

/// A key under a system identifier's prefix, as [`FenceReader::read_found`]
/// keeps it.
#[derive(Debug)]
struct PrefixKey {
    key: String,
    holder: Holder,
    value: HolderValue,
    /// The recorded `datadir`, canonicalised here, once asked (`None`
    /// inside: not absolute, or not resolved here).
    canonical: Option<Option<PathBuf>>,
    /// Counted for a directory read.
    matched: bool,
}

/// A key under `/interlock/SYSID/` that counted for no directory `scan`
/// read: fenced under another name (a replica, or a directory not found
/// here). For the record.
#[derive(Debug, Clone, Serialize)]
pub struct OtherName {
    pub key: String,
    /// The data directory its holder recorded (on its host).
    pub datadir: String,
    /// The holder (its lease's time left not read).
    pub holder: FenceHolder,
    /// Held by this host, this boot.
    pub here: bool,
    /// In one line.
    pub line: String,
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
            prefixes: BTreeMap::new(),
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

    /// Time left for one more read, or why there is none: the
    /// client refused, etcd found unreachable, or the budget spent.
    fn time_left(&mut self) -> Result<Duration, String> {
        if let Err(e) = &self.client {
            self.unreachable = Some(e.clone());
            return Err(e.clone());
        }
        if let Some(e) = &self.unreachable {
            return Err(e.clone());
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let e = format!(
                "etcd too slow: no time left for this read ({} ms for every read in all)",
                self.budget.as_millis()
            );
            return Err(e);
        }
        Ok(left.min(LIMIT))
    }

    /// Read the fence of `data_dir` as `scan` does, with no name to give:
    /// every key under `/interlock/SYSID/` (one range per system
    /// identifier, kept), counted by the rule in [`FenceReader`]'s
    /// documentation.
    pub fn read_found(&mut self, data_dir: &Path) -> FenceInfo {
        let abs = match std::path::absolute(data_dir) {
            Ok(p) => p,
            Err(e) => return unknown(None, format!("{}: {e}", data_dir.display())),
        };
        let sysid = match key::system_identifier(&abs) {
            Ok(s) => s,
            Err(e) => return unknown(None, format!("cannot read the system identifier: {e}")),
        };
        let shown = abs.display().to_string();
        let default = key::key(sysid, &shown);
        if !self.prefixes.contains_key(&sysid) {
            let limit = match self.time_left() {
                Ok(l) => l,
                Err(e) => return unknown(Some(default), e),
            };
            let prefix = format!("/interlock/{sysid}/");
            let Ok(client) = &self.client else {
                unreachable!("time_left checked the client")
            };
            let keys = match client.get_prefix(&prefix, limit) {
                Ok(kvs) => Ok(kvs
                    .into_iter()
                    .map(|(key, holder)| PrefixKey {
                        value: HolderValue::parse(&holder.value),
                        key,
                        holder,
                        canonical: None,
                        matched: false,
                    })
                    .collect()),
                Err(e) => {
                    if matches!(e, EtcdError::Unreachable(_)) {
                        self.unreachable = Some(e.to_string());
                        return unknown(Some(default), e.to_string());
                    }
                    Err(e.to_string())
                }
            };
            self.prefixes.insert(sysid, keys);
        }
        let here_canonical = std::fs::canonicalize(&abs).ok();
        let (host, boot_id) = (self.host.clone(), self.boot_id.clone());
        let keys = match self.prefixes.get_mut(&sysid) {
            Some(Ok(keys)) => keys,
            Some(Err(e)) => return unknown(Some(default), e.clone()),
            None => unreachable!("inserted above"),
        };
        // Which keys count for this directory.
        let mut counted: Vec<usize> = Vec::new();
        for (i, k) in keys.iter_mut().enumerate() {
            let same = k.key == default
                || k.value.datadir == shown
                || (here_canonical.is_some() && {
                    let recorded = &k.value.datadir;
                    let c = k.canonical.get_or_insert_with(|| {
                        Path::new(recorded)
                            .is_absolute()
                            .then(|| std::fs::canonicalize(recorded).ok())
                            .flatten()
                    });
                    *c == here_canonical
                });
            if same {
                k.matched = true;
                counted.push(i);
            }
        }
        // One held elsewhere first, then the default key, then key order.
        counted.sort_by_key(|&i| {
            (
                keys[i].value.is_here(&host, &boot_id),
                keys[i].key != default,
                i,
            )
        });
        let Some(&first) = counted.first() else {
            return FenceInfo {
                line: format!("{default}: not held"),
                key: Some(default),
                state: FenceState::Free,
                holder: None,
                error: None,
            };
        };
        let also: Vec<String> = counted[1..].iter().map(|&i| keys[i].key.clone()).collect();
        let (k, mut h, recorded) = (
            keys[first].key.clone(),
            keys[first].holder.clone(),
            keys[first].value.datadir.clone(),
        );
        let here = keys[first].value.is_here(&host, &boot_id);
        if h.lease != 0 {
            if let (Ok(limit), Ok(client)) = (self.time_left(), &self.client) {
                h.ttl_remaining = client.time_to_live(h.lease, limit).ok();
            }
        }
        let holder = holder_of(&h);
        FenceInfo {
            line: format!(
                "{k}: held by {}{}{}{}",
                holder_words(&holder),
                if here { ", this host" } else { "" },
                if k == default {
                    String::new()
                } else {
                    format!(", for datadir {recorded}")
                },
                if also.is_empty() {
                    String::new()
                } else {
                    format!("; also under {}", also.join(", "))
                }
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

    /// The keys read by [`FenceReader::read_found`] that counted for no
    /// directory it read, in key order: fenced under other names.
    pub fn other_names(&self) -> Vec<OtherName> {
        self.prefixes
            .values()
            .filter_map(|r| r.as_ref().ok())
            .flatten()
            .filter(|k| !k.matched)
            .map(|k| {
                let holder = holder_of(&k.holder);
                let here = k.value.is_here(&self.host, &self.boot_id);
                OtherName {
                    line: format!(
                        "{} held by host {} (PID {}, token {}, since {}; datadir {}){}",
                        k.key,
                        holder.host,
                        holder.pid.map_or("?".into(), |p| p.to_string()),
                        holder.token,
                        holder.since,
                        k.value.datadir,
                        if here { ", this host" } else { "" }
                    ),
                    key: k.key.clone(),
                    datadir: k.value.datadir.clone(),
                    holder,
                    here,
                }
            })
            .collect()
    }

    /// Read the fence of `data_dir`, named `name` or else by its absolute
    /// path.
    pub fn read(&mut self, data_dir: &Path, name: Option<&str>) -> FenceInfo {
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

/// How the directory's `interlock.fence` compares with the fence read in
/// etcd, in words; `None` when there is nothing to compare (no file, a file
/// not read, the fence unknown). The key decides, never the file: it may
/// say only which holder wrote it last (a holder whose lease lapsed has
/// self-fenced, and anyone who can write the directory can write the file).
pub fn file_versus_fence(
    file: &FenceFileInfo,
    fence: &FenceInfo,
) -> Option<(FenceFileVersus, String)> {
    let (token, file_key) = (file.token?, file.key.as_deref()?);
    let by = format!(
        "token {token} by host {}",
        file.host.as_deref().unwrap_or("?")
    );
    let key = fence.key.as_deref()?;
    if file_key != key {
        return Some((
            FenceFileVersus::OtherKey,
            format!("{} names another key, {file_key} ({by})", key::FENCE_FILE),
        ));
    }
    let held = match (fence.state, &fence.holder) {
        (FenceState::Free, _) => None,
        (FenceState::HeldHere | FenceState::HeldElsewhere, Some(h)) => Some(h.token),
        _ => return None,
    };
    Some(match held {
        None => (
            FenceFileVersus::EarlierHolder,
            format!(
                "{} is an earlier holder's ({by}; the key is not held now)",
                key::FENCE_FILE
            ),
        ),
        Some(t) if t == token => (
            FenceFileVersus::Consistent,
            format!("{} agrees (token {token})", key::FENCE_FILE),
        ),
        Some(t) if t > token => (
            FenceFileVersus::EarlierHolder,
            format!(
                "{} is an earlier holder's ({by}, before the key's token {t})",
                key::FENCE_FILE
            ),
        ),
        Some(t) => (
            FenceFileVersus::AheadOfEtcd,
            format!(
                "{} has a later token than the key's {t} ({by}): etcd lost revisions (restored from a backup, or another cluster), or no holder of this key wrote the file",
                key::FENCE_FILE
            ),
        ),
    })
}

/// Add `fence` to `report`: its finding, and the verdict and remedy it
/// decides; and how the directory's `interlock.fence` compares with it,
/// for the record ([`file_versus_fence`]: `versus_etcd` and the fence's
/// line, never the verdict).
pub fn apply_fence(report: &mut StatusReport, mut fence: FenceInfo) {
    if let Some(file) = report.fence_file.as_mut() {
        if let Some((versus, words)) = file_versus_fence(file, &fence) {
            file.versus_etcd = Some(versus);
            fence.line = format!("{}; {words}", fence.line);
        }
    }
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
    fn scan_reads_pay_unreachable_once_and_keep_no_other_names() {
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", silent.local_addr().unwrap());
        let mut reader = FenceReader::new(&endpoint, Duration::from_millis(300), "h", "b");
        let (a, b) = (cluster(), cluster());
        let start = Instant::now();
        let first = reader.read_found(a.path());
        assert_eq!(first.state, FenceState::Unknown);
        let abs = std::path::absolute(a.path()).unwrap();
        assert_eq!(first.key, Some(key::key_for(&abs, None).unwrap()));
        let why = reader.unreachable().unwrap().to_string();
        let paid = start.elapsed();
        let second = reader.read_found(b.path());
        assert_eq!(second.error.as_deref(), Some(why.as_str()));
        assert!(start.elapsed() - paid < Duration::from_millis(100));
        assert!(reader.other_names().is_empty());

        let mut spent = FenceReader::new("http://127.0.0.1:9", Duration::ZERO, "h", "b");
        let f = spent.read_found(a.path());
        assert!(f.error.unwrap().contains("too slow"));
        let no_pg = tempfile::tempdir().unwrap();
        let f = spent.read_found(no_pg.path());
        assert!(f.key.is_none() && f.error.unwrap().contains("system identifier"));
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
