//! PostgreSQL's dynamic shared memory files in `/dev/shm`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use interlock_format::dsm::{dsm_file_name, parse_dsm_control};

/// The names of the `PostgreSQL.*` files in `/dev/shm`.
pub fn dsm_files() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("PostgreSQL."))
                .collect()
        })
        .unwrap_or_default()
}

/// The `/dev/shm/PostgreSQL.*` files that some process maps (by name).
pub fn mapped_dsm_files() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(maps) = std::fs::read_to_string(p.path().join("maps")) else {
            continue;
        };
        for l in maps.lines() {
            if let Some(i) = l.find("/dev/shm/PostgreSQL.") {
                let name = l[i + "/dev/shm/".len()..].trim_end_matches(" (deleted)");
                out.insert(name.to_string());
            }
        }
    }
    out
}

/// DSM files a test's killed server left, removed on drop (declare it
/// before the `Cleanup` that kills their last user).
#[derive(Debug)]
pub struct DsmFiles(pub Vec<PathBuf>);

impl DsmFiles {
    /// What `pid` maps of `/dev/shm`, and what the control segment among
    /// them lists.
    pub fn of(pid: i32) -> DsmFiles {
        let mut files: Vec<PathBuf> = std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .filter(|p| p.starts_with("/dev/shm/PostgreSQL."))
            .map(PathBuf::from)
            .collect();
        for f in files.clone() {
            if let Ok(Ok(c)) = std::fs::read(&f).map(|b| parse_dsm_control(&b)) {
                files.extend(
                    c.live_segment_handles()
                        .into_iter()
                        .map(|h| Path::new("/dev/shm").join(dsm_file_name(h))),
                );
            }
        }
        DsmFiles(files)
    }
}

impl Drop for DsmFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}
