//! The fence's key and the holder's value, shared by the holders
//! ([`crate::fence::Fence`], and `interlock run`,
//! `crates/interlock-cli/src/run.rs`, which create the key) and
//! `interlock status` (`crates/interlock-doctor/src/fence.rs`, which reads
//! it); and the holder's record in the data directory, `interlock.fence`.
//!
//! The key is `/interlock/<system identifier>/<name>`: pg_control's system
//! identifier (shared by replicas) and a name, by default the data
//! directory's absolute path (which identifies the storage only when every
//! host mounts it at the same path). The value is JSON: the holder's host
//! name, boot id, PID, start time and data directory.

use std::io::Write;
use std::path::Path;

use interlock_format::fencefile::FenceFile;
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

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC) for epoch seconds.
pub fn rfc3339_utc(epoch: i64) -> String {
    interlock_format::utc::rfc3339(epoch)
}

/// Now, as [`rfc3339_utc`]: a holder's `since`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339_utc(secs)
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
    /// This process, on this host and boot, holding `datadir` from now.
    pub fn this_process(datadir: &Path) -> HolderValue {
        HolderValue {
            host: this_host(),
            boot_id: this_boot_id(),
            pid: Some(std::process::id()),
            since: utc_now(),
            datadir: datadir.display().to_string(),
        }
    }

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

/// The holder's record in the data directory: `DATADIR/interlock.fence`.
pub const FENCE_FILE: &str = "interlock.fence";

/// The content of [`FENCE_FILE`]: one `name value` line each for the
/// fencing token, the key, and the holder's host, boot id, PID and start,
/// as [`FenceFile::render`] writes them (the format and its strict reader,
/// `FenceFile::parse`, are `interlock_format::fencefile`'s).
pub fn fence_file_content(token: i64, key: &str, holder: &HolderValue) -> String {
    FenceFile {
        token,
        key: key.into(),
        host: holder.host.clone(),
        boot_id: holder.boot_id.clone(),
        pid: holder.pid,
        since: holder.since.clone(),
    }
    .render()
}

/// Write [`FENCE_FILE`] in `datadir` atomically (a temporary file, synced,
/// renamed over it), for the holder of `key` with fencing token `token`.
pub fn write_fence_file(
    datadir: &Path,
    token: i64,
    key: &str,
    holder: &HolderValue,
) -> std::io::Result<()> {
    let content = fence_file_content(token, key, holder);
    let tmp = datadir.join(format!("{FENCE_FILE}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, datadir.join(FENCE_FILE))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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
        assert_eq!(
            fence_file_content(9, "/interlock/7/k", &v),
            "token 9\nkey /interlock/7/k\nhost a\nboot_id b\npid 3\nsince s\n"
        );
    }

    #[test]
    fn utc_is_formatted() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_986_454), "2026-11-29T21:07:34Z");
        let t = utc_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }

    /// What the holders write, the doctor reads back unchanged
    /// (`interlock_format::fencefile`, strict).
    #[test]
    fn fence_file_is_read_back_by_the_format_parser() {
        let d = tempfile::tempdir().unwrap();
        let v = HolderValue::this_process(d.path());
        let key = key_for_test(d.path());
        write_fence_file(d.path(), 1_234_567, &key, &v).unwrap();
        let bytes = std::fs::read(d.path().join(FENCE_FILE)).unwrap();
        let f = FenceFile::parse(&bytes).unwrap();
        assert_eq!(f.token, 1_234_567);
        assert_eq!(f.key, key);
        assert_eq!((f.host, f.boot_id), (v.host.clone(), v.boot_id.clone()));
        assert_eq!((f.pid, f.since), (v.pid, v.since.clone()));
        // A holder that did not know its PID, and the largest token.
        let unknown = HolderValue { pid: None, ..v };
        let f = FenceFile::parse(fence_file_content(i64::MAX, &key, &unknown).as_bytes()).unwrap();
        assert_eq!((f.token, f.pid), (i64::MAX, None));
    }

    /// A key as `key_for` makes it, with a space in the path.
    fn key_for_test(d: &Path) -> String {
        key(
            7_301_234_567_890_123_456,
            &d.join("my pg").display().to_string(),
        )
    }

    #[test]
    fn fence_file_is_written_and_replaced() {
        let d = std::env::temp_dir().join(format!("interlock-fence-key-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let v = HolderValue::this_process(&d);
        assert_eq!(v.pid, Some(std::process::id()));
        write_fence_file(&d, 1, "/k", &v).unwrap();
        write_fence_file(&d, 2, "/k", &v).unwrap();
        let got = std::fs::read_to_string(d.join(FENCE_FILE)).unwrap();
        assert!(got.starts_with("token 2\nkey /k\n"), "{got}");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
