//! The fence across hosts (`interlock run --etcd`): who holds the data
//! directory's key in etcd, and what that does to a report's verdict.
//!
//! Another host (or this host in another boot: a different boot id) holding
//! the key makes the verdict `blocked`, whatever this host shows: a server
//! started here would be the second one. This host holding it is for the
//! record. etcd unreachable makes the verdict `unknown`: whether another
//! host runs a server cannot be told.

use std::path::Path;
use std::time::Duration;

use interlock_fence::etcd::{Client, Holder};
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

/// Read the fence of `data_dir` (named `name`, else by its absolute path)
/// from etcd at `endpoints`, as seen from this host (`host`, `boot_id`).
pub fn read_fence(
    data_dir: &Path,
    endpoints: &str,
    name: Option<&str>,
    host: &str,
    boot_id: &str,
) -> FenceInfo {
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
    let client = match Client::new(endpoints) {
        Ok(c) => c,
        Err(e) => return unknown(Some(k), e.to_string()),
    };
    match client.get(&k, LIMIT) {
        Err(e) => unknown(Some(k), e.to_string()),
        Ok(None) => FenceInfo {
            line: format!("{k}: not held"),
            key: Some(k),
            state: FenceState::Free,
            holder: None,
            error: None,
        },
        Ok(Some(h)) => {
            let here = HolderValue::parse(&h.value).is_here(host, boot_id);
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
