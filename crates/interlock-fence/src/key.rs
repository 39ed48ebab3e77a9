//! The fence's key and the holder's value, shared by `interlock run`
//! (which creates the key) and `interlock status` (which reads it).
//!
//! The key is `/interlock/<system identifier>/<name>`: pg_control's system
//! identifier (shared by replicas) and a name, by default the data
//! directory's absolute path (which identifies the storage only when every
//! host mounts it at the same path). The value is JSON: the holder's host
//! name, boot id, PID, start time and data directory.

use std::path::Path;

use serde_json::Value;

use crate::etcd::Holder;

/// pg_control's system identifier, the key's identity.
pub fn system_identifier(datadir: &Path) -> Result<u64, String> {
    let path = datadir.join("global/pg_control");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cf = interlock_format::pgcontrol::parse_pg_control(&bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(cf.system_identifier)
}

/// The key for `sysid` and `name`.
pub fn key(sysid: u64, name: &str) -> String {
    format!("/interlock/{sysid}/{}", name.trim_start_matches('/'))
}

/// The key of the data directory `datadir` (absolute), named `name` or
/// else by its path.
pub fn key_for(datadir: &Path, name: Option<&str>) -> Result<String, String> {
    let sysid = system_identifier(datadir)?;
    let default = datadir.display().to_string();
    Ok(key(sysid, name.unwrap_or(&default)))
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// This host's name (`/proc/sys/kernel/hostname`).
pub fn this_host() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`).
pub fn this_boot_id() -> String {
    read_trimmed("/proc/sys/kernel/random/boot_id")
}

/// What a holder writes as the key's value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HolderValue {
    pub host: String,
    pub boot_id: String,
    pub pid: Option<u32>,
    pub since: String,
    pub datadir: String,
}

impl HolderValue {
    /// The value as JSON.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "host": self.host,
            "boot_id": self.boot_id,
            "pid": self.pid,
            "since": self.since,
            "datadir": self.datadir,
        })
        .to_string()
    }

    /// Read a value back; a field missing or not JSON reads as `?`.
    pub fn parse(value: &str) -> HolderValue {
        let v: Value = serde_json::from_str(value).unwrap_or_default();
        let field = |k: &str| match v.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => "?".into(),
            Some(other) => other.to_string(),
        };
        HolderValue {
            host: field("host"),
            boot_id: field("boot_id"),
            pid: v.get("pid").and_then(Value::as_u64).map(|p| p as u32),
            since: field("since"),
            datadir: field("datadir"),
        }
    }

    /// Whether the holder is this host, this boot: same host name and
    /// boot id.
    pub fn is_here(&self, host: &str, boot_id: &str) -> bool {
        self.host == host && self.boot_id == boot_id
    }
}

/// The lease's remaining time, in words.
pub fn lease_words(ttl_remaining: Option<i64>) -> String {
    match ttl_remaining {
        Some(t) if t >= 0 => format!("lease expires in {t} s"),
        Some(_) => "lease expired".into(),
        None => "lease TTL unknown".into(),
    }
}

/// Describe a holder from the value it wrote: `host H (boot id B, PID P,
/// token T, since S; lease expires in N s)`.
pub fn describe_holder(h: &Holder) -> String {
    let v = HolderValue::parse(&h.value);
    format!(
        "host {} (boot id {}, PID {}, token {}, since {}; {})",
        v.host,
        v.boot_id,
        v.pid.map_or("?".into(), |p| p.to_string()),
        h.create_revision,
        v.since,
        lease_words(h.ttl_remaining)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_value() {
        assert_eq!(key(7, "/srv/pg"), "/interlock/7/srv/pg");
        let v = HolderValue {
            host: "a".into(),
            boot_id: "b".into(),
            pid: Some(3),
            since: "s".into(),
            datadir: "/d".into(),
        };
        assert_eq!(HolderValue::parse(&v.to_json()), v);
        assert!(v.is_here("a", "b") && !v.is_here("a", "c"));
        let h = Holder {
            value: v.to_json(),
            create_revision: 9,
            lease: 1,
            ttl_remaining: Some(4),
        };
        assert_eq!(
            describe_holder(&h),
            "host a (boot id b, PID 3, token 9, since s; lease expires in 4 s)"
        );
        assert_eq!(HolderValue::parse("junk").host, "?");
    }
}
