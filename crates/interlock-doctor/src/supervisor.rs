//! Who manages a cluster: a systemd unit, Patroni, Pacemaker,
//! CloudNativePG's instance manager or repmgr, told from what `/proc` shows
//! (always through [`HostRoot`], never outside the root).
//!
//! - A running server: its postmaster's ancestors (Patroni's `patroni
//!   CONFIG`, Pacemaker's `pacemaker-execd` or `lrmd`, CloudNativePG's
//!   `/controller/manager instance run`), then its cgroup
//!   (`/proc/PID/cgroup`: the v2 line `0::/…/UNIT.service`, or v1's
//!   `name=systemd:` line).
//! - Its leftovers: their former parent is gone, but their cgroup survives
//!   it, and their new parent may be the manager (CloudNativePG's instance
//!   manager is PID 1 of the pod, and adopts them).
//! - A stopped cluster, where it can be told: a `repmgrd` whose
//!   configuration names the directory, or Debian's layout
//!   (`/etc/postgresql/V/C`) with `postgresql@V-C.service` enabled; that is
//!   only *likely*.
//!
//! A cgroup is only taken for a unit's when it is a system `.service`
//! (a login session's or `systemd-run --scope`'s `.scope`, docker's
//! `docker-ID.scope`, a pod's slice, `/`, and a user's own services are
//! not), and only when nothing but PostgreSQL runs in it: everything a
//! service runs (a CI runner, a shell) is in its cgroup, and such a unit
//! did not start the server as its own.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use interlock_format::pgproc::{is_postgres_executable, pg_role};
use interlock_format::shell;

use super::host::Host;
use super::root::HostRoot;

/// Who starts and stops the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Manager {
    /// A systemd system service (`postgresql@15-main.service`).
    Systemd {
        /// The unit.
        unit: String,
    },
    /// Patroni, whose configuration is `config`.
    Patroni {
        /// The configuration file on its command line.
        config: Option<String>,
        /// The cluster's name (`scope:` in the configuration).
        cluster: Option<String>,
        /// This member's name (`name:` in the configuration).
        member: Option<String>,
    },
    /// Pacemaker, through a resource agent.
    Pacemaker {
        /// The resource, when it can be told.
        resource: Option<String>,
    },
    /// CloudNativePG's instance manager.
    CloudNativePg {
        /// The `Cluster` resource.
        cluster: Option<String>,
        /// The pod (the instance).
        pod: Option<String>,
    },
    /// repmgr's daemon watches it (it starts it only through
    /// `service_start_command`).
    Repmgr {
        /// `repmgr.conf`.
        config: String,
        /// `service_start_command`, if set.
        start_command: Option<String>,
    },
    /// None found.
    None,
}

/// How sure the answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HowKnown {
    /// A process shows it (its parent, its cgroup, a daemon naming the
    /// directory).
    Proven,
    /// Only configuration says so (nothing runs).
    Likely,
}

/// Who manages a cluster, how sure, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedBy {
    /// The manager (`kind: none` when none was found).
    pub manager: Manager,
    /// Proven by a process, or likely from configuration.
    pub how_known: HowKnown,
    /// What shows it.
    pub evidence: String,
}

impl ManagedBy {
    /// No manager; `evidence` says what was looked at.
    pub fn none(how_known: HowKnown, evidence: impl Into<String>) -> ManagedBy {
        ManagedBy {
            manager: Manager::None,
            how_known,
            evidence: evidence.into(),
        }
    }

    /// Whether a manager was found.
    pub fn is_managed(&self) -> bool {
        self.manager != Manager::None
    }

    /// One line: `systemd unit postgresql@15-main.service (proven: its cgroup)`.
    pub fn line(&self) -> String {
        format!(
            "{} ({}: {})",
            self.manager.describe(),
            match self.how_known {
                HowKnown::Proven => "proven",
                HowKnown::Likely => "likely",
            },
            self.evidence
        )
    }
}

fn q(s: &str) -> String {
    shell::quote(s).into_owned()
}

impl Manager {
    /// In a few words: `systemd unit postgresql@15-main.service`.
    pub fn describe(&self) -> String {
        match self {
            Manager::Systemd { unit } => format!("systemd unit {}", shell::display(unit)),
            Manager::Patroni { config, .. } => match config {
                Some(c) => format!("Patroni ({})", shell::display(c)),
                None => "Patroni".into(),
            },
            Manager::Pacemaker { resource } => match resource {
                Some(r) => format!("Pacemaker (resource {})", shell::display(r)),
                None => "Pacemaker".into(),
            },
            Manager::CloudNativePg { cluster, pod } => {
                let mut parts = Vec::new();
                if let Some(c) = cluster {
                    parts.push(format!("cluster {}", shell::display(c)));
                }
                if let Some(p) = pod {
                    parts.push(format!("pod {}", shell::display(p)));
                }
                if parts.is_empty() {
                    "CloudNativePG's instance manager".into()
                } else {
                    format!("CloudNativePG's instance manager ({})", parts.join(", "))
                }
            }
            Manager::Repmgr { config, .. } => format!("repmgr ({})", shell::display(config)),
            Manager::None => "no manager".into(),
        }
    }

    /// `patronictl -c CONFIG` (or bare `patronictl`).
    fn patronictl(config: &Option<String>) -> String {
        match config {
            Some(c) => format!("patronictl -c {}", q(c)),
            None => "patronictl".into(),
        }
    }

    /// What to do instead of `pg_ctl start -D DIR` (`dir` shell-quoted),
    /// as a sentence; `None` without a manager.
    pub fn start_step(&self, dir: &str) -> Option<String> {
        Some(match self {
            Manager::None => return None,
            Manager::Systemd { unit } => format!(
                "start it through systemd: systemctl start {} (starting it with pg_ctl behind systemd's back makes systemd fight it)",
                q(unit)
            ),
            Manager::Patroni { config, .. } => format!(
                "Patroni starts it by itself; watch it do so with {ctl} list (if the cluster is paused for maintenance, {ctl} resume); do not start it with pg_ctl behind Patroni's back",
                ctl = Self::patronictl(config)
            ),
            Manager::Pacemaker { resource } => match resource {
                Some(r) => format!(
                    "let Pacemaker start it: crm resource cleanup {r} (or pcs resource cleanup {r}) clears the failure, and the cluster starts it again; do not start it with pg_ctl behind Pacemaker's back",
                    r = q(r)
                ),
                None => "let Pacemaker start it: find its resource with crm_mon -1 (or pcs status), then crm resource cleanup RESOURCE (or pcs resource cleanup RESOURCE); do not start it with pg_ctl behind Pacemaker's back".into(),
            },
            Manager::CloudNativePg { .. } => format!(
                "the instance manager starts it by itself; if it does not, {} (do not start it with pg_ctl inside the pod)",
                self.cnpg_restart()
            ),
            Manager::Repmgr {
                start_command: Some(cmd),
                ..
            } => format!(
                "start it the way repmgr does (service_start_command): {}",
                shell::display(cmd)
            ),
            Manager::Repmgr {
                start_command: None,
                config,
            } => format!(
                "start it: pg_ctl start -D {dir} (repmgr does not start it: {} sets no service_start_command)",
                shell::display(config)
            ),
        })
    }

    /// How to restart or stop a running server through its manager, as a
    /// sentence; `None` without a manager.
    pub fn restart_step(&self) -> Option<String> {
        Some(match self {
            Manager::None => return None,
            Manager::Systemd { unit } => format!(
                "restart or stop it through systemd: systemctl restart {u} / systemctl stop {u}",
                u = q(unit)
            ),
            Manager::Patroni {
                config,
                cluster,
                member,
            } => format!(
                "restart it through Patroni: {} restart {} {} (stopping it behind Patroni's back makes Patroni start it again or fail over)",
                Self::patronictl(config),
                cluster.as_deref().map_or_else(|| "CLUSTER".into(), q),
                member.as_deref().map_or_else(|| "MEMBER".into(), q)
            ),
            Manager::Pacemaker { resource } => format!(
                "restart or stop it through Pacemaker ({}), not with pg_ctl: Pacemaker would take it for failed",
                match resource {
                    Some(r) => format!("its resource is {}", q(r)),
                    None => "crm_mon -1 or pcs status shows its resource".into(),
                }
            ),
            Manager::CloudNativePg { .. } => format!(
                "restart it through CloudNativePG: {}",
                self.cnpg_restart()
            ),
            Manager::Repmgr { config, .. } => format!(
                "restart it the way repmgr does: repmgr -f {} node service --action=restart",
                q(config)
            ),
        })
    }

    fn cnpg_restart(&self) -> String {
        let Manager::CloudNativePg { cluster, pod } = self else {
            return String::new();
        };
        let cluster = cluster.as_deref().map_or_else(|| "CLUSTER".into(), q);
        let pod = pod.as_deref().map_or_else(|| "POD".into(), q);
        format!("kubectl cnpg restart {cluster} {pod}, or delete the pod: kubectl delete pod {pod}")
    }
}

/// The largest `/proc` file or configuration file read here.
const MAX_READ: u64 = 256 * 1024;

/// A `/proc/PID/…` file, bounded (procfs files report size 0, so
/// `safe_fs`'s size check does not apply; they are never FIFOs).
fn proc_file(root: &HostRoot, pid: i32, name: &str) -> Option<Vec<u8>> {
    let path = root.procfs().root().join(pid.to_string()).join(name);
    let mut out = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_READ)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// A configuration file named by a process (a host path), read under the
/// root, bounded, never a FIFO or device.
fn config_file(root: &HostRoot, path: &str) -> Option<String> {
    interlock::safe_fs::read_to_string(None, &root.at(path), MAX_READ).ok()
}

/// `/proc/PID/cmdline` split into its arguments.
fn argv(root: &HostRoot, pid: i32) -> Vec<String> {
    proc_file(root, pid, "cmdline")
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn base(arg: &str) -> &str {
    arg.rsplit('/').next().unwrap_or(arg)
}

/// The value of `--name=V` or `--name V` in `args`.
fn option(args: &[String], name: &str) -> Option<String> {
    let eq = format!("{name}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if let Some(v) = a.strip_prefix(&eq) {
            Some(v.to_string())
        } else if a == name {
            args.get(i + 1).cloned()
        } else {
            None
        }
    })
}

/// A manager recognised from one process's command line.
fn classify(root: &HostRoot, pid: i32, args: &[String], comm: &str) -> Option<Manager> {
    let argv0 = args.first().map(|a| base(a)).unwrap_or(comm);
    // Patroni: `patroni CONFIG`, `python3 /usr/bin/patroni CONFIG`,
    // `python3 -m patroni CONFIG`.
    let patroni_at = if argv0 == "patroni" {
        Some(0)
    } else if argv0.starts_with("python") {
        args.iter().enumerate().skip(1).find_map(|(i, a)| {
            if base(a) == "patroni" || base(a) == "patroni.py" {
                Some(i)
            } else if a == "-m" && args.get(i + 1).is_some_and(|m| m == "patroni") {
                Some(i + 1)
            } else {
                None
            }
        })
    } else {
        None
    };
    if let Some(i) = patroni_at {
        let config = args[i + 1..].iter().find(|a| !a.starts_with('-')).cloned();
        let (cluster, member) = config
            .as_deref()
            .and_then(|c| config_file(root, c))
            .map(|text| (yaml_top(&text, "scope"), yaml_top(&text, "name")))
            .unwrap_or_default();
        return Some(Manager::Patroni {
            config,
            cluster,
            member,
        });
    }
    if matches!(
        argv0,
        "pacemaker-execd" | "lrmd" | "pacemaker_remoted" | "pacemaker-remoted"
    ) || matches!(comm, "pacemaker-execd" | "lrmd")
    {
        return Some(Manager::Pacemaker { resource: None });
    }
    // CloudNativePG: `/controller/manager instance run …`.
    if argv0 == "manager" && args.windows(2).any(|w| w[0] == "instance" && w[1] == "run") {
        let pod = option(args, "--pod-name").or_else(|| pod_hostname(root, pid));
        let cluster = option(args, "--cluster-name").or_else(|| {
            // Its pods are named CLUSTER-N.
            pod.as_deref()
                .and_then(|p| p.rsplit_once('-'))
                .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .map(|(c, _)| c.to_string())
        });
        return Some(Manager::CloudNativePg { cluster, pod });
    }
    None
}

/// The pod's name: the host name, when we run in the instance manager's
/// UTS namespace (inside the pod).
fn pod_hostname(root: &HostRoot, pid: i32) -> Option<String> {
    let procfs = root.procfs();
    let theirs = procfs.namespace(pid, "uts").ok()?;
    let ours = procfs.namespace(std::process::id() as i32, "uts").ok()?;
    if theirs != ours {
        return None;
    }
    let name = std::fs::read_to_string(root.at("/proc/sys/kernel/hostname")).ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// A top-level `key: value` of a YAML file (Patroni's `scope:`, `name:`),
/// unquoted; nested keys and anything fancier are not read.
fn yaml_top(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.trim_start().strip_prefix(':')?;
        let v = rest.split(" #").next().unwrap_or("").trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// What a `/proc/PID/cgroup` says: the cgroup path of systemd's
/// hierarchy (the v2 line, else v1's `name=systemd`).
pub(crate) fn cgroup_path(text: &str) -> Option<(String, bool)> {
    let mut v1 = None;
    let mut v2 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" && ctl.is_empty() {
            v2 = Some(path.to_string());
        } else if ctl == "name=systemd" {
            v1 = Some(path.to_string());
        }
    }
    match (v2, v1) {
        (Some(p), _) if p != "/" => Some((p, true)),
        (_, Some(p)) => Some((p, false)),
        (Some(p), None) => Some((p, true)),
        (None, None) => None,
    }
}

/// The system service a cgroup path is in, if any: the last `.service`
/// component, unless the path is a user's manager's (`user@UID.service`)
/// or ends in a scope (a session, `systemd-run --scope`, a container).
pub(crate) fn service_of(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| p.starts_with("user@")) {
        return None;
    }
    let at = parts.iter().rposition(|p| p.ends_with(".service"))?;
    // A scope below the service is another unit (a service's own
    // sub-cgroups are not scopes).
    if parts[at + 1..].iter().any(|p| p.ends_with(".scope")) {
        return None;
    }
    Some(parts[at].to_string())
}

/// The members of a cgroup (`cgroup.procs`), under the root's `/sys`.
fn cgroup_members(root: &HostRoot, path: &str, v2: bool) -> Option<Vec<i32>> {
    let dir = if v2 {
        root.at("/sys/fs/cgroup")
    } else {
        root.at("/sys/fs/cgroup/systemd")
    };
    let file: PathBuf = dir.join(path.trim_start_matches('/')).join("cgroup.procs");
    let mut text = String::new();
    std::fs::File::open(file)
        .ok()?
        .take(MAX_READ)
        .read_to_string(&mut text)
        .ok()?;
    Some(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

fn is_postgres(host: &Host, pid: i32) -> bool {
    host.procfs.exe(pid).is_ok_and(is_postgres_executable)
        || proc_file(&host.root, pid, "cmdline").is_some_and(|c| pg_role(&c).is_some())
}

/// Who manages process `pid` (a postmaster, a leftover, a hold): its
/// ancestors, then its cgroup. `None` with the evidence of what was seen
/// when nothing does.
pub(crate) fn of_process(host: &Host, pid: i32) -> Result<ManagedBy, String> {
    let root = &host.root;
    // Ancestors, nearest first.
    let mut seen = vec![pid];
    let mut at = host.info(pid).map(|i| i.ppid).unwrap_or(0);
    let mut parent_words = None;
    while at > 0 && !seen.contains(&at) && seen.len() < 32 {
        seen.push(at);
        let args = argv(root, at);
        let comm = host.info(at).map(|i| i.name).unwrap_or_default();
        if parent_words.is_none() {
            parent_words = Some(format!(
                "its parent is PID {at} ({})",
                if args.is_empty() {
                    format!("[{comm}]")
                } else {
                    shell::display(&args.join(" ")).into_owned()
                }
            ));
        }
        if let Some(m) = classify(root, at, &args, &comm) {
            let rel = if seen.len() == 2 {
                "its parent"
            } else {
                "its ancestor"
            };
            return Ok(ManagedBy {
                manager: m,
                how_known: HowKnown::Proven,
                evidence: format!(
                    "PID {pid}'s {} is PID {at} ({})",
                    rel.trim_start_matches("its "),
                    shell::display(&args.join(" "))
                ),
            });
        }
        if at == 1 {
            break;
        }
        at = host.info(at).map(|i| i.ppid).unwrap_or(0);
    }
    let parent_words = parent_words.unwrap_or_else(|| "its parent cannot be read".into());
    // The cgroup.
    let Some(text) = proc_file(root, pid, "cgroup").and_then(|b| String::from_utf8(b).ok()) else {
        return Err(format!(
            "PID {pid}: {parent_words}, and its cgroup cannot be read"
        ));
    };
    let Some((path, v2)) = cgroup_path(&text) else {
        return Err(format!(
            "PID {pid}: {parent_words}, and it is in no cgroup of systemd's"
        ));
    };
    let Some(unit) = service_of(&path) else {
        return Err(format!(
            "PID {pid}: {parent_words}; its cgroup {} is no system service",
            shell::display(&path)
        ));
    };
    let from = format!("PID {pid}'s cgroup is {}", shell::display(&path));
    if unit.starts_with("patroni") {
        // Patroni under systemd: its process in the unit gives its
        // configuration.
        let patroni = cgroup_members(root, &path, v2)
            .unwrap_or_default()
            .into_iter()
            .find_map(|m| {
                let args = argv(root, m);
                match classify(root, m, &args, "") {
                    Some(p @ Manager::Patroni { .. }) => Some(p),
                    _ => None,
                }
            });
        return Ok(ManagedBy {
            manager: patroni.unwrap_or(Manager::Patroni {
                config: None,
                cluster: None,
                member: None,
            }),
            how_known: HowKnown::Proven,
            evidence: format!("{from}, Patroni's unit"),
        });
    }
    if unit == "pacemaker.service" {
        return Ok(ManagedBy {
            manager: Manager::Pacemaker { resource: None },
            how_known: HowKnown::Proven,
            evidence: format!("{from}, Pacemaker's unit: a resource agent started it"),
        });
    }
    // A unit running anything but PostgreSQL (a CI runner, a shell) is not
    // the server's manager: everything it runs is in its cgroup.
    match cgroup_members(root, &path, v2) {
        Some(members) => {
            let pg: Vec<i32> = members
                .iter()
                .copied()
                .filter(|&m| is_postgres(host, m))
                .collect();
            // A server's own children (archive_command's shell) are fine.
            let other: Vec<i32> = members
                .iter()
                .copied()
                .filter(|m| !pg.contains(m) && !host.info(*m).is_some_and(|i| pg.contains(&i.ppid)))
                .collect();
            if other.is_empty() {
                Ok(ManagedBy {
                    manager: Manager::Systemd { unit },
                    how_known: HowKnown::Proven,
                    evidence: format!("{from}, which holds nothing but PostgreSQL's processes"),
                })
            } else {
                Err(format!(
                    "{from}, but that unit also runs {} (PID {}): it runs more than PostgreSQL, so it is not taken for the server's manager",
                    host.info(other[0])
                        .map(|i| shell::display(&i.name).into_owned())
                        .unwrap_or_else(|| "?".into()),
                    other[0]
                ))
            }
        }
        None => Ok(ManagedBy {
            manager: Manager::Systemd { unit },
            how_known: HowKnown::Likely,
            evidence: format!("{from} (what else runs in it cannot be read)"),
        }),
    }
}

/// The repmgr configuration files where repmgr and its packages put them
/// (`/etc/repmgr.conf`, `/etc/repmgr/repmgr.conf`,
/// `/etc/repmgr/VERSION/repmgr.conf`, `/etc/postgresql/V/C/repmgr.conf`)
/// whose `data_directory` is one of `dirs`, with their
/// `service_start_command`. A repmgrd started with a configuration
/// elsewhere (`-f PATH`) is not looked for unless one of these names the
/// directory too.
fn repmgr_configs_naming(root: &HostRoot, dirs: &[&Path]) -> Vec<(String, Option<String>)> {
    let mut candidates: Vec<String> =
        vec!["/etc/repmgr.conf".into(), "/etc/repmgr/repmgr.conf".into()];
    let sub = |dir: &str, depth: usize| -> Vec<String> {
        let mut found = vec![dir.to_string()];
        for _ in 0..depth {
            found = found
                .iter()
                .flat_map(|d| {
                    std::fs::read_dir(root.at(d))
                        .into_iter()
                        .flatten()
                        .flatten()
                        .filter_map(|e| Some(format!("{d}/{}", e.file_name().to_str()?)))
                        .collect::<Vec<_>>()
                })
                .collect();
        }
        found
            .into_iter()
            .map(|d| format!("{d}/repmgr.conf"))
            .collect()
    };
    candidates.extend(sub("/etc/repmgr", 1));
    candidates.extend(sub("/etc/postgresql", 2));
    candidates
        .into_iter()
        .filter_map(|c| {
            let text = config_file(root, &c)?;
            let (data, start) = repmgr_conf(&text);
            data.filter(|d| same_dir(d, dirs)).map(|_| (c, start))
        })
        .collect()
}

/// `repmgrd` processes and their configuration files, read once per host.
pub(crate) fn repmgrd_configs(host: &mut Host) -> Vec<(i32, String)> {
    let root = host.root.clone();
    let mut out = Vec::new();
    for pid in host.all_pids() {
        let Some(comm) = proc_file(&root, pid, "comm") else {
            continue;
        };
        if comm.strip_suffix(b"\n").unwrap_or(&comm) != b"repmgrd" {
            continue;
        }
        let args = argv(&root, pid);
        let config = args
            .iter()
            .enumerate()
            .find_map(|(i, a)| {
                if a == "-f" || a == "--config-file" {
                    args.get(i + 1).cloned()
                } else if let Some(v) = a.strip_prefix("--config-file=") {
                    Some(v.to_string())
                } else {
                    a.strip_prefix("-f")
                        .filter(|v| !v.is_empty())
                        .map(str::to_string)
                }
            })
            .unwrap_or_else(|| "/etc/repmgr.conf".into());
        out.push((pid, config));
    }
    out
}

fn same_dir(a: &str, dirs: &[&Path]) -> bool {
    let a = a.trim_end_matches('/');
    dirs.iter()
        .any(|d| d.to_str().is_some_and(|d| d.trim_end_matches('/') == a))
}

/// `(data_directory, service_start_command)` of a repmgr.conf.
fn repmgr_conf(text: &str) -> (Option<String>, Option<String>) {
    let entries = interlock_format::pgconf::parse_conf(text).unwrap_or_else(|_| {
        text.lines()
            .enumerate()
            .filter_map(|(i, l)| {
                interlock_format::pgconf::parse_conf_line(l, i + 1)
                    .ok()
                    .flatten()
            })
            .collect()
    });
    let get = |k: &str| {
        entries
            .iter()
            .rev()
            .find(|e| e.name == k)
            .map(|e| e.value.clone())
            .filter(|v| !v.is_empty())
    };
    (get("data_directory"), get("service_start_command"))
}

/// Debian's layout: the cluster `/etc/postgresql/V/C` whose data directory
/// is this one, and whether its unit is enabled.
fn debian(root: &HostRoot, dirs: &[&Path]) -> Option<ManagedBy> {
    let etc = root.at("/etc/postgresql");
    for v in std::fs::read_dir(&etc).ok()?.flatten() {
        let Ok(clusters) = std::fs::read_dir(v.path()) else {
            continue;
        };
        let version = v.file_name().to_string_lossy().into_owned();
        for c in clusters.flatten() {
            let cluster = c.file_name().to_string_lossy().into_owned();
            let conf_dir = format!("/etc/postgresql/{version}/{cluster}");
            let data = config_file(root, &format!("{conf_dir}/postgresql.conf"))
                .and_then(|t| {
                    interlock_format::pgconf::parse_conf(&t)
                        .ok()?
                        .into_iter()
                        .rev()
                        .find(|e| e.name == "data_directory")
                        .map(|e| e.value)
                })
                .unwrap_or_else(|| format!("/var/lib/postgresql/{version}/{cluster}"));
            if !same_dir(&data, dirs) {
                continue;
            }
            let unit = format!("postgresql@{version}-{cluster}.service");
            let wants = root.at("/etc/systemd/system/multi-user.target.wants");
            let start_conf = config_file(root, &format!("{conf_dir}/start.conf"))
                .and_then(|t| {
                    t.lines()
                        .map(str::trim)
                        .find(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "auto".into());
            let direct = wants.join(&unit).symlink_metadata().is_ok();
            let through =
                wants.join("postgresql.service").symlink_metadata().is_ok() && start_conf == "auto";
            if direct || through {
                return Some(ManagedBy {
                    manager: Manager::Systemd { unit: unit.clone() },
                    how_known: HowKnown::Likely,
                    evidence: format!(
                        "Debian's cluster {conf_dir}, and {}",
                        if direct {
                            format!("{unit} is enabled")
                        } else {
                            format!("postgresql.service is enabled and starts it (start.conf: {start_conf})")
                        }
                    ),
                });
            }
            return Some(ManagedBy::none(
                HowKnown::Likely,
                format!(
                    "Debian's cluster {conf_dir}, but {unit} is not enabled (start.conf: {start_conf})"
                ),
            ));
        }
    }
    None
}

/// Who manages the cluster in `dirs` (as shown, and its real path):
/// `running`, its live owner (postmaster or hold), else `leftovers`,
/// processes still attached to its segments, else what runs or is
/// configured for it.
pub(crate) fn managed_by(
    host: &mut Host,
    running: Option<i32>,
    leftovers: &[i32],
    dirs: &[&Path],
) -> ManagedBy {
    let mut seen = Vec::new();
    if let Some(pid) = running {
        match of_process(host, pid) {
            Ok(m) => return m,
            Err(e) => seen.push(e),
        }
    }
    for &pid in leftovers.iter().take(4) {
        match of_process(host, pid) {
            Ok(mut m) => {
                if running.is_none() {
                    m.evidence = format!("{}; PID {pid} is a leftover of its server", m.evidence);
                }
                return m;
            }
            Err(e) => seen.push(e),
        }
    }
    let root = host.root.clone();
    // repmgr only where one of its configuration files names this
    // directory: looking for a running repmgrd means reading every
    // process's name, which a host of thousands of processes should not
    // pay for on every status.
    let named = repmgr_configs_naming(&root, dirs);
    if !named.is_empty() {
        for (pid, config) in repmgrd_configs(host) {
            let Some(text) = config_file(&root, &config) else {
                continue;
            };
            let (data, start_command) = repmgr_conf(&text);
            if data.as_deref().is_some_and(|d| same_dir(d, dirs)) {
                return ManagedBy {
                    manager: Manager::Repmgr {
                        config: config.clone(),
                        start_command,
                    },
                    how_known: HowKnown::Proven,
                    evidence: format!(
                        "repmgrd (PID {pid}) runs with {}, whose data_directory is this one",
                        shell::display(&config)
                    ),
                };
            }
        }
        if running.is_none() {
            let (config, start_command) = named.into_iter().next().unwrap_or_default();
            return ManagedBy {
                evidence: format!(
                    "{} names this data_directory, though no repmgrd runs with it now",
                    shell::display(&config)
                ),
                manager: Manager::Repmgr {
                    config,
                    start_command,
                },
                how_known: HowKnown::Likely,
            };
        }
    }
    if running.is_none() {
        if let Some(m) = debian(&root, dirs) {
            if m.is_managed() || seen.is_empty() {
                return m;
            }
        }
    }
    if seen.is_empty() {
        ManagedBy::none(
            HowKnown::Likely,
            "nothing of it runs, and no manager's configuration names it",
        )
    } else {
        ManagedBy::none(HowKnown::Proven, seen.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_lines_of_v2_v1_and_hybrid() {
        assert_eq!(
            cgroup_path("0::/system.slice/postgresql@15-main.service\n"),
            Some(("/system.slice/postgresql@15-main.service".into(), true))
        );
        assert_eq!(
            cgroup_path("12:pids:/\n1:name=systemd:/system.slice/postgresql-15.service\n"),
            Some(("/system.slice/postgresql-15.service".into(), false))
        );
        // This sandbox's: v1 name=systemd at / and v2 at /.
        let p = cgroup_path("9:name=systemd:/\n4:memory:/process_api/1\n0::/\n").unwrap();
        assert_eq!(p.0, "/");
        assert_eq!(service_of(&p.0), None);
    }

    #[test]
    fn only_system_services_are_units() {
        assert_eq!(
            service_of("/system.slice/postgresql@15-main.service").as_deref(),
            Some("postgresql@15-main.service")
        );
        assert_eq!(
            service_of("/system.slice/foo.service/payload").as_deref(),
            Some("foo.service")
        );
        for no in [
            "/",
            "/system.slice/docker-0123abcd.scope",
            "/user.slice/user-1000.slice/session-3.scope",
            "/user.slice/user-1000.slice/user@1000.service/app.slice/pg.service",
            "/system.slice/run-u42.scope",
            "/kubepods.slice/kubepods-pod1.slice/cri-containerd-ab.scope",
            "/docker/0123abcd",
            "/system.slice/containerd.service/kubepods-x.slice/cri-containerd-1.scope",
        ] {
            assert_eq!(service_of(no), None, "{no}");
        }
    }

    #[test]
    fn yaml_top_level_keys_and_repmgr_conf() {
        let y = "scope: batman\nname: 'node1' # me\nrestapi:\n  name: nested\n";
        assert_eq!(yaml_top(y, "scope").as_deref(), Some("batman"));
        assert_eq!(yaml_top(y, "name").as_deref(), Some("node1"));
        let (d, s) = repmgr_conf(
            "node_id=1\ndata_directory='/var/lib/pg/15'\nservice_start_command='sudo systemctl start postgresql@15-main'\n",
        );
        assert_eq!(d.as_deref(), Some("/var/lib/pg/15"));
        assert_eq!(
            s.as_deref(),
            Some("sudo systemctl start postgresql@15-main")
        );
    }

    #[test]
    fn commands_are_quoted() {
        let m = Manager::Patroni {
            config: Some("/etc/my patroni.yml".into()),
            cluster: Some("batman".into()),
            member: None,
        };
        let s = m.restart_step().unwrap();
        assert!(
            s.contains("patronictl -c '/etc/my patroni.yml' restart batman MEMBER"),
            "{s}"
        );
        assert_eq!(Manager::None.start_step("/d"), None);
    }
}
