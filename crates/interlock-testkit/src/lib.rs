//! What the real-process tests of `interlock` and `interlock-cli`, and the
//! `interlock-matrix`, share: processes and how to wait for them
//! ([`process`]), clean-up guards that kill only a test's own processes and
//! remove only the segments naming its directories ([`cleanup`]), Unix
//! users and data directories owned by them ([`users`]), DSM files
//! ([`dsm`]), PostgreSQL fixtures ([`postgres`]), etcd ([`etcd`]) and
//! "hosts" in namespaces of their own ([`nshost`]).
//!
//! Everything is re-exported at the root, so a test's `common` module can
//! be `pub use interlock_testkit::*;`.

pub mod cleanup;
pub mod dsm;
pub mod etcd;
pub mod nshost;
pub mod postgres;
pub mod process;
pub mod users;

pub use cleanup::*;
pub use dsm::*;
pub use postgres::*;
pub use process::*;
pub use users::*;
