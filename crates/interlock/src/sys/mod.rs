//! The only module with `unsafe` code: system calls that rustix does not
//! wrap (System V shared memory, `fork`, `signalfd`, credentials).
//! Each submodule opens with a `# Safety` paragraph, and every `unsafe`
//! block names its precondition.

pub mod proc;
pub mod shm;
pub mod signal;
