//! The pure-Rust core of agent_loop.
//!
//! Nothing in this crate links PostgreSQL: the loop's state machine ([`agent`]), the step log
//! ([`items`]), prompt assembly ([`context`]), the model wire formats, retry policy and HTTP
//! helper threads ([`model`]), tool argument handling ([`tools`]), cost accounting
//! ([`accounting`]), task decomposition ([`subtasks`]), reflection text ([`reflection`]), the
//! ranking of recalled lessons ([`recall`]) and the fault-injection plan of the durability
//! tests ([`faults`]) all unit-test in milliseconds. The pgrx crate ties them to SPI.

pub mod accounting;
pub mod agent;
pub mod compaction;
pub mod context;
pub mod faults;
pub mod guards;
pub mod items;
pub mod lifecycle;
pub mod model;
pub mod recall;
pub mod reflection;
pub mod schema;
pub mod step;
pub mod subtasks;
pub mod sys;
pub mod task;
pub mod tools;
pub mod vocab;
