//! A data directory's configuration: `postgresql.conf`, then
//! `postgresql.auto.conf` (which `ALTER SYSTEM` writes and which wins),
//! following `include`, `include_if_exists` and `include_dir` as the server
//! does. Later settings override earlier ones.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use interlock_format::pgconf::parse_conf;

use crate::HostRoot;

/// A setting and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The value, unquoted.
    pub value: String,
    /// The file that set it last.
    pub file: PathBuf,
    /// The line in that file.
    pub line: usize,
}

/// Settings by lower-case name, plus problems met on the way (unreadable
/// files, syntax errors, include loops), each naming file and line.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The settings.
    pub values: BTreeMap<String, Setting>,
    /// What could not be read.
    pub problems: Vec<String>,
    /// Of those, the files refused as not what PostgreSQL reads there: a
    /// FIFO, a device, a link in a directory another user owns, a file
    /// larger than [`CONFIG_MAX`](interlock::safe_fs::CONFIG_MAX).
    pub refused: Vec<String>,
}

impl Settings {
    /// A setting's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(&name.to_ascii_lowercase())
            .map(|s| s.value.as_str())
    }

    /// `port`, if set and valid.
    pub fn port(&self) -> Option<u16> {
        self.get("port").and_then(|v| v.parse().ok())
    }
}

const MAX_DEPTH: usize = 10;

/// `DATADIR/postgresql.conf`, else Debian's file under `ROOT/etc/postgresql`
/// that names `data_dir` (its `data_directory` taken as it is, and, under
/// a root that is not the host's, also under that root).
pub fn config_file(root: &HostRoot, data_dir: &Path) -> PathBuf {
    let own = data_dir.join("postgresql.conf");
    if own.exists() {
        return own;
    }
    let Ok(real) = fs::canonicalize(data_dir) else {
        return own;
    };
    let names = |value: &str| {
        fs::canonicalize(value).is_ok_and(|p| p == real)
            || (!root.is_host() && fs::canonicalize(root.at(value)).is_ok_and(|p| p == real))
    };
    let candidates = fs::read_dir(root.at("/etc/postgresql"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|v| fs::read_dir(v.path()).into_iter().flatten().flatten())
        .map(|c| c.path().join("postgresql.conf"));
    for conf in candidates {
        let Ok(text) =
            interlock::safe_fs::read_to_string(None, &conf, interlock::safe_fs::CONFIG_MAX)
        else {
            continue;
        };
        let names_us = parse_conf(&text).ok().is_some_and(|entries| {
            entries
                .iter()
                .any(|e| e.name == "data_directory" && names(&e.value))
        });
        if names_us {
            return conf;
        }
    }
    own
}

/// Read the configuration of the cluster in `data_dir`: its own
/// `postgresql.conf`, or, in Debian's layout, the
/// `ROOT/etc/postgresql/MAJOR/CLUSTER/postgresql.conf` whose
/// `data_directory` is this directory.
///
/// Every file is read through [`interlock::safe_fs`]: at most
/// [`CONFIG_MAX`](interlock::safe_fs::CONFIG_MAX) bytes, never a FIFO or a
/// device, and no symbolic link in a directory owned by another user than
/// root or us (the data directory itself is trusted as given). What is
/// refused is in [`Settings::problems`], naming the file.
pub fn read_settings(root: &HostRoot, data_dir: &Path) -> Settings {
    let mut s = Settings::default();
    read_file(data_dir, &config_file(root, data_dir), true, 0, &mut s);
    read_file(
        data_dir,
        &data_dir.join("postgresql.auto.conf"),
        false,
        0,
        &mut s,
    );
    s
}

/// Read one configuration file, `path`, with the files it includes, as
/// [`read_settings`] reads a data directory's (under the same rules); no
/// `postgresql.auto.conf`. For Debian's
/// `/etc/postgresql/VERSION/NAME/postgresql.conf`, where `data_directory`
/// is set.
pub fn read_file_settings(path: &Path) -> Settings {
    let mut s = Settings::default();
    read_file(path, path, true, 0, &mut s);
    s
}

/// Read `path` under the rules of [`interlock::safe_fs`], trusting the part
/// that is the data directory `trusted`.
fn read_conf(trusted: &Path, path: &Path) -> Result<String, interlock::safe_fs::ReadError> {
    use interlock::safe_fs::{read_to_string, CONFIG_MAX};
    match path.strip_prefix(trusted) {
        Ok(rel) if !rel.as_os_str().is_empty() => read_to_string(Some(trusted), rel, CONFIG_MAX),
        _ => read_to_string(None, path, CONFIG_MAX),
    }
}

fn read_file(trusted: &Path, path: &Path, required: bool, depth: usize, out: &mut Settings) {
    if depth > MAX_DEPTH {
        out.problems.push(format!(
            "{}: includes nested deeper than {MAX_DEPTH} levels",
            path.display()
        ));
        return;
    }
    let text = match read_conf(trusted, path) {
        Ok(t) => t,
        Err(e) => {
            if e.is_hostile() {
                out.refused.push(e.to_string());
            }
            if required || !e.is_not_found() {
                out.problems.push(e.to_string());
            }
            return;
        }
    };
    let entries = match parse_conf(&text) {
        Ok(e) => e,
        Err(e) => {
            out.problems.push(format!("{}: {e}", path.display()));
            return;
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    for e in entries {
        let target = || {
            let p = PathBuf::from(&e.value);
            if p.is_absolute() {
                p
            } else {
                base.join(p)
            }
        };
        match e.name.as_str() {
            "include" => read_file(trusted, &target(), true, depth + 1, out),
            "include_if_exists" => read_file(trusted, &target(), false, depth + 1, out),
            "include_dir" => {
                let dir = target();
                let mut files: Vec<PathBuf> = match fs::read_dir(&dir) {
                    Ok(rd) => rd
                        .filter_map(|d| d.ok().map(|d| d.path()))
                        .filter(|p| {
                            p.extension().is_some_and(|x| x == "conf")
                                && !p
                                    .file_name()
                                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                        })
                        .collect(),
                    Err(err) => {
                        out.problems.push(format!("{}: {err}", dir.display()));
                        continue;
                    }
                };
                files.sort();
                for f in files {
                    read_file(trusted, &f, true, depth + 1, out);
                }
            }
            _ => {
                out.values.insert(
                    e.name.clone(),
                    Setting {
                        value: e.value.clone(),
                        file: path.to_path_buf(),
                        line: e.line,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_conf_wins_and_includes_are_followed() {
        let d = tempfile::tempdir().unwrap();
        fs::write(
            d.path().join("postgresql.conf"),
            "port = 5433\ninclude 'extra.conf'\ninclude_dir 'conf.d'\n",
        )
        .unwrap();
        fs::write(d.path().join("extra.conf"), "shared_buffers = 1GB\n").unwrap();
        fs::create_dir(d.path().join("conf.d")).unwrap();
        fs::write(d.path().join("conf.d/01.conf"), "max_connections = 50\n").unwrap();
        fs::write(d.path().join("postgresql.auto.conf"), "port = '5444'\n").unwrap();
        let s = read_settings(&HostRoot::default(), d.path());
        assert_eq!(s.port(), Some(5444));
        assert_eq!(s.get("shared_buffers"), Some("1GB"));
        assert_eq!(s.get("max_connections"), Some("50"));
        assert!(s.problems.is_empty(), "{:?}", s.problems);
    }

    #[test]
    fn include_loops_and_bad_lines_are_reported() {
        let d = tempfile::tempdir().unwrap();
        fs::write(
            d.path().join("postgresql.conf"),
            "include 'postgresql.conf'\n",
        )
        .unwrap();
        let s = read_settings(&HostRoot::default(), d.path());
        assert!(s.problems.iter().any(|p| p.contains("nested")));
        fs::write(d.path().join("postgresql.conf"), "port = 'x\n").unwrap();
        let s = read_settings(&HostRoot::default(), d.path());
        assert!(
            s.problems.iter().any(|p| p.contains("line 1")),
            "{:?}",
            s.problems
        );
    }

    #[test]
    fn debians_layout_is_read_under_the_root() {
        // ROOT/etc/postgresql/16/main/postgresql.conf names the data
        // directory ROOT/var/lib/postgresql/16/main, which has no
        // postgresql.conf of its own.
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("var/lib/postgresql/16/main");
        fs::create_dir_all(&data).unwrap();
        let etc = root.path().join("etc/postgresql/16/main");
        fs::create_dir_all(&etc).unwrap();
        fs::write(
            etc.join("postgresql.conf"),
            "data_directory = '/var/lib/postgresql/16/main'\nport = 5499\n",
        )
        .unwrap();
        let fixture = HostRoot::new(root.path());
        assert_eq!(config_file(&fixture, &data), etc.join("postgresql.conf"));
        assert_eq!(read_settings(&fixture, &data).port(), Some(5499));
        // The host's own /etc knows nothing of it.
        assert_eq!(
            config_file(&HostRoot::default(), &data),
            data.join("postgresql.conf")
        );
        assert_eq!(read_settings(&HostRoot::default(), &data).port(), None);
    }
}
