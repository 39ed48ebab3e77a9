//! Stage 1 of the server's startup: the data directory (`checkDataDir`,
//! src/backend/utils/init/miscinit.c: exists, is a directory, owned by the
//! server's user, its mode per version), `PG_VERSION`, and `global/pg_control`
//! as `ReadControlFile` reads it.

use super::*;

/// The directory to diagnose, and its metadata; errors as [`status()`] does.
pub(super) fn open<'a>(
    data_dir: &Path,
    opts: &'a StatusOptions,
    host: &'a mut Host,
) -> Result<(Ctx<'a>, fs::Metadata), Error> {
    let shown = std::path::absolute(data_dir)
        .map_err(|e| Error::sys(format!("absolute(\"{}\")", data_dir.display()), e))?;
    let meta = match fs::metadata(&shown) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::data_dir_missing(&shown))
        }
        Err(e) => return Err(Error::sys(format!("stat(\"{}\")", shown.display()), e)),
    };
    if !meta.is_dir() {
        return Err(Error::not_a_directory(&shown));
    }
    let real = fs::canonicalize(&shown).unwrap_or_else(|_| shown.clone());
    let cx = Ctx {
        opts,
        dir_id: (meta.dev(), meta.ino()),
        owner: server_user(&shown, &meta),
        dir_owner: meta.uid(),
        shown,
        real,
        host,
        findings: Vec::new(),
        belongs: BTreeMap::new(),
        dsm_control: BTreeMap::new(),
        headers: BTreeMap::new(),
        attached: Vec::new(),
        workers: Vec::new(),
    };
    Ok((cx, meta))
}

/// The user (and group) the directory's server runs as. initdb creates
/// `global/pg_control` and `PG_VERSION` as the server's user, and nothing but
/// a `chown` changes that; so when the directory itself is owned by someone
/// else (a `chown root` of the top directory, a copy made by another user)
/// their owner, not the directory's, is the server's user, and the directory
/// has the wrong ownership (`checkDataDir` in
/// `src/backend/utils/init/miscinit.c`, `src/backend/postmaster/postmaster.c`
/// in 10). Read without following links; the directory's owner when neither
/// can be read.
pub(super) fn server_user(dir: &Path, meta: &fs::Metadata) -> (u32, u32) {
    for inside in ["global/pg_control", "PG_VERSION"] {
        if let Ok(m) = fs::symlink_metadata(dir.join(inside)) {
            if m.is_file() {
                return (m.uid(), m.gid());
            }
        }
    }
    (meta.uid(), meta.gid())
}

/// The server's data directory checks (`checkDataDir`): its FATAL, if any.
pub(super) fn data_dir_checks(
    cx: &mut Ctx<'_>,
    version: &VersionInfo,
    meta: &fs::Metadata,
) -> Option<String> {
    let major = version.major();
    let mut datadir_fatal: Option<String> = None;
    let shown_s = cx.shown.display().to_string();
    let mode = meta.mode() & 0o7777;
    let (server_uid, server_gid) = cx.owner;
    if let Err(problem) = pg::check_data_dir_owner(meta.uid(), server_uid) {
        // PostmasterMain reads the configuration (SelectConfigFiles in
        // src/backend/utils/misc/guc.c) before checkDataDir: a server that
        // may not search the directory stops there, on a line of its own.
        let search = if meta.gid() == server_gid {
            0o010
        } else {
            0o001
        };
        let conf = cx.shown.join("postgresql.conf");
        datadir_fatal = Some(if mode & search == 0 && conf.exists() {
            format!(
                "could not access the server configuration file \"{}\": Permission denied",
                conf.display()
            )
        } else {
            problem.fatal(&cx.shown)
        });
        cx.find(
            Code::DataDirInvalid,
            Severity::Problem,
            format!(
                "the directory is owned by {}, but its server runs as {} (the owner of global/pg_control, which initdb created): PostgreSQL stops unless the server's user owns the directory",
                cx.host.user_name(meta.uid()),
                cx.host.user_name(server_uid)
            ),
        );
    }
    // checkDataDir: 0700 only in 10, 0700 or 0750 from 11 on (group access).
    match pg::check_data_dir_mode(major, mode) {
        Err(problem) if datadir_fatal.is_none() => {
            datadir_fatal = Some(problem.fatal(&cx.shown));
            cx.find(
                Code::DataDirInvalid,
                Severity::Problem,
                format!(
                    "the directory's mode is {mode:04o}; PostgreSQL {} requires {}",
                    major.map(|m| m.to_string()).unwrap_or_default(),
                    problem.accepted_modes().unwrap_or_default()
                ),
            );
        }
        _ => {}
    }
    if datadir_fatal.is_none() && version.data_dir_major.is_none() {
        let pgv = cx.shown.join("PG_VERSION");
        match fs::metadata(&pgv) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                datadir_fatal = Some(format!("\"{shown_s}\" is not a valid data directory"));
                cx.find(
                    Code::DataDirInvalid,
                    Severity::Problem,
                    format!(
                        "{} is missing: this is not a PostgreSQL data directory",
                        pgv.display()
                    ),
                );
            }
            _ => match interlock::safe_fs::pg_version(&cx.shown) {
                Err(e) if e.is_hostile() => cx.find(
                    Code::UnsafeFile,
                    Severity::Problem,
                    format!("{e}: the server's version is not known"),
                ),
                _ => cx.find(
                    Code::PermissionDenied,
                    Severity::Problem,
                    format!("{} could not be read", pgv.display()),
                ),
            },
        }
    }
    if let (Some(m), Some(server)) = (major, version.server.as_deref()) {
        let server_major = pg::major_of(server);
        if datadir_fatal.is_none() && server_major.is_some_and(|s| s != m) {
            datadir_fatal = Some("database files are incompatible with server".into());
            cx.find(
                Code::DataDirInvalid,
                Severity::Problem,
                format!(
                    "the directory was initialised by PostgreSQL {m}, and the server binary {} is {server}",
                    version.server_binary.as_deref().unwrap_or("?")
                ),
            );
        }
    }
    if datadir_fatal.is_none()
        && major.is_some_and(|m| m >= 11)
        && !cx.shown.join("global/pg_control").exists()
    {
        datadir_fatal = Some("could not find the database system".into());
        cx.find(
            Code::DataDirInvalid,
            Severity::Problem,
            format!(
                "{} is missing",
                cx.shown.join("global/pg_control").display()
            ),
        );
    }
    datadir_fatal
}

/// What the server makes of `global/pg_control` when it reads it
/// (`ReadControlFile`: in 11+ by the postmaster right after the lock file,
/// `LocalProcessControlFile`; in 10 while creating shared memory,
/// `XLOGShmemInit`, so after the key probe).
#[derive(Debug)]
pub(super) enum ControlStage {
    /// Accepted, or missing (`checkDataDir`'s stage reports that), or a
    /// version this model does not know.
    Accepted,
    Refused {
        refusal: ControlRefusal,
        first: bool,
    },
    Unreadable {
        why: String,
        first: bool,
    },
}

pub(super) fn control_stage(cx: &Ctx<'_>, version: &VersionInfo) -> ControlStage {
    let Some(major) = version.major() else {
        return ControlStage::Accepted;
    };
    let first = major >= 11;
    match super::control::read_control_file(&cx.real) {
        Err(e) if e.is_not_found() => ControlStage::Accepted,
        Err(e) => ControlStage::Unreadable {
            why: e.to_string(),
            first,
        },
        Ok(bytes) => match startup_refusal(&bytes, major) {
            None => ControlStage::Accepted,
            Some(refusal) => ControlStage::Refused { refusal, first },
        },
    }
}

/// `global/pg_control` in one line; `running`: the live owner's PID.
pub(super) fn control_line(data_dir: &Path, running: Option<i32>) -> ControlLine {
    match super::control::control(data_dir) {
        Ok(c) => ControlLine {
            line: c.one_line(running),
            state: Some(c.state),
            crc_ok: Some(c.crc_ok),
            crash_recovery_on_start: if running.is_some() {
                None
            } else {
                c.crash_recovery_on_start
            },
        },
        Err(e) => ControlLine {
            line: e.to_string(),
            state: None,
            crc_ok: None,
            crash_recovery_on_start: None,
        },
    }
}
