//! The tooling's error type: what stops a diagnosis before it has anything
//! to report (no such directory, an input that cannot be read). What a
//! diagnosis finds is never an error; it is in the report.

use std::io;
use std::path::{Path, PathBuf};

use interlock::pg::DataDirProblem;

/// Why there is no report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The data directory does not exist. Shown as the server's FATAL
    /// (`checkDataDir`, `interlock::pg::DataDirProblem::Missing`).
    #[error("PostgreSQL would say: FATAL:  {postgres_would_say}")]
    DataDirMissing {
        /// The path, absolute as the server shows its `DataDir`.
        path: PathBuf,
        /// The server's FATAL message for it.
        postgres_would_say: String,
    },

    /// The path exists but is not a data directory (not a directory, no
    /// `PG_VERSION`). Shown as the server's FATAL where `interlock::pg`
    /// has the rule (not a directory: `checkDataDir`,
    /// `interlock::pg::DataDirProblem::NotADirectory`).
    #[error("{}", match postgres_would_say {
        Some(fatal) => format!("PostgreSQL would say: FATAL:  {fatal}"),
        None => format!("data directory \"{}\" {reason}", path.display()),
    })]
    DataDirUnusable {
        /// The path: absolute as the server shows its `DataDir` when
        /// `postgres_would_say` is given, else as given.
        path: PathBuf,
        /// What is wrong, e.g. "is not a directory".
        reason: String,
        /// What to do about it.
        hint: String,
        /// The server's FATAL message for it, where `interlock::pg` has
        /// the rule.
        postgres_would_say: Option<String>,
    },

    /// `global/pg_control` cannot be read as a control file of 10–18.
    #[error("control file \"{}\" {reason}", path.display())]
    ControlFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
        /// What to do.
        hint: String,
    },

    /// An input (a log file, a /proc or /sys file) cannot be read.
    #[error("{what}: {reason}")]
    Input {
        /// The file, or "standard input".
        what: String,
        /// What is wrong.
        reason: String,
    },

    /// A system call failed.
    #[error("{op} failed: {source}")]
    Sys {
        /// The call with its arguments.
        op: String,
        /// The error.
        source: io::Error,
    },
}

impl Error {
    /// `checkDataDir`'s first refusal: `path` does not exist. `path` is
    /// made absolute, as the server shows its `DataDir`.
    pub(crate) fn data_dir_missing(path: &Path) -> Self {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Error::DataDirMissing {
            postgres_would_say: DataDirProblem::Missing.fatal(&path),
            path,
        }
    }

    /// `checkDataDir`'s second refusal: `path` is not a directory. `path`
    /// is made absolute, as the server shows its `DataDir`.
    pub(crate) fn not_a_directory(path: &Path) -> Self {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Error::DataDirUnusable {
            postgres_would_say: Some(DataDirProblem::NotADirectory.fatal(&path)),
            path,
            reason: "is not a directory".into(),
            hint: "give the data directory, the one that holds PG_VERSION".into(),
        }
    }

    pub(crate) fn sys(op: impl Into<String>, source: io::Error) -> Self {
        Error::Sys {
            op: op.into(),
            source,
        }
    }

    /// What to do next, in one or two sentences.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::DataDirMissing { .. } => {
                "check the path; create the directory with initdb or mkdir -m 700".into()
            }
            Error::DataDirUnusable { hint, .. } | Error::ControlFile { hint, .. } => hint.clone(),
            Error::Input { .. } => return None,
            Error::Sys { source, .. } => match source.raw_os_error() {
                Some(code)
                    if code == rustix::io::Errno::ACCESS.raw_os_error()
                        || code == rustix::io::Errno::PERM.raw_os_error() =>
                {
                    "run as root or as the data directory's owner".into()
                }
                _ => return None,
            },
        })
    }
}
