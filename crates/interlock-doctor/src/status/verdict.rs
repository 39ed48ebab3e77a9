//! The verdict: the first startup step that stops the server, in the
//! server's order, with its exact FATAL message and the [`Stage`] it comes
//! from.

use super::*;

/// What the server would do, and the message it would stop with.
#[allow(clippy::too_many_arguments)]
pub(super) fn decide_verdict(
    cx: &mut Ctx<'_>,
    datadir_fatal: Option<String>,
    stage: &LockStage,
    line7_blocks: Option<String>,
    line7_unknown: Option<(Code, String)>,
    lock_create: startup::Step,
    (socket_block, sockets_first): (Option<(Stage, String)>, bool),
    control: &ControlStage,
    probe_end: &ProbeEnd,
) -> (Verdict, Option<(Stage, String)>) {
    let control_path = cx.shown.join("global/pg_control");
    let control_refuses = |cx: &mut Ctx<'_>, r: &ControlRefusal| {
        cx.find(
            Code::ControlFileInvalid,
            Severity::Problem,
            format!(
                "{}: {}; PostgreSQL reads it at startup and stops",
                control_path.display(),
                r.why
            ),
        );
        (
            Verdict::Blocked,
            r.message.clone().map(|m| (Stage::ControlFile, m)),
        )
    };
    let lock_path = cx.shown.join(interlock::LOCK_FILE_NAME);
    if let Some(msg) = datadir_fatal {
        (Verdict::Blocked, Some((Stage::DataDirectory, msg)))
    } else {
        match stage {
            LockStage::Unreadable(why) => {
                cx.find(
                    Code::PermissionDenied,
                    Severity::Problem,
                    format!("{} could not be read: {why}", lock_path.display()),
                );
                (Verdict::Unknown, None)
            }
            LockStage::Unusable(why) => {
                cx.find(
                    Code::LockFileCorrupt,
                    Severity::Problem,
                    format!("{} {why}", lock_path.display()),
                );
                (Verdict::Unknown, None)
            }
            LockStage::Empty => {
                cx.find(
                    Code::LockFileEmpty,
                    Severity::Problem,
                    format!(
                        "{} is empty: a server was starting, or crashed between creating the file and writing it; PostgreSQL never removes it by itself",
                        lock_path.display()
                    ),
                );
                (
                    Verdict::Blocked,
                    Some((
                        Stage::LockFile,
                        "lock file \"postmaster.pid\" is empty".into(),
                    )),
                )
            }
            LockStage::Bogus(buffer) => {
                cx.find(
                    Code::LockFileCorrupt,
                    Severity::Problem,
                    format!(
                        "{} does not start with a PID; PostgreSQL stops and never removes it by itself",
                        lock_path.display()
                    ),
                );
                (
                    Verdict::Blocked,
                    Some((
                        Stage::LockFile,
                        format!("bogus data in lock file \"postmaster.pid\": \"{buffer}\""),
                    )),
                )
            }
            LockStage::Live(Identity::Owner) => (
                Verdict::Running,
                Some((
                    Stage::LockFile,
                    "lock file \"postmaster.pid\" already exists".into(),
                )),
            ),
            // Running, or blocked by another process: cannot be told.
            LockStage::Live(Identity::Unknown) => (Verdict::Unknown, None),
            LockStage::Live(_) => (
                Verdict::Blocked,
                Some((
                    Stage::LockFile,
                    "lock file \"postmaster.pid\" already exists".into(),
                )),
            ),
            LockStage::Absent | LockStage::Dead => {
                if let Some(msg) = line7_blocks {
                    (Verdict::Blocked, Some((Stage::SharedMemory, msg)))
                } else if let Some((code, why)) = line7_unknown {
                    cx.find(code, Severity::Problem, why);
                    (Verdict::Unknown, None)
                } else if let startup::Step::Fails(msg, why) = lock_create {
                    cx.find(
                        Code::LockFileNotCreatable,
                        Severity::Problem,
                        format!("{why}; the server would stop there"),
                    );
                    (Verdict::Blocked, Some((Stage::LockFileCreate, msg)))
                } else if let startup::Step::Unknown(why) = lock_create {
                    cx.find(Code::LockFileNotCreatable, Severity::Problem, why);
                    (Verdict::Unknown, None)
                } else if let ControlStage::Refused {
                    refusal,
                    first: true,
                } = control
                {
                    control_refuses(cx, refusal)
                } else if let ControlStage::Unreadable { why, first: true } = control {
                    cx.find(
                        Code::PermissionDenied,
                        Severity::Problem,
                        format!("{why}: the server reads it at startup, and whether it accepts it cannot be told"),
                    );
                    (Verdict::Unknown, None)
                } else if let Some(block) = socket_block
                    .filter(|_| sockets_first || matches!(probe_end, ProbeEnd::Creates { .. }))
                {
                    (Verdict::Blocked, Some(block))
                } else {
                    match probe_end {
                        ProbeEnd::Creates { .. } => match control {
                            // 10: read once the segment is created.
                            ControlStage::Refused { refusal, .. } => control_refuses(cx, refusal),
                            ControlStage::Unreadable { why, .. } => {
                                cx.find(
                                    Code::PermissionDenied,
                                    Severity::Problem,
                                    format!("{why}: the server reads it at startup, and whether it accepts it cannot be told"),
                                );
                                (Verdict::Unknown, None)
                            }
                            ControlStage::Accepted => (Verdict::WillStart, None),
                        },
                        ProbeEnd::Blocked { key, shmid } => (
                            Verdict::Blocked,
                            Some((
                                Stage::SharedMemory,
                                format!(
                                    "pre-existing shared memory block (key {}, ID {shmid}) is still in use",
                                    key_u64(*key)
                                ),
                            )),
                        ),
                        ProbeEnd::Unknown(why) => {
                            if !cx.findings.iter().any(|f| f.code == Code::VersionUnknown) {
                                cx.find(
                                    Code::PermissionDenied,
                                    Severity::Problem,
                                    format!("the key probe cannot be predicted: {why}"),
                                );
                            }
                            (Verdict::Unknown, None)
                        }
                    }
                }
            }
        }
    }
}
