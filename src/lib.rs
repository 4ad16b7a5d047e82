//! agent_loop: PostgreSQL as the state store and the scheduler of LLM agents.
//!
//! This crate is the thin PostgreSQL layer around `agent_loop_core`:
//! - [`settings`]: the `agent_loop.*` GUCs;
//! - [`pg`]: the ground floor: SPI transactions, roles, shared memory, signals, the error
//!   type; the only module that writes `unsafe`;
//! - [`api`]: the SQL functions written in Rust (the rest of the API is plain SQL in `sql/`);
//! - [`worker`]: the launcher and the per-database worker that drives tasks;
//! - [`store`]: every statement the worker runs;
//! - [`tools`]: running a tool call as the task's owner.

use pgrx::prelude::*;

mod api;
mod pg;
mod settings;
mod store;
mod tools;
mod worker;

::pgrx::pg_module_magic!();

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!("../sql/tuning.sql", name = "tuning", requires = ["schema"]);
extension_sql_file!("../sql/api.sql", name = "api", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::define();
    // Shared memory and the launcher exist only when loaded at server start; loaded later
    // (CREATE EXTENSION without shared_preload_libraries), the SQL API works but no worker
    // runs, and submit() says so.
    if pg::backend::preloading() {
        pg::shmem::install_hooks();
        worker::register_launcher();
    }
}
