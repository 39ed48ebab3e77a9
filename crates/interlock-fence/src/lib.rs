//! interlock-fence: the same guarantee as the local interlock — never two
//! servers on one data directory — where a directory is reachable from
//! several hosts or containers, through a lease in etcd held while the
//! server runs.
//!
//! [`timing`] holds the protocol's time constants: the code that renews and
//! self-fences uses them, and so does the model that checks the protocol.

#![forbid(unsafe_code)]

pub mod timing;

#[cfg(feature = "etcd")]
pub mod etcd;
