//! The launcher and the per-database workers.
//!
//! A static launcher (registered at server start) starts one worker per database; a worker
//! whose database lacks the extension exits at once and the launcher remembers that. `submit()`
//! starts a worker on demand, so a database created or given the extension later is served
//! from its first task on.

mod driver;
mod executor;
mod faults;
mod job;
mod launcher;
mod task;

pub use launcher::{register_launcher, start_worker};
