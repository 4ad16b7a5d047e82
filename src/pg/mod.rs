//! The ground floor: everything that touches PostgreSQL's C API or the operating system
//! directly. Each `unsafe` block of the crate is in here, with the reason it is sound; the
//! layers above (`api`, `store`, `tools`, `worker`) call these safe functions and never write
//! `unsafe` themselves (a shape test checks it).
//!
//! - [`error`]: the error type, which keeps the SQLSTATE from where an error is caught to
//!   where it is raised or recorded;
//! - [`txn`]: transactions, subtransactions, running as another role, settings;
//! - [`backend`]: this process (pid, latch, signals, statistics, memory limit, exit hooks);
//! - [`shmem`]: the shared registry of workers and executors, and the `wait()` channels;
//! - [`segment`]: dynamic shared memory segments that carry jobs and replies;
//! - [`catalog`]: the catalog scan of the launcher, which has no database to run SQL in.

pub mod backend;
pub mod catalog;
pub mod error;
pub mod segment;
pub mod shmem;
pub mod txn;

pub use error::{Error, OrRaise};
