//! What a PostgreSQL process is, from its command line.
//!
//! Every child of a postmaster rewrites its process title (`init_ps_display`)
//! to `postgres: [cluster_name: ]<what>`, e.g. `postgres: checkpointer`,
//! `postgres: 15/main: walwriter`, or, for a client backend,
//! `postgres: alice shop [local] idle`. The postmaster keeps its original
//! argv (`/usr/lib/postgresql/15/bin/postgres -D …`). `/proc/PID/cmdline`
//! shows the title with NUL separators or, once rewritten, as one string
//! padded with NULs or spaces.

/// The kinds of auxiliary processes, by the title they set (PostgreSQL
/// 10–18). Anything else after `postgres: ` is a client backend.
const AUXILIARY: &[&str] = &[
    "checkpointer",
    "background writer",
    "walwriter",
    "wal writer",
    "autovacuum launcher",
    "autovacuum worker",
    "logical replication launcher",
    "logical replication worker",
    "logical replication apply worker",
    "logical replication parallel apply worker",
    "logical replication tablesync worker",
    "stats collector",
    "archiver",
    "logger",
    "startup",
    "walreceiver",
    "walsender",
    "walsummarizer",
    "slotsync worker",
    "io worker",
    "parallel worker",
    "background worker",
    "dead-end",
];

/// What a PostgreSQL process is, by its command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PgRole {
    /// A `postgres`/`postmaster` executable that kept its argv: a
    /// postmaster, or a standalone backend (`postgres --single`).
    Postmaster,
    /// An auxiliary process, by the kind its title names (`checkpointer`,
    /// `walwriter`, …; PostgreSQL 10's `wal writer` is `walwriter`).
    Auxiliary(&'static str),
    /// Any other `postgres: ` title: a client backend.
    ClientBackend,
}

impl PgRole {
    /// The role in a word or two, as reports show it.
    pub fn name(self) -> &'static str {
        match self {
            PgRole::Postmaster => "postmaster",
            PgRole::Auxiliary(kind) => kind,
            PgRole::ClientBackend => "client backend",
        }
    }
}

impl std::fmt::Display for PgRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The role of a process from its `/proc/PID/cmdline` bytes:
/// [`PgRole::Postmaster`] for a `postgres`/`postmaster` executable that kept
/// its argv, the title's kind for an auxiliary process, a client backend
/// for any other `postgres: ` title, `None` for a process that is not
/// PostgreSQL's.
pub fn pg_role(cmdline: &[u8]) -> Option<PgRole> {
    let text: String = String::from_utf8_lossy(cmdline).replace('\0', " ");
    let text = text.trim();
    if let Some(title) = text
        .strip_prefix("postgres: ")
        .or_else(|| text.strip_prefix("postmaster: "))
    {
        // Skip an optional "cluster_name: " prefix: the kind follows the
        // last ": " that precedes one of the known words.
        for part in
            std::iter::once(title).chain(title.match_indices(": ").map(|(i, _)| &title[i + 2..]))
        {
            if let Some(kind) = AUXILIARY.iter().find(|k| part.starts_with(*k)) {
                return Some(PgRole::Auxiliary(match *kind {
                    "wal writer" => "walwriter",
                    other => other,
                }));
            }
        }
        return Some(PgRole::ClientBackend);
    }
    let argv0 = text.split(' ').next().unwrap_or("");
    if is_postgres_executable(argv0) {
        return Some(PgRole::Postmaster);
    }
    None
}

/// Whether `name_or_path` (an executable's path, an `argv[0]` or a bare
/// file name) names the PostgreSQL server: its last component is
/// `postgres`, or `postmaster`, the link to it that releases before 16
/// install (`install-postmaster-symlink` in `src/backend/Makefile`) and
/// under which the server still starts (`main` in `src/backend/main/main.c`
/// runs the postmaster for any `argv[0]` but the subprogram options).
pub fn is_postgres_executable(name_or_path: impl AsRef<std::ffi::OsStr>) -> bool {
    let bytes = name_or_path.as_ref().as_encoded_bytes();
    let base = bytes.rsplit(|&b| b == b'/').next().unwrap_or(bytes);
    base == b"postgres" || base == b"postmaster"
}

#[cfg(test)]
mod tests {
    use super::{is_postgres_executable, pg_role};

    #[test]
    fn postgres_executables_by_last_component() {
        for yes in [
            "postgres",
            "postmaster",
            "/usr/lib/postgresql/15/bin/postgres",
            "./postmaster",
        ] {
            assert!(is_postgres_executable(yes), "{yes}");
        }
        for no in [
            "",
            "pg_ctl",
            "/usr/bin/postgres-wrapper",
            "/usr/lib/postgresql/15/bin/postgres (deleted)",
            "postgres/",
            "postgres:",
        ] {
            assert!(!is_postgres_executable(no), "{no}");
        }
        assert!(is_postgres_executable(std::path::Path::new(
            "/opt/pg/bin/postgres"
        )));
    }

    fn role(s: &str) -> Option<&'static str> {
        pg_role(s.as_bytes()).map(super::PgRole::name)
    }

    #[test]
    fn postmaster_keeps_its_argv() {
        assert_eq!(
            role("/usr/lib/postgresql/15/bin/postgres\0-D\0/data\0"),
            Some("postmaster")
        );
        assert_eq!(role("postmaster -D /data"), Some("postmaster"));
    }

    #[test]
    fn auxiliary_processes_by_title() {
        assert_eq!(role("postgres: checkpointer "), Some("checkpointer"));
        assert_eq!(
            role("postgres: 15/main: walwriter   \0\0\0"),
            Some("walwriter")
        );
        assert_eq!(role("postgres: wal writer process   "), Some("walwriter"));
        assert_eq!(
            role("postgres: autovacuum launcher"),
            Some("autovacuum launcher")
        );
        assert_eq!(role("postgres: logger "), Some("logger"));
        assert_eq!(
            role("postgres: parallel worker for PID 4242"),
            Some("parallel worker")
        );
        assert_eq!(role("postgres: io worker 2"), Some("io worker"));
    }

    #[test]
    fn anything_else_titled_is_a_client_backend() {
        assert_eq!(
            role("postgres: alice shop [local] idle"),
            Some("client backend")
        );
        assert_eq!(
            role("postgres: main: bob db 10.0.0.1(5432) SELECT"),
            Some("client backend")
        );
    }

    #[test]
    fn other_programs_have_no_role() {
        assert_eq!(role("sleep\0\x36\x30\x30\0"), None); // sleep 600
        assert_eq!(role("/usr/bin/postgresql-check"), None);
        assert_eq!(role(""), None);
    }
}
