//! What the host shows about segments and their holders, read from `/proc`
//! without touching any segment.
//!
//! The attach count of a segment (`shm_nattch` in `/proc/sysvipc/shm`)
//! says how many holders to look for, and every holder shows the segment in
//! its `/proc/PID/maps` as a `/SYSV<key>` mapping whose inode is the shmid.
//! The search therefore looks where holders are likely first and stops as
//! soon as every attachment is accounted for:
//!
//! 1. the PIDs the caller suggests (the lock file's PID, the segment's
//!    creator and last attacher) and their descendants, found through
//!    `/proc/PID/task/*/children`: a running server's backends are all
//!    children of its postmaster;
//! 2. processes owned by a user who may attach (the segment's owner and
//!    creator, the data directory's owner) whose working directory is the
//!    data directory, as every PostgreSQL process's is;
//! 3. every other process of those users;
//! 4. everyone else (root may attach to anything).
//!
//! A mapping seen in a process of another IPC namespace names a segment of
//! that namespace, not ours, and is not counted.
//!
//! A [`Host`] is a snapshot read lazily and kept: the segment table once,
//! then each process's maps, owner, working directory and IPC namespace,
//! the PID list and the `/dev/shm` listing the first time they are asked
//! for. Nothing in it belongs to one data directory, so `scan` diagnoses
//! every directory from one `Host` (each `/proc/PID/maps` read once for the
//! whole host), and `status` reads its own.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use interlock_format::dsm::{parse_dsm_control, parse_dsm_file_name, DSM_CONTROL_MAGIC};
use interlock_format::maps::SharedMappings;
use interlock_format::shmem_header::{ShmemHeader, HEADER_SIZE};
use interlock_format::sysvipc::{parse_shm_table, ShmEntry};

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use interlock::process::{ProcFs, ProcessInfo};

use super::root::{user_name_in, HostRoot};
use super::startup::NetTcp;

/// A process found attached to a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attached {
    pub pid: i32,
    pub shmid: i32,
    /// How many times it is attached (its share of `nattch`).
    pub attaches: u64,
    /// Where the first attachment starts in its address space.
    pub start: u64,
}

/// The result of a holder search.
#[derive(Debug, Default)]
pub(crate) struct Search {
    pub found: Vec<Attached>,
    /// Processes whose maps could not be read (permission).
    pub unreadable: usize,
    /// Processes looked at.
    pub examined: usize,
    /// Processes of another IPC namespace that map a segment with one of
    /// the shmids searched for (the number means another segment there).
    pub other_namespace: Vec<i32>,
}

/// A [`DsmUse`] kept: how many maps had been read, and of which files.
type DsmUseKept = (u64, Vec<DsmFile>, Rc<DsmUse>);

/// One batch of [`Host::owners_and`]: its index, and each process's owner
/// and what was asked of it (`None`: gone).
type OwnersBatch<T> = (usize, Vec<(i32, Option<(u32, T)>)>);

/// The host's segments, and a cache of what each process maps.
#[derive(Debug)]
pub(crate) struct Host {
    pub root: HostRoot,
    pub procfs: ProcFs,
    pub shm: Vec<ShmEntry>,
    /// Why `/proc/sysvipc/shm` could not be read, if it could not.
    pub shm_error: Option<String>,
    pub my_ipc_ns: Option<u64>,
    pub my_pid: i32,
    mappings: HashMap<i32, Option<SharedMappings>>,
    /// The owners of live processes whose maps could not be read: what
    /// they map is unknown, so no file they could map is called unused.
    unreadable_uids: HashSet<u32>,
    pids: Option<Vec<i32>>,
    owner_uids: HashMap<i32, Option<u32>>,
    cwd_ids: HashMap<i32, Option<(u64, u64)>>,
    ipc_namespaces: HashMap<i32, Option<u64>>,
    /// `/dev/shm` listings, by directory.
    dsm: HashMap<PathBuf, Vec<DsmFile>>,
    /// Segment headers read through a holder's memory, by (PID, address).
    headers: HashMap<(i32, u64), Option<ShmemHeader>>,
    /// The children of processes ([`ProcFs::children`]).
    children: HashMap<i32, Vec<i32>>,
    /// Counts the maps read (and the owners found unreadable): what
    /// [`Host::dsm_use`] depends on.
    maps_read: u64,
    /// The last [`Host::dsm_use`]: when the maps read, and of which files.
    dsm_use: RefCell<Option<DsmUseKept>>,
    /// What [`ProcFs::info`] says of each process asked about.
    infos: RefCell<HashMap<i32, Option<ProcessInfo>>>,
    /// `/proc/stat`'s boot time, read once.
    boot_time: OnceCell<Option<i64>>,
    /// `/etc/passwd`, read once.
    passwd: OnceCell<Option<String>>,
    /// `/proc/net/tcp*`, read once.
    net: RefCell<NetTcp>,
}

impl Host {
    pub fn read(root: &HostRoot) -> Host {
        let procfs = root.procfs().clone();
        let table_path = procfs.root().join("sysvipc/shm");
        let (shm, shm_error) = match fs::read_to_string(&table_path) {
            Ok(text) => match parse_shm_table(&text) {
                Ok(t) => (t, None),
                Err(e) => (Vec::new(), Some(format!("{}: {e}", table_path.display()))),
            },
            Err(e) => (Vec::new(), Some(format!("{}: {e}", table_path.display()))),
        };
        let my_pid = std::process::id() as i32;
        let my_ipc_ns = procfs.namespace(my_pid, "ipc").ok();
        Host {
            root: root.clone(),
            net: RefCell::new(NetTcp::new(&root.proc_net())),
            procfs,
            shm,
            shm_error,
            my_ipc_ns,
            my_pid,
            mappings: HashMap::new(),
            unreadable_uids: HashSet::new(),
            pids: None,
            owner_uids: HashMap::new(),
            cwd_ids: HashMap::new(),
            ipc_namespaces: HashMap::new(),
            dsm: HashMap::new(),
            headers: HashMap::new(),
            children: HashMap::new(),
            maps_read: 0,
            dsm_use: RefCell::new(None),
            infos: RefCell::new(HashMap::new()),
            boot_time: OnceCell::new(),
            passwd: OnceCell::new(),
        }
    }

    /// [`ProcFs::info`] of `pid`, read once (with `/proc/stat` read once
    /// for every process); `None` if it cannot be read.
    pub fn info(&self, pid: i32) -> Option<ProcessInfo> {
        if let Some(i) = self.infos.borrow().get(&pid) {
            return i.clone();
        }
        let info = self
            .procfs
            .info_with_boot_time(pid, || {
                self.boot_time
                    .get_or_init(|| self.procfs.boot_time().ok())
                    .ok_or_else(|| std::io::Error::other("no boot time in /proc/stat"))
            })
            .ok();
        self.infos.borrow_mut().insert(pid, info.clone());
        info
    }

    /// The user name of `uid` from the root's `/etc/passwd` (read once),
    /// or "uid N".
    pub fn user_name(&self, uid: u32) -> String {
        user_name_in(
            self.passwd.get_or_init(|| self.root.passwd()).as_deref(),
            uid,
        )
    }

    /// The TCP step of a start ([`super::startup::tcp`]), beside the
    /// sockets of `/proc/net/tcp*` (read once).
    pub fn tcp(&self, listen: &str, port: u16) -> super::startup::Step {
        super::startup::tcp(listen, port, &mut self.net.borrow_mut())
    }

    pub fn by_shmid(&self, shmid: i32) -> Option<&ShmEntry> {
        self.shm.iter().find(|e| e.shmid == shmid)
    }

    pub fn by_key(&self, key: i32) -> Option<&ShmEntry> {
        // Key 0 is IPC_PRIVATE, and what a removed segment's key reads as.
        if key == 0 {
            return None;
        }
        self.shm.iter().find(|e| e.key == key)
    }

    /// What `pid` maps, cached; `None` if it cannot be read.
    pub fn mappings(&mut self, pid: i32) -> Option<&SharedMappings> {
        if !self.mappings.contains_key(&pid) {
            let m = self.procfs.shared_mappings(pid).ok();
            if m.is_none() && self.procfs.stat(pid).is_ok() {
                if let Some(uid) = self.owner_uid(pid) {
                    self.unreadable_uids.insert(uid);
                }
            }
            self.mappings.insert(pid, m);
            self.maps_read += 1;
        }
        self.mappings.get(&pid).and_then(|m| m.as_ref())
    }

    /// Keep what [`ProcRead::of`] read of `pid`, owned by `uid`, as
    /// [`Host::mappings`], [`Host::cwd_id`], [`Host::ipc_namespace`],
    /// [`Host::info`] and [`Host::children`] would have read it.
    pub fn keep(&mut self, pid: i32, uid: u32, read: ProcRead) {
        if !self.mappings.contains_key(&pid) {
            if read.maps.is_none() && read.alive {
                self.unreadable_uids.insert(uid);
            }
            self.mappings.insert(pid, read.maps);
            self.maps_read += 1;
        }
        self.cwd_ids.entry(pid).or_insert(read.cwd_id);
        self.ipc_namespaces.entry(pid).or_insert(read.ipc_ns);
        self.infos.get_mut().entry(pid).or_insert(read.info);
        self.children.entry(pid).or_insert(read.children);
    }

    /// `/proc/stat`'s boot time (`btime`), read once.
    pub fn boot_time(&self) -> Option<i64> {
        *self.boot_time.get_or_init(|| self.procfs.boot_time().ok())
    }

    /// The boot time [`Host::info`] uses, if it was read already.
    pub fn boot_time_read(&self) -> Option<Option<i64>> {
        self.boot_time.get().copied()
    }

    /// Keep `boot` as the boot time [`Host::info`] uses, unless it has one.
    pub fn keep_boot_time(&mut self, boot: Option<i64>) {
        let _ = self.boot_time.set(boot);
    }

    /// The children of `pid` ([`ProcFs::children`]), cached.
    pub fn children(&mut self, pid: i32) -> Vec<i32> {
        let procfs = &self.procfs;
        self.children
            .entry(pid)
            .or_insert_with(|| procfs.children(pid))
            .clone()
    }

    /// Who uses each of `files`, by the maps read so far; kept until
    /// more maps are read (every diagnosis of a `scan` asks).
    pub fn dsm_use(&self, files: &[DsmFile]) -> Rc<DsmUse> {
        if let Some((read, of, usage)) = &*self.dsm_use.borrow() {
            if *read == self.maps_read && of.as_slice() == files {
                return usage.clone();
            }
        }
        let usage = Rc::new(self.dsm_use_now(files));
        *self.dsm_use.borrow_mut() = Some((self.maps_read, files.to_vec(), usage.clone()));
        usage
    }

    fn dsm_use_now(&self, files: &[DsmFile]) -> DsmUse {
        let mut mapped: BTreeMap<u32, Vec<i32>> = BTreeMap::new();
        for (pid, m) in self.mapped() {
            for h in &m.dsm_handles {
                mapped.entry(*h).or_default().push(pid);
            }
        }
        for pids in mapped.values_mut() {
            pids.sort_unstable();
        }
        let live_by_control = files
            .iter()
            .filter(|f| mapped.contains_key(&f.handle))
            .flat_map(|f| f.control_items.clone().unwrap_or_default())
            .collect();
        DsmUse {
            mapped,
            live_by_control,
            unreadable_uids: self.unreadable_uids.clone(),
        }
    }

    /// Every process whose mappings were read so far.
    pub fn mapped(&self) -> impl Iterator<Item = (i32, &SharedMappings)> {
        self.mappings
            .iter()
            .filter_map(|(pid, m)| m.as_ref().map(|m| (*pid, m)))
    }

    pub fn all_pids(&mut self) -> Vec<i32> {
        if self.pids.is_none() {
            let mut pids = self.procfs.pids().unwrap_or_default();
            pids.sort_unstable();
            self.pids = Some(pids);
        }
        self.pids.clone().unwrap_or_default()
    }

    /// The owner of `pid` (of its `/proc/PID`), cached.
    pub fn owner_uid(&mut self, pid: i32) -> Option<u32> {
        if let Some(u) = self.owner_uids.get(&pid) {
            return *u;
        }
        let u = self.procfs.owner_uid(pid).ok();
        self.owner_uids.insert(pid, u);
        u
    }

    /// The owner of each of `pids` (as [`Host::owner_uid`], and kept as
    /// it keeps them) and what `f` says of each process that has one;
    /// vanished processes are left out. Read on a few threads: on a host of
    /// thousands of processes this one pass over `/proc` is most of a
    /// scan's time, nearly all of it system calls.
    pub fn owners_and<T: Send>(
        &mut self,
        pids: &[i32],
        f: impl Fn(&ProcFs, i32, u32) -> T + Sync,
    ) -> Vec<(i32, u32, T)> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let procfs = &self.procfs;
        let f = &f;
        // The threads take batches in turn rather than a fixed share each:
        // the processes that cost most (PostgreSQL's, whose maps `f` may
        // read) are often neighbours in PID order.
        const BATCH: usize = 64;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let read = || -> Vec<OwnersBatch<T>> {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(c) = pids.chunks(BATCH).nth(i) else {
                    return done;
                };
                let seen = c
                    .iter()
                    .map(|&pid| {
                        let seen = procfs.owner_uid(pid).ok().map(|u| (u, f(procfs, pid, u)));
                        (pid, seen)
                    })
                    .collect();
                done.push((i, seen));
            }
        };
        let mut parts: Vec<OwnersBatch<T>> = if threads == 1 || pids.len() <= 512 {
            read()
        } else {
            std::thread::scope(|s| {
                // This thread reads too, beside `threads - 1` others.
                let handles: Vec<_> = (1..threads).map(|_| s.spawn(read)).collect();
                let mut all = read();
                for h in handles {
                    all.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
                }
                all
            })
        };
        parts.sort_unstable_by_key(|(i, _)| *i);
        let parts = parts.into_iter().map(|(_, p)| p);
        let mut out = Vec::with_capacity(pids.len());
        for (pid, seen) in parts.into_iter().flatten() {
            self.owner_uids
                .entry(pid)
                .or_insert(seen.as_ref().map(|(u, _)| *u));
            if let Some((u, t)) = seen {
                out.push((pid, u, t));
            }
        }
        out
    }

    /// Attachments the segment table counts (`nattch`) that the maps read
    /// so far, of processes in our IPC namespace, do not show.
    pub fn unaccounted_attachments(&mut self) -> u64 {
        let mut seen: HashMap<i32, u64> = HashMap::new();
        let mapping: Vec<(i32, Vec<i32>)> = self
            .mapped()
            .filter(|(_, m)| !m.sysv.is_empty())
            .map(|(pid, m)| (pid, m.sysv.iter().map(|s| s.shmid).collect()))
            .collect();
        for (pid, ids) in mapping {
            if self.same_ipc_namespace(pid) {
                for id in ids {
                    *seen.entry(id).or_default() += 1;
                }
            }
        }
        self.shm
            .iter()
            .map(|e| {
                e.nattch
                    .saturating_sub(seen.get(&e.shmid).copied().unwrap_or(0))
            })
            .sum()
    }

    /// Device and inode of `pid`'s working directory, cached.
    pub fn cwd_id(&mut self, pid: i32) -> Option<(u64, u64)> {
        *self
            .cwd_ids
            .entry(pid)
            .or_insert_with(|| self.procfs.cwd_id(pid).ok())
    }

    /// The inode of `pid`'s IPC namespace, cached.
    pub fn ipc_namespace(&mut self, pid: i32) -> Option<u64> {
        *self
            .ipc_namespaces
            .entry(pid)
            .or_insert_with(|| self.procfs.namespace(pid, "ipc").ok())
    }

    /// The PostgreSQL DSM files in `dir` ([`dsm_files`]), read once.
    pub fn dsm_files(&mut self, dir: &Path) -> Vec<DsmFile> {
        self.dsm
            .entry(dir.to_path_buf())
            .or_insert_with(|| dsm_files(dir))
            .clone()
    }

    fn same_ipc_namespace(&mut self, pid: i32) -> bool {
        match (self.my_ipc_ns, self.ipc_namespace(pid)) {
            (Some(mine), Some(theirs)) => mine == theirs,
            // Unknown: assume ours, as a kernel without namespaces has one.
            _ => true,
        }
    }

    /// Find the holders of `targets` (shmid → `nattch`), looking in the
    /// order the module doc gives and stopping when every attachment is
    /// found. `hints` are likely PIDs, `dir` the data directory's (device,
    /// inode), `uids` the users who may attach.
    pub fn find_holders(
        &mut self,
        targets: &[(i32, u64)],
        hints: &[i32],
        dir: (u64, u64),
        uids: &[u32],
    ) -> Search {
        let mut search = Search::default();
        let mut needed: HashMap<i32, u64> = targets.iter().copied().collect();
        needed.retain(|_, n| *n > 0);
        if needed.is_empty() {
            return search;
        }
        let mut visited: HashSet<i32> = HashSet::new();
        visited.insert(self.my_pid);

        // 1. hints and their descendants.
        let mut queue: Vec<i32> = hints.iter().copied().filter(|p| *p > 0).collect();
        let mut depth_budget = 4096usize;
        while let Some(pid) = queue.pop() {
            if needed.is_empty() {
                return search;
            }
            if !visited.insert(pid) {
                continue;
            }
            self.examine(pid, &mut needed, &mut search);
            if depth_budget > 0 {
                let kids = self.children(pid);
                depth_budget = depth_budget.saturating_sub(kids.len());
                queue.extend(kids);
            }
        }
        if needed.is_empty() {
            return search;
        }

        // 2. and 3. processes of users who may attach: cwd in the data
        // directory first.
        let pids = self.all_pids();
        let mut same_user = Vec::new();
        let mut others = Vec::new();
        for &pid in &pids {
            if visited.contains(&pid) {
                continue;
            }
            match self.owner_uid(pid) {
                Some(u) if uids.contains(&u) => {
                    if self.cwd_id(pid) == Some(dir) {
                        visited.insert(pid);
                        self.examine(pid, &mut needed, &mut search);
                        if needed.is_empty() {
                            return search;
                        }
                    } else {
                        same_user.push(pid);
                    }
                }
                Some(_) => others.push(pid),
                None => {} // vanished
            }
        }
        for pid in same_user.into_iter().chain(others) {
            if needed.is_empty() {
                break;
            }
            visited.insert(pid);
            self.examine(pid, &mut needed, &mut search);
        }
        search
    }

    fn examine(&mut self, pid: i32, needed: &mut HashMap<i32, u64>, search: &mut Search) {
        search.examined += 1;
        let hits: Vec<(i32, u64, u64)> = match self.mappings(pid) {
            None => {
                if self.procfs.stat(pid).is_ok() {
                    search.unreadable += 1;
                }
                return;
            }
            Some(m) => {
                let mut hits: Vec<(i32, u64, u64)> = Vec::new();
                for s in &m.sysv {
                    if !needed.contains_key(&s.shmid) {
                        continue;
                    }
                    match hits.iter_mut().find(|h| h.0 == s.shmid) {
                        Some(h) => h.1 += 1,
                        None => hits.push((s.shmid, 1, s.start)),
                    }
                }
                hits
            }
        };
        if hits.is_empty() {
            return;
        }
        if !self.same_ipc_namespace(pid) {
            search.other_namespace.push(pid);
            return;
        }
        for (shmid, attaches, start) in hits {
            if let Some(n) = needed.get_mut(&shmid) {
                *n = n.saturating_sub(attaches);
                if *n == 0 {
                    needed.remove(&shmid);
                }
            }
            search.found.push(Attached {
                pid,
                shmid,
                attaches,
                start,
            });
        }
    }

    /// The segment header as a holder sees it, read through its
    /// `/proc/PID/mem` (no attach), once per holder and address: every
    /// diagnosis of a `scan` asks about every segment.
    pub fn header_via(&mut self, holder: &Attached) -> Option<ShmemHeader> {
        let procfs = &self.procfs;
        *self
            .headers
            .entry((holder.pid, holder.start))
            .or_insert_with(|| {
                let bytes = procfs
                    .read_memory(holder.pid, holder.start, HEADER_SIZE)
                    .ok()?;
                ShmemHeader::parse(&bytes).ok()
            })
    }

    /// Processes whose working directory is `dir`, among all processes.
    pub fn working_in(&mut self, dir: (u64, u64)) -> Vec<i32> {
        let pids = self.all_pids();
        pids.into_iter()
            .filter(|&p| p != self.my_pid && self.cwd_id(p) == Some(dir))
            .collect()
    }

    /// Read the maps of every process owned by one of `uids`, for
    /// questions such as "does any process of the server's user map this
    /// DSM file". (Root could map the file too, but no server runs as
    /// root, and unlinking a file a process maps does not take its memory
    /// away.)
    pub fn read_all_mappings(&mut self, uids: &[u32]) {
        for pid in self.all_pids() {
            if pid == self.my_pid {
                continue;
            }
            if self.owner_uid(pid).is_some_and(|u| uids.contains(&u)) {
                let _ = self.mappings(pid);
            }
        }
    }
}

/// What `scan` reads of each PostgreSQL process, on the threads of its one
/// pass over `/proc` ([`Host::owners_and`]), for [`Host::keep`]: what the
/// diagnoses of the directories would ask of it one at a time.
#[derive(Debug)]
pub(crate) struct ProcRead {
    maps: Option<SharedMappings>,
    /// Whether the process was alive when its maps could not be read.
    alive: bool,
    pub cwd: Option<PathBuf>,
    pub cwd_id: Option<(u64, u64)>,
    ipc_ns: Option<u64>,
    info: Option<ProcessInfo>,
    children: Vec<i32>,
}

impl ProcRead {
    /// Read `pid`'s maps, working directory, IPC namespace, what
    /// [`ProcFs::info`] says of it (with `boot_time`, as
    /// [`ProcFs::info_with_boot_time`] takes it) and its children.
    pub fn of(
        procfs: &ProcFs,
        pid: i32,
        boot_time: impl FnOnce() -> std::io::Result<i64>,
    ) -> ProcRead {
        let maps = procfs.shared_mappings(pid).ok();
        let alive = maps.is_some() || procfs.stat(pid).is_ok();
        ProcRead {
            maps,
            alive,
            cwd: procfs.cwd(pid).ok(),
            cwd_id: procfs.cwd_id(pid).ok(),
            ipc_ns: procfs.namespace(pid, "ipc").ok(),
            info: procfs.info_with_boot_time(pid, boot_time).ok(),
            children: procfs.children(pid),
        }
    }
}

/// A `/dev/shm/PostgreSQL.N` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DsmFile {
    pub path: PathBuf,
    pub handle: u32,
    pub size: u64,
    pub uid: u32,
    pub mtime: i64,
    /// For a control segment: the handles of the live segments it lists.
    pub control_items: Option<Vec<u32>>,
}

impl DsmFile {
    /// The file as reports show it.
    pub fn info(&self, mapped_by: Vec<i32>, status: super::DsmStatus) -> super::DsmInfo {
        super::DsmInfo {
            path: self.path.display().to_string(),
            handle: self.handle,
            size: self.size,
            uid: self.uid,
            control: self.control_items.is_some(),
            mapped_by,
            status,
        }
    }
}

/// Files and segments younger than this may belong to a server that is
/// starting and has not mapped or attached them yet: never called leaked.
pub(crate) const GRACE_SECS: i64 = 2;

/// The wall clock, epoch seconds.
pub(crate) fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Who uses each DSM file, by the maps read so far.
#[derive(Debug)]
pub(crate) struct DsmUse {
    /// Handle → the PIDs mapping it, sorted.
    mapped: BTreeMap<u32, Vec<i32>>,
    /// Handles listed by a control segment that somebody maps.
    live_by_control: Vec<u32>,
    /// Owners of processes whose maps could not be read.
    unreadable_uids: HashSet<u32>,
}

/// Whether a DSM file is used, as far as the maps read tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DsmState {
    /// A process maps it, a live control segment lists it, or it is too
    /// young to tell.
    InUse,
    /// Nobody maps it, and every process that could was read.
    Unused,
    /// Nobody whose maps were read maps it, but a process of the file's
    /// owner could not be read (`/proc/PID/maps` needs the right to
    /// ptrace it): it may be mapped there.
    Unknown,
}

impl DsmUse {
    /// The processes mapping `handle`.
    pub fn mapped_by(&self, handle: u32) -> Vec<i32> {
        self.mapped.get(&handle).cloned().unwrap_or_default()
    }

    /// Whether anybody whose maps were read maps `handle`.
    pub fn is_mapped(&self, handle: u32) -> bool {
        self.mapped.contains_key(&handle)
    }

    /// Whether `f` is unused: nobody maps it, no live control segment
    /// lists it, it is older than [`GRACE_SECS`], and every process of its
    /// owner could be read (an unreadable map is not an empty one).
    pub fn state(&self, f: &DsmFile, now: i64) -> DsmState {
        if self.is_mapped(f.handle)
            || self.live_by_control.contains(&f.handle)
            || now - f.mtime <= GRACE_SECS
        {
            DsmState::InUse
        } else if self.unreadable_uids.contains(&f.uid) {
            DsmState::Unknown
        } else {
            DsmState::Unused
        }
    }
}

/// A control segment holds `64 + 5 * MaxBackends` items of at most 40
/// bytes; anything larger than this is not one, and is not read.
const MAX_CONTROL_READ: u64 = 4 << 20;

/// The live handles listed by a control segment file; `None` if it is not
/// one. Only the magic is read from other files.
fn read_control(path: &Path) -> Option<Vec<u32>> {
    use std::io::Read;
    // Anyone may create files in /dev/shm: never block on a FIFO swapped
    // in after the type was checked, never follow a planted link.
    let dir = path.parent()?;
    let mut f = interlock::safe_fs::open_regular(Some(dir), Path::new(path.file_name()?))
        .ok()?
        .file;
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic).ok()?;
    if u32::from_ne_bytes(magic) != DSM_CONTROL_MAGIC {
        return None;
    }
    let mut bytes = magic.to_vec();
    f.take(MAX_CONTROL_READ).read_to_end(&mut bytes).ok()?;
    parse_dsm_control(&bytes)
        .ok()
        .map(|c| c.live_segment_handles())
}

/// The PostgreSQL DSM files in `dir` (normally `/dev/shm`), with control
/// segments read (a plain file read: it changes nothing for PostgreSQL).
pub(crate) fn dsm_files(dir: &Path) -> Vec<DsmFile> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(handle) = name.to_str().and_then(parse_dsm_file_name) else {
            continue;
        };
        let Ok(m) = fs::symlink_metadata(e.path()) else {
            continue;
        };
        if !m.file_type().is_file() {
            continue;
        }
        let control_items = if m.len() >= 16 && m.len() <= MAX_CONTROL_READ {
            read_control(&e.path())
        } else {
            None
        };
        out.push(DsmFile {
            path: e.path(),
            handle,
            size: m.len(),
            uid: m.uid(),
            mtime: m.mtime(),
            control_items,
        });
    }
    out.sort_by_key(|d| d.handle);
    out
}
