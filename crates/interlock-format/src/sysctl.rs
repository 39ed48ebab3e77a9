//! The host files `limits` reads: the kernel's SysV IPC limits
//! (`/proc/sys/kernel/shm*`, `/proc/sys/kernel/sem`), `/proc/meminfo`,
//! cgroup membership and limits, systemd-logind's `RemoveIPC`, and
//! `SYS_UID_MAX` from `/etc/login.defs`.

use std::collections::BTreeMap;

use crate::ParseError;

/// A file holding one unsigned number (`/proc/sys/kernel/shmmax`, …).
pub fn parse_number(text: &str, field: &'static str) -> Result<u64, ParseError> {
    let t = text.trim();
    t.parse()
        .map_err(|_| ParseError::quoting(Some(1), field, "one unsigned number", t.as_bytes()))
}

/// `/proc/sys/kernel/sem`: `SEMMSL SEMMNS SEMOPM SEMMNI`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemLimits {
    /// Semaphores per set.
    pub semmsl: u64,
    /// Semaphores system-wide.
    pub semmns: u64,
    /// Operations per `semop` call.
    pub semopm: u64,
    /// Semaphore sets system-wide.
    pub semmni: u64,
}

/// Parse `/proc/sys/kernel/sem`.
pub fn parse_sem(text: &str) -> Result<SemLimits, ParseError> {
    let nums: Vec<u64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| {
            ParseError::quoting(
                Some(1),
                "kernel.sem",
                "four unsigned numbers (SEMMSL SEMMNS SEMOPM SEMMNI)",
                text.trim().as_bytes(),
            )
        })?;
    match nums[..] {
        [semmsl, semmns, semopm, semmni] => Ok(SemLimits {
            semmsl,
            semmns,
            semopm,
            semmni,
        }),
        _ => Err(ParseError::quoting(
            Some(1),
            "kernel.sem",
            "four unsigned numbers (SEMMSL SEMMNS SEMOPM SEMMNI)",
            text.trim().as_bytes(),
        )),
    }
}

/// `/proc/meminfo`: values by name, in kB (or a count, for `HugePages_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemInfo {
    values: BTreeMap<String, u64>,
}

impl MemInfo {
    /// A value in kB (a count for `HugePages_*`).
    pub fn get(&self, name: &str) -> Option<u64> {
        self.values.get(name).copied()
    }
    /// A value in bytes.
    pub fn bytes(&self, name: &str) -> Option<u64> {
        self.get(name).map(|kb| kb.saturating_mul(1024))
    }
}

/// Parse `/proc/meminfo`. Lines that are not `Name: N [kB]` are errors.
pub fn parse_meminfo(text: &str) -> Result<MemInfo, ParseError> {
    let mut values = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || {
            ParseError::quoting(
                Some(i + 1),
                "meminfo line",
                "\"Name:   N kB\" or \"Name:   N\"",
                line.as_bytes(),
            )
        };
        let (name, rest) = line.split_once(':').ok_or_else(bad)?;
        let mut words = rest.split_whitespace();
        let n: u64 = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
        match words.next() {
            None | Some("kB") => {}
            Some(_) => return Err(bad()),
        }
        values.insert(name.trim().to_string(), n);
    }
    Ok(MemInfo { values })
}

/// One line of `/proc/PID/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLine {
    /// Hierarchy ID (0 for the unified v2 hierarchy).
    pub hierarchy: u32,
    /// Controllers (empty for v2).
    pub controllers: Vec<String>,
    /// The path inside the hierarchy.
    pub path: String,
}

/// Parse `/proc/PID/cgroup`.
pub fn parse_cgroup(text: &str) -> Result<Vec<CgroupLine>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let mut f = line.splitn(3, ':');
        let (Some(h), Some(c), Some(p)) = (f.next(), f.next(), f.next()) else {
            return Err(ParseError::quoting(
                Some(i + 1),
                "cgroup line",
                "hierarchy-ID:controller-list:cgroup-path",
                line.as_bytes(),
            ));
        };
        let hierarchy = h.parse().map_err(|_| {
            ParseError::quoting(Some(i + 1), "cgroup hierarchy ID", "a number", h.as_bytes())
        })?;
        out.push(CgroupLine {
            hierarchy,
            controllers: c
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            path: p.to_string(),
        });
    }
    Ok(out)
}

/// A cgroup memory limit file: `memory.max` (v2: a number or `max`) or
/// `memory.limit_in_bytes` (v1: a number; values near 2^63 mean none).
/// `None`: no limit.
pub fn parse_memory_limit(text: &str) -> Result<Option<u64>, ParseError> {
    let t = text.trim();
    if t == "max" {
        return Ok(None);
    }
    let n = parse_number(t, "cgroup memory limit")?;
    // v1 prints PAGE_COUNTER_MAX * PAGE_SIZE (0x7ffffffffffff000) for none.
    Ok((n < (1 << 62)).then_some(n))
}

/// systemd's boolean words.
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

/// `RemoveIPC=` in the `[Login]` section of a `logind.conf` file (or a
/// drop-in); the last assignment wins. `Ok(None)`: not set here.
pub fn parse_logind_remove_ipc(text: &str) -> Result<Option<(bool, usize)>, ParseError> {
    let mut section = String::new();
    let mut found = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        if section != "Login" {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == "RemoveIPC" {
                let b = parse_bool(v).ok_or_else(|| {
                    ParseError::quoting(
                        Some(i + 1),
                        "RemoveIPC",
                        "a boolean (yes/no)",
                        v.trim().as_bytes(),
                    )
                })?;
                found = Some((b, i + 1));
            }
        }
    }
    Ok(found)
}

/// `SYS_UID_MAX` in `/etc/login.defs` (`None`: not set; systemd then uses
/// the value it was built with).
pub fn parse_login_defs_sys_uid_max(text: &str) -> Option<u32> {
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next()? == "SYS_UID_MAX").then(|| w.next()?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_files() {
        assert_eq!(
            parse_number("18446744073692774399\n", "kernel.shmmax").unwrap(),
            18_446_744_073_692_774_399
        );
        assert!(parse_number("x", "kernel.shmmax")
            .unwrap_err()
            .to_string()
            .contains("kernel.shmmax"));
        let s = parse_sem("32000\t1024000000\t500\t32000\n").unwrap();
        assert_eq!(
            (s.semmsl, s.semmns, s.semopm, s.semmni),
            (32000, 1_024_000_000, 500, 32000)
        );
        assert!(parse_sem("250 32000 100").is_err());
    }

    #[test]
    fn meminfo() {
        let m = parse_meminfo(
            "MemTotal:       24684084 kB\nHugePages_Total:       4\nHugepagesize:       2048 kB\n",
        )
        .unwrap();
        assert_eq!(m.get("HugePages_Total"), Some(4));
        assert_eq!(m.bytes("Hugepagesize"), Some(2048 * 1024));
        assert!(parse_meminfo("MemTotal 12\n").is_err());
    }

    #[test]
    fn cgroups_and_limits() {
        let c = parse_cgroup("4:memory:/process_api/85\n0::/\n").unwrap();
        assert_eq!(c[0].controllers, vec!["memory"]);
        assert_eq!(c[1].hierarchy, 0);
        assert_eq!(parse_memory_limit("max\n").unwrap(), None);
        assert_eq!(parse_memory_limit("9223372036854771712\n").unwrap(), None);
        assert_eq!(
            parse_memory_limit("536870912\n").unwrap(),
            Some(536_870_912)
        );
    }

    #[test]
    fn logind() {
        let conf = "[Login]\n#RemoveIPC=yes\n";
        assert_eq!(parse_logind_remove_ipc(conf).unwrap(), None);
        let conf = "[Login]\nRemoveIPC=yes\n[Other]\nRemoveIPC=no\n[Login]\nRemoveIPC = no\n";
        assert_eq!(parse_logind_remove_ipc(conf).unwrap(), Some((false, 6)));
        assert!(parse_logind_remove_ipc("[Login]\nRemoveIPC=perhaps\n").is_err());
        assert_eq!(
            parse_login_defs_sys_uid_max("#SYS_UID_MAX 999\nSYS_UID_MAX\t\t  499\n"),
            Some(499)
        );
        assert_eq!(parse_login_defs_sys_uid_max("#SYS_UID_MAX 999\n"), None);
    }
}
