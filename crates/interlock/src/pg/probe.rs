//! The server's System V segment rules: which probe algorithm a release
//! runs, what one step of the key probe does with the segment it finds
//! (`PGSharedMemoryCreate`), and what the lock file's line 7 makes it do
//! (`PGSharedMemoryIsInUse`), both in `src/backend/port/sysv_shmem.c`.

use super::major_of;

/// The interlock algorithm a server release runs.
///
/// Noah Misch's `IpcMemoryState` rework of `PGSharedMemoryCreate` and
/// `PGSharedMemoryAttach` (`src/backend/port/sysv_shmem.c`) shipped in
/// 10.8 and 11.3 and is in every 12.x and later; earlier minors of 10 and
/// 11 run the loop from before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// 10.8+, 11.3+, 12+: segment states; refuses on an attached segment
    /// of this directory found by key.
    New,
    /// 10.0–10.7, 11.0–11.2: recycles any segment with a PostgreSQL
    /// header whose creator PID is dead, attached or not, of any
    /// directory.
    Old,
}

/// The minor version in a server's version string (`"10.7"` → 7,
/// `"11.22"` → 22, `"10.3beta1"` → 3); `None` for a release without one
/// (`"15devel"`, `"15"`). The string is `PG_VERSION_STR`'s number as
/// `postgres --version` prints it (`src/backend/main/main.c`).
pub fn minor_of(version: &str) -> Option<u32> {
    let rest = version.split('.').nth(1)?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// The algorithm of a major version and, for 10 and 11, its minor (see
/// [`Algorithm`]; `PGSharedMemoryCreate` in `src/backend/port/sysv_shmem.c`
/// of each release). `None` when it cannot be told: 10 or 11 without a
/// minor, or a major before 10, which this crate does not model.
pub fn algorithm(major: u32, minor: Option<u32>) -> Option<Algorithm> {
    let new_from = match major {
        12.. => return Some(Algorithm::New),
        10 => 8,
        11 => 3,
        _ => return None,
    };
    minor.map(|m| {
        if m >= new_from {
            Algorithm::New
        } else {
            Algorithm::Old
        }
    })
}

/// The algorithm of the server whose version string is `server` (as
/// `postgres --version` prints it), for a data directory of `major`: its
/// minor counts only if the string is of that major ([`algorithm`]).
pub fn algorithm_of_server(major: u32, server: Option<&str>) -> Option<Algorithm> {
    let minor = server
        .filter(|v| major_of(v) == Some(major))
        .and_then(minor_of);
    algorithm(major, minor)
}

/// Whose a segment is, as far as its observer can tell: PostgreSQL's
/// `IpcMemoryState` (`src/backend/port/sysv_shmem.c`) without the attach
/// count, which is given beside it, plus [`Whose::Unknown`] for a
/// diagnosis that could not read the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// Its header names this data directory (`SHMSTATE_ATTACHED` or
    /// `SHMSTATE_UNATTACHED`, by the attach count).
    ThisDirectory,
    /// Exists, but not this directory's, or not one the server may read
    /// or attach, or smaller than a header (`SHMSTATE_FOREIGN`).
    Foreign,
    /// No segment with that id (any more) (`SHMSTATE_ENOENT`).
    Vanished,
    /// An unexpected failure while analysing it
    /// (`SHMSTATE_ANALYSIS_FAILURE`).
    AnalysisFailure,
    /// Not known: an observer that does not attach could not read its
    /// header.
    Unknown,
}

/// What the old loop (10.0–10.7, 11.0–11.2) learns from the header of a
/// segment it finds by key: `shmget(key, sizeof(PGShmemHeader), 0)` and
/// `shmat(shmid, 0, 0)`, then `hdr->magic != PGShmemMagic`, then
/// `kill(hdr->creatorPID, 0)` (`PGSharedMemoryCreate` in
/// `src/backend/port/sysv_shmem.c` of `REL_10_7`/`REL_11_2`). The PID is
/// the header's `creatorPID`, not the kernel's `shm_cpid`: the server
/// never asks the kernel who created the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderSeen {
    /// The server cannot attach it and read a header from it: `shmget`
    /// fails (the segment is smaller than a header) or `shmat` fails (the
    /// server's user lacks read and write permission): "must be some
    /// other app's".
    Unreadable,
    /// Its first bytes are not `PGShmemMagic`: "segment belongs to a
    /// non-Postgres app".
    NotPostgres,
    /// A PostgreSQL header, of any data directory (the old loop compares
    /// neither device nor inode).
    Postgres {
        /// Whether the header's `creatorPID` is alive as the server sees
        /// it: `kill(pid, 0)` succeeds or fails otherwise than `ESRCH`
        /// (`EPERM`, another user's process, counts as alive). `None`:
        /// cannot be told.
        creator_alive: Option<bool>,
    },
    /// Not known: the observer could not read the header (nobody it may
    /// read the memory of is attached, and it does not attach).
    Unknown,
}

/// What a server finds at a key it probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentAtKey {
    /// No segment: `shmget(key, size, IPC_CREAT | IPC_EXCL | 0600)`
    /// succeeds.
    Free,
    /// A segment holds the key.
    Taken {
        /// Whose it is, by the new algorithm's analysis. The old algorithm
        /// asks only whether it vanished ([`Whose::Vanished`]: its
        /// `shmget` by key fails).
        whose: Whose,
        /// Its attach count (`shm_nattch`), read before attaching. Only
        /// the new algorithm asks.
        nattch: u64,
        /// Whether the server's user may remove it (`IPC_RMID`: it is the
        /// segment's owner or creator). An observer about to try the
        /// removal itself may say `true`: a failed removal leads to the
        /// next key, as [`ProbeStep::Recycle`] says.
        removable: bool,
        /// What its header tells the old algorithm; the new one asks
        /// nothing of it here (its answer is in `whose`).
        header: HeaderSeen,
    },
}

/// What one step of the key probe does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeStep {
    /// The key is free: create the segment here.
    Create,
    /// Remove the segment (after the DSM segments its header's
    /// `dsm_control` lists) and create here; if `IPC_RMID` fails, go on to
    /// the next key ("assume the segment belongs to someone else after
    /// all").
    Recycle,
    /// The segment vanished while being analysed: try the same key again
    /// (LOG "shared memory block (key %lu, ID %lu) deleted during
    /// startup").
    Retry,
    /// Leave it and try the next key.
    NextKey,
    /// FATAL "pre-existing shared memory block (key %lu, ID %lu) is still
    /// in use": the server refuses to start.
    Blocked,
    /// What the segment's header says cannot be told, and either answer
    /// leaves the server starting: it recycles the segment
    /// ([`ProbeStep::Recycle`]) or moves on ([`ProbeStep::NextKey`]). New
    /// algorithm: nobody is attached, and whose it is is unknown (this
    /// directory's → recycle, another's → next key). Old algorithm: the
    /// header is unknown (a dead creator's PostgreSQL header → recycle; no
    /// PostgreSQL header or a live creator → next key).
    RecycleOrNextKey,
    /// Processes are attached and whose it is cannot be told: the server
    /// refuses if it is this directory's and moves on if not (new
    /// algorithm only; the old one never refuses).
    Unknown,
}

/// What `PGSharedMemoryCreate` (`src/backend/port/sysv_shmem.c`) does with
/// what it finds at one key, under `algo`.
///
/// New algorithm (10.8+, 11.3+, 12+): `ATTACHED` or `ANALYSIS_FAILURE` →
/// FATAL; `ENOENT` → the same key again; `FOREIGN` → the next key;
/// `UNATTACHED` → recycle (the next key if `IPC_RMID` fails). It never
/// removes a segment anybody is attached to, nor another directory's.
/// It reads `whose`, `nattch` and `removable`, never `header`.
///
/// Old algorithm (10.0–10.7, 11.0–11.2), from the [`HeaderSeen`] in
/// `header`: a segment it cannot attach and read a header from → the next
/// key; no `PGShmemMagic` → the next key; a live `creatorPID` → the next
/// key; otherwise (a PostgreSQL header, of any directory, whose creator is
/// dead) remove it, attached or not (the next key if `IPC_RMID` fails:
/// `removable` false). It reads `header`, `removable` and only
/// [`Whose::Vanished`] of `whose`, never `nattch`. A header that cannot
/// be told ([`HeaderSeen::Unknown`], or a creator whose liveness is
/// unknown) gives [`ProbeStep::RecycleOrNextKey`] rather than
/// [`ProbeStep::Unknown`]: every answer it could be leaves the server
/// starting, at this key or a later one (the old loop never refuses); if
/// the segment is not `removable` every answer is the next key, which is
/// then given. (The loop's exception for `creatorPID == getpid()`, its own
/// earlier incarnation, cannot arise for a server not yet started.)
///
/// `DataDirLock::acquire` takes the new algorithm's steps, and refuses
/// where a step cannot be told.
pub fn probe_step(algo: Algorithm, at: &SegmentAtKey) -> ProbeStep {
    let SegmentAtKey::Taken {
        whose,
        nattch,
        removable,
        header,
    } = *at
    else {
        return ProbeStep::Create;
    };
    match algo {
        Algorithm::New => match whose {
            Whose::Vanished => ProbeStep::Retry,
            Whose::AnalysisFailure => ProbeStep::Blocked,
            Whose::Foreign => ProbeStep::NextKey,
            Whose::ThisDirectory if nattch > 0 => ProbeStep::Blocked,
            Whose::ThisDirectory if removable => ProbeStep::Recycle,
            Whose::ThisDirectory => ProbeStep::NextKey,
            Whose::Unknown if nattch > 0 => ProbeStep::Unknown,
            Whose::Unknown => ProbeStep::RecycleOrNextKey,
        },
        Algorithm::Old => {
            // Whether the loop goes on to remove it: a PostgreSQL header
            // whose creator is dead. shmget(key, sizeof hdr, 0) or shmat
            // failing, no magic, a live creator: the next key.
            let zaps = match header {
                _ if whose == Whose::Vanished => Some(false),
                HeaderSeen::Unreadable | HeaderSeen::NotPostgres => Some(false),
                HeaderSeen::Postgres { creator_alive } => creator_alive.map(|alive| !alive),
                HeaderSeen::Unknown => None,
            };
            match (zaps, removable) {
                // IPC_RMID refused: the next key, whatever the header.
                (_, false) | (Some(false), true) => ProbeStep::NextKey,
                (Some(true), true) => ProbeStep::Recycle,
                (None, true) => ProbeStep::RecycleOrNextKey,
            }
        }
    }
}

/// What the server's user may do with a segment, by the kernel's
/// permission check (`ipcperms` in the kernel's ipc/util.c): the owner's
/// bits if the user is the segment's owner or creator (`uid`, `cuid`),
/// else the group's if its group is the segment's group or creator's group
/// (`gid`, `cgid`), else the others'. `shmctl(IPC_STAT)` asks for read
/// access; `shmat(shmid, NULL, 0)`, without `SHM_RDONLY` as the server
/// calls it, for read **and** write (`do_shmat` in ipc/shm.c). Both fail
/// with `EACCES` when refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShmAccess {
    /// Not even read: `IPC_STAT` fails with `EACCES`.
    None,
    /// Read but not write: `IPC_STAT` succeeds, `shmat` fails with
    /// `EACCES`.
    ReadOnly,
    /// Read and write: the server may attach it.
    ReadWrite,
}

impl ShmAccess {
    /// The access of a process running as `user` (uid, gid) to a segment
    /// of permission bits `mode` whose owner is `owner` (uid, gid) and
    /// creator `creator` (cuid, cgid), as `ipcperms` grants it without
    /// `CAP_IPC_OWNER` (a server never runs as root). Only `user`'s given
    /// group counts: its supplementary groups are not known here.
    pub fn granted(mode: u32, owner: (u32, u32), creator: (u32, u32), user: (u32, u32)) -> Self {
        let (uid, gid) = user;
        let bits = if uid == owner.0 || uid == creator.0 {
            mode >> 6
        } else if gid == owner.1 || gid == creator.1 {
            mode >> 3
        } else {
            mode
        };
        match bits & 0o6 {
            0o6 => ShmAccess::ReadWrite,
            0o4 => ShmAccess::ReadOnly,
            _ => ShmAccess::None,
        }
    }

    /// Whether the server may attach it (`shmat` without `SHM_RDONLY`).
    pub fn can_attach(self) -> bool {
        self == ShmAccess::ReadWrite
    }
}

/// What a starting server makes of the segment named on line 7 of a lock
/// file whose owner is dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line7Verdict {
    /// In use: FATAL "pre-existing shared memory block (key %lu, ID %lu)
    /// is still in use" (this directory's with processes attached, or an
    /// analysis failure; before 10.8/11.3 also one with processes attached
    /// that the server may read but not attach).
    InUse,
    /// This directory's, nobody attached: not in use. The server goes on
    /// and leaves it (`PGSharedMemoryIsInUse` removes nothing; the key
    /// probe recycles it if it reaches its key); `DataDirLock::acquire`
    /// removes it then and there.
    Unattached,
    /// Not in use and nothing to clean: no such segment, another's, one
    /// the server may not attach (10.8+/11.3+) or read, or one nobody is
    /// attached to whose owner cannot be told.
    Ignored,
    /// Cannot be told, for the reason given.
    Unknown(Line7Doubt),
}

/// Why a [`Line7Verdict`] cannot be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line7Doubt {
    /// Processes are attached and whose it is cannot be told: in use if it
    /// is this directory's, ignored if not.
    Whose,
    /// The two algorithms answer differently and which one the server runs
    /// is not known (10 or 11 without its minor): a segment with processes
    /// attached that the server's user may read but not attach is in use
    /// before 10.8/11.3 and foreign from then on.
    Algorithm,
}

/// `PGSharedMemoryIsInUse(id1, id2)` (`src/backend/port/sysv_shmem.c`),
/// called by `CreateLockFile` (`src/backend/utils/init/miscinit.c`) for
/// line 7 of a stale `postmaster.pid`: only the shmid counts. `whose` and
/// `nattch` are the segment's as the new algorithm analyses it (`whose`
/// by its header, when the server may attach it), `access` what the
/// server's user may do with it; `algo` the server's algorithm, `None`
/// when it is not known (then where the two answer differently the
/// verdict is [`Line7Doubt::Algorithm`]).
///
/// New algorithm (10.8+, 11.3+, 12+): `PGSharedMemoryAttach`, whose
/// `IPC_STAT` or `shmat` failing with `EACCES` is `SHMSTATE_FOREIGN`;
/// `ATTACHED` and `ANALYSIS_FAILURE` are in use, the rest not. So a
/// segment the server may read but not write is another's, whatever its
/// header says.
///
/// Old algorithm (10.0–10.7, 11.0–11.2), in its order: `IPC_STAT` failing
/// with `EACCES` (or the segment gone) → not in use; nobody attached → not
/// in use; `stat(DataDir)` failing → in use; **any** `shmat` failure,
/// `EACCES` included → in use; another directory's header → not in use;
/// else in use. So a segment with processes attached that the server may
/// read but not attach is in use, whoever's it is. An analysis failure is
/// taken for in use as in the new algorithm (the old one passes a
/// failure after its attach count on a segment nobody is attached to, but
/// `Whose::AnalysisFailure` does not say where it failed).
pub fn line7_verdict(
    algo: Option<Algorithm>,
    whose: Whose,
    nattch: u64,
    access: ShmAccess,
) -> Line7Verdict {
    match algo {
        Some(a) => line7_of(a, whose, nattch, access),
        None => {
            let old = line7_of(Algorithm::Old, whose, nattch, access);
            let new = line7_of(Algorithm::New, whose, nattch, access);
            if old == new {
                new
            } else {
                Line7Verdict::Unknown(Line7Doubt::Algorithm)
            }
        }
    }
}

fn line7_of(algo: Algorithm, whose: Whose, nattch: u64, access: ShmAccess) -> Line7Verdict {
    match (whose, access) {
        // IPC_STAT: EINVAL (gone) or EACCES → not in use, in both.
        (Whose::Vanished, _) | (_, ShmAccess::None) => Line7Verdict::Ignored,
        // shmat EACCES: FOREIGN (new); in use once anybody is attached,
        // the attach count coming first (old).
        (_, ShmAccess::ReadOnly) => match algo {
            Algorithm::Old if nattch > 0 => Line7Verdict::InUse,
            _ => Line7Verdict::Ignored,
        },
        (Whose::AnalysisFailure, ShmAccess::ReadWrite) => Line7Verdict::InUse,
        (Whose::ThisDirectory, ShmAccess::ReadWrite) if nattch > 0 => Line7Verdict::InUse,
        (Whose::ThisDirectory, ShmAccess::ReadWrite) => Line7Verdict::Unattached,
        (Whose::Foreign, ShmAccess::ReadWrite) => Line7Verdict::Ignored,
        (Whose::Unknown, ShmAccess::ReadWrite) if nattch > 0 => {
            Line7Verdict::Unknown(Line7Doubt::Whose)
        }
        (Whose::Unknown, ShmAccess::ReadWrite) => Line7Verdict::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minors() {
        assert_eq!(minor_of("10.7"), Some(7));
        assert_eq!(minor_of("11.22"), Some(22));
        assert_eq!(minor_of("10.3beta1"), Some(3));
        assert_eq!(minor_of("15devel"), None);
        assert_eq!(minor_of("15"), None);
        assert_eq!(minor_of("15."), None);
    }

    #[test]
    fn algorithms_per_version() {
        use Algorithm::{New, Old};
        let table: &[(u32, Option<u32>, Option<Algorithm>)] = &[
            (9, Some(6), None),
            (10, None, None),
            (10, Some(0), Some(Old)),
            (10, Some(7), Some(Old)),
            (10, Some(8), Some(New)),
            (10, Some(23), Some(New)),
            (11, None, None),
            (11, Some(0), Some(Old)),
            (11, Some(2), Some(Old)),
            (11, Some(3), Some(New)),
            (11, Some(22), Some(New)),
            (12, None, Some(New)),
            (12, Some(0), Some(New)),
            (13, None, Some(New)),
            (18, Some(4), Some(New)),
        ];
        for &(major, minor, want) in table {
            assert_eq!(algorithm(major, minor), want, "{major}.{minor:?}");
        }
        assert_eq!(algorithm_of_server(10, Some("10.7")), Some(Old));
        assert_eq!(algorithm_of_server(11, Some("11.3")), Some(New));
        // A binary of another major says nothing of this one's minor.
        assert_eq!(algorithm_of_server(11, Some("15.2")), None);
        assert_eq!(algorithm_of_server(15, None), Some(New));
    }

    fn taken(whose: Whose, nattch: u64, removable: bool) -> SegmentAtKey {
        SegmentAtKey::Taken {
            whose,
            nattch,
            removable,
            header: HeaderSeen::Postgres {
                creator_alive: Some(false),
            },
        }
    }

    #[test]
    fn new_algorithm_steps() {
        use ProbeStep::*;
        use Whose::*;
        let a = Algorithm::New;
        assert_eq!(probe_step(a, &SegmentAtKey::Free), Create);
        let table: &[(Whose, u64, bool, ProbeStep)] = &[
            (ThisDirectory, 1, true, Blocked),
            (ThisDirectory, 3, false, Blocked),
            (ThisDirectory, 0, true, Recycle),
            (ThisDirectory, 0, false, NextKey),
            (Foreign, 0, true, NextKey),
            (Foreign, 5, true, NextKey),
            (Vanished, 0, true, Retry),
            (AnalysisFailure, 0, true, Blocked),
            (Whose::Unknown, 2, true, ProbeStep::Unknown),
            (Whose::Unknown, 0, true, RecycleOrNextKey),
        ];
        for &(whose, nattch, removable, want) in table {
            // The new algorithm asks nothing of the header the old one reads.
            for header in [
                HeaderSeen::Unreadable,
                HeaderSeen::NotPostgres,
                HeaderSeen::Postgres {
                    creator_alive: Some(true),
                },
                HeaderSeen::Postgres {
                    creator_alive: Some(false),
                },
                HeaderSeen::Postgres {
                    creator_alive: None,
                },
                HeaderSeen::Unknown,
            ] {
                let at = SegmentAtKey::Taken {
                    whose,
                    nattch,
                    removable,
                    header,
                };
                assert_eq!(
                    probe_step(a, &at),
                    want,
                    "{whose:?} nattch={nattch} removable={removable} {header:?}"
                );
            }
        }
        assert_eq!(probe_step(a, &taken(ThisDirectory, 0, true)), Recycle);
    }

    #[test]
    fn old_algorithm_steps() {
        use HeaderSeen::{NotPostgres, Postgres, Unreadable};
        use ProbeStep::*;
        use Whose::*;
        let a = Algorithm::Old;
        assert_eq!(probe_step(a, &SegmentAtKey::Free), Create);
        let alive = Postgres {
            creator_alive: Some(true),
        };
        let dead = Postgres {
            creator_alive: Some(false),
        };
        let liveness_unknown = Postgres {
            creator_alive: None,
        };
        // (header, removable, step): the same for any whose (but
        // vanished) and any attach count: the old loop asks neither.
        let table: &[(HeaderSeen, bool, ProbeStep)] = &[
            // No PostgreSQL header: "a non-Postgres app", the next key,
            // even with its creator dead and the segment removable.
            (NotPostgres, true, NextKey),
            (NotPostgres, false, NextKey),
            // A PostgreSQL header whose creator lives: the next key.
            (alive, true, NextKey),
            (alive, false, NextKey),
            // Creator dead: removed (attached or not, whoever's).
            (dead, true, Recycle),
            // Creator dead, IPC_RMID refused: the next key.
            (dead, false, NextKey),
            // Cannot be attached or is smaller than a header: the next key.
            (Unreadable, true, NextKey),
            (Unreadable, false, NextKey),
            // The header cannot be read here: recycled or passed over,
            // the server starts either way; not removable, the next key
            // either way.
            (HeaderSeen::Unknown, true, RecycleOrNextKey),
            (HeaderSeen::Unknown, false, NextKey),
            (liveness_unknown, true, RecycleOrNextKey),
            (liveness_unknown, false, NextKey),
        ];
        for &(header, removable, want) in table {
            for whose in [ThisDirectory, Foreign, Whose::Unknown, AnalysisFailure] {
                for nattch in [0, 4] {
                    let at = SegmentAtKey::Taken {
                        whose,
                        nattch,
                        removable,
                        header,
                    };
                    assert_eq!(probe_step(a, &at), want, "{at:?}");
                }
            }
        }
        // A segment gone before its shmget by key: the next key.
        for header in [dead, HeaderSeen::Unknown] {
            let at = SegmentAtKey::Taken {
                whose: Vanished,
                nattch: 0,
                removable: true,
                header,
            };
            assert_eq!(probe_step(a, &at), NextKey, "{at:?}");
        }
    }

    #[test]
    fn line7_verdicts() {
        use Line7Verdict as V;
        use ShmAccess::ReadWrite;
        use Whose::*;
        // The server may attach it: both algorithms answer alike, and so
        // does an unknown one.
        let table: &[(Whose, u64, Line7Verdict)] = &[
            (ThisDirectory, 1, V::InUse),
            (ThisDirectory, 0, V::Unattached),
            (AnalysisFailure, 0, V::InUse),
            (AnalysisFailure, 2, V::InUse),
            (Foreign, 3, V::Ignored),
            (Foreign, 0, V::Ignored),
            (Vanished, 0, V::Ignored),
            (Unknown, 2, V::Unknown(Line7Doubt::Whose)),
            (Unknown, 0, V::Ignored),
        ];
        for &(whose, nattch, want) in table {
            for algo in [Some(Algorithm::New), Some(Algorithm::Old), None] {
                assert_eq!(
                    line7_verdict(algo, whose, nattch, ReadWrite),
                    want,
                    "{algo:?} {whose:?} {nattch}"
                );
            }
        }
    }

    #[test]
    fn line7_on_a_segment_the_server_may_not_attach() {
        use Line7Verdict as V;
        use Whose::*;
        let (old, new) = (Some(Algorithm::Old), Some(Algorithm::New));
        for whose in [ThisDirectory, Foreign, Unknown, AnalysisFailure] {
            // Not even readable: IPC_STAT's EACCES is "not in use" in both.
            for algo in [old, new, None] {
                for nattch in [0, 3] {
                    assert_eq!(
                        line7_verdict(algo, whose, nattch, ShmAccess::None),
                        V::Ignored,
                        "{algo:?} {whose:?} {nattch}"
                    );
                }
            }
            // Readable, not writable: shmat fails with EACCES. Foreign to
            // the new algorithm; in use to the old once anybody is
            // attached (its attach count comes before the attach).
            let ro = ShmAccess::ReadOnly;
            assert_eq!(line7_verdict(new, whose, 3, ro), V::Ignored, "{whose:?}");
            assert_eq!(line7_verdict(old, whose, 3, ro), V::InUse, "{whose:?}");
            assert_eq!(
                line7_verdict(None, whose, 3, ro),
                V::Unknown(Line7Doubt::Algorithm),
                "{whose:?}"
            );
            for algo in [old, new, None] {
                assert_eq!(line7_verdict(algo, whose, 0, ro), V::Ignored, "{whose:?}");
            }
        }
        // Gone: whatever its access was.
        for algo in [old, new, None] {
            assert_eq!(
                line7_verdict(algo, Vanished, 0, ShmAccess::ReadOnly),
                V::Ignored
            );
        }
    }

    #[test]
    fn access_as_ipcperms_grants_it() {
        use ShmAccess::*;
        let me = (1000, 1000);
        let other = (2000, 2000);
        let group = (2000, 1000);
        type Ids = (u32, u32);
        let table: &[(u32, Ids, Ids, ShmAccess)] = &[
            (0o600, me, me, ReadWrite),
            (0o400, me, me, ReadOnly),
            (0o200, me, me, None),
            // The creator's bits count like the owner's.
            (0o600, other, me, ReadWrite),
            (0o600, other, other, None),
            (0o640, other, other, None),
            (0o644, other, other, ReadOnly),
            (0o666, other, other, ReadWrite),
            (0o444, other, other, ReadOnly),
            // The group's bits, by the segment's group or creator's group.
            (0o640, group, other, ReadOnly),
            (0o660, other, group, ReadWrite),
            (0o606, group, group, None),
            // The owner's bits only, even where others may more.
            (0o066, me, me, None),
        ];
        for &(mode, owner, creator, want) in table {
            assert_eq!(
                ShmAccess::granted(mode, owner, creator, me),
                want,
                "{mode:o} {owner:?} {creator:?}"
            );
        }
        assert!(ReadWrite.can_attach());
        assert!(!ReadOnly.can_attach() && !None.can_attach());
    }
}
