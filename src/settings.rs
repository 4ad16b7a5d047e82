//! The `agent_loop.*` settings. Each is documented in the README; `SHOW agent_loop.<name>`
//! prints its value and `SELECT * FROM pg_settings WHERE name LIKE 'agent_loop.%'` lists them.

use std::ffi::CString;

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};

/// How a step that does not end its task commits.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum StepCommit {
    /// Waits for the WAL flush, like any commit.
    #[name = c"sync"]
    Sync,
    /// `synchronous_commit = off`: a crash may lose the latest steps, which are then redone;
    /// a step's effects and its record are lost together. Claims and terminal transitions
    /// stay synchronous.
    #[name = c"async"]
    Async,
}

pub static POLL_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static LEASE_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(60);
pub static MAX_IN_FLIGHT: GucSetting<i32> = GucSetting::<i32>::new(64);
pub static CLAIM_BATCH: GucSetting<i32> = GucSetting::<i32>::new(16);
pub static WORKERS_PER_DATABASE: GucSetting<i32> = GucSetting::<i32>::new(1);
pub static TOOL_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
pub static WORKER_LOCK_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(1_000);
pub static MAX_PRIORITY: GucSetting<i32> = GucSetting::<i32>::new(100);
pub static MAX_SUBTASKS: GucSetting<i32> = GucSetting::<i32>::new(32);
pub static MAX_IN_FLIGHT_PER_OWNER: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static EXECUTORS_PER_WORKER: GucSetting<i32> = GucSetting::<i32>::new(2);
pub static EXECUTOR_MEMORY_MB: GucSetting<i32> = GucSetting::<i32>::new(1024);
pub static SQL_QUERY_ROW_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(100);
pub static MAX_TOOL_OUTPUT_BYTES: GucSetting<i32> = GucSetting::<i32>::new(16_384);
pub static MODEL_MAX_RETRIES: GucSetting<i32> = GucSetting::<i32>::new(4);
pub static MODEL_RETRY_BASE_MS: GucSetting<i32> = GucSetting::<i32>::new(500);
pub static MODEL_RETRY_MAX_MS: GucSetting<i32> = GucSetting::<i32>::new(30_000);
pub static MAX_RESPONSE_BYTES: GucSetting<i32> = GucSetting::<i32>::new(8 * 1024 * 1024);
pub static MEMORY_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(3);
pub static MEMORY_WINDOW: GucSetting<i32> = GucSetting::<i32>::new(200);
pub static SYSTEM_PROMPT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(
    c"You are an agent working inside a PostgreSQL database. Use the tools you are given to \
      reach the goal, then answer concisely. Tool errors are shown to you; correct course.",
));
pub static DEFAULT_MODEL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static API_KEYS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static STEP_COMMIT: GucSetting<StepCommit> = GucSetting::<StepCommit>::new(StepCommit::Sync);
pub static RETENTION_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static FAULT_INJECTION: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub fn define() {
    use GucContext::{Sighup, Suset, Userset};
    let int = |name: &'static std::ffi::CStr,
               short: &'static std::ffi::CStr,
               setting: &'static GucSetting<i32>,
               min: i32,
               max: i32,
               context: GucContext,
               unit: GucFlags| {
        GucRegistry::define_int_guc(name, short, c"", setting, min, max, context, unit);
    };
    int(
        c"agent_loop.poll_interval",
        c"Longest a worker sleeps when no wake-up arrives.",
        &POLL_INTERVAL_MS,
        10,
        3_600_000,
        Sighup,
        GucFlags::UNIT_MS,
    );
    int(
        c"agent_loop.lease_duration",
        c"How long a claimed task stays leased without renewal.",
        &LEASE_SECONDS,
        5,
        86_400,
        Sighup,
        GucFlags::UNIT_S,
    );
    int(
        c"agent_loop.max_in_flight",
        c"Tasks one worker drives at once (model calls in flight).",
        &MAX_IN_FLIGHT,
        1,
        10_000,
        Sighup,
        GucFlags::default(),
    );
    int(
        c"agent_loop.workers_per_database",
        c"Workers serving each database with the extension.",
        &WORKERS_PER_DATABASE,
        1,
        8,
        Sighup,
        GucFlags::default(),
    );
    int(
        c"agent_loop.claim_batch",
        c"Tasks claimed per claiming transaction.",
        &CLAIM_BATCH,
        1,
        1000,
        Sighup,
        GucFlags::default(),
    );
    int(
        c"agent_loop.tool_timeout",
        c"Statement timeout of one tool call.",
        &TOOL_TIMEOUT_MS,
        1,
        3_600_000,
        Sighup,
        GucFlags::UNIT_MS,
    );
    int(
        c"agent_loop.lock_timeout",
        c"How long a worker's own statement waits for a lock; then that step or claim fails.",
        &WORKER_LOCK_TIMEOUT_MS,
        1,
        600_000,
        Sighup,
        GucFlags::UNIT_MS,
    );
    int(
        c"agent_loop.max_priority",
        c"Highest task priority a role outside agent_loop_admin may ask for.",
        &MAX_PRIORITY,
        0,
        i32::MAX,
        Sighup,
        GucFlags::default(),
    );
    int(
        c"agent_loop.max_subtasks",
        c"Subtasks one task may start in all, unless its owner is in agent_loop_admin.",
        &MAX_SUBTASKS,
        0,
        10_000,
        Sighup,
        GucFlags::default(),
    );
    int(
        c"agent_loop.max_in_flight_per_owner",
        c"Tasks one worker drives at once for one owner; 0 is no cap beyond max_in_flight.",
        &MAX_IN_FLIGHT_PER_OWNER,
        0,
        10_000,
        Sighup,
        GucFlags::default(),
    );
    int(
        c"agent_loop.executors_per_worker",
        c"Executor backends each worker runs tenants' code in; 0 runs it in the worker itself.",
        &EXECUTORS_PER_WORKER,
        0,
        16,
        Sighup,
        GucFlags::default(),
    );
    int(
        c"agent_loop.executor_memory",
        c"Memory an executor may allocate beyond what it maps at start; 0 is unlimited.",
        &EXECUTOR_MEMORY_MB,
        0,
        1_048_576,
        Sighup,
        GucFlags::UNIT_MB,
    );
    int(
        c"agent_loop.sql_query_row_limit",
        c"Rows the built-in sql_query tool returns at most.",
        &SQL_QUERY_ROW_LIMIT,
        1,
        100_000,
        Sighup,
        GucFlags::default(),
    );
    int(
        c"agent_loop.max_tool_output",
        c"Bytes of a tool result kept for the model; the rest is cut.",
        &MAX_TOOL_OUTPUT_BYTES,
        256,
        64 * 1024 * 1024,
        Sighup,
        GucFlags::UNIT_BYTE,
    );
    int(
        c"agent_loop.model_max_retries",
        c"Retries of a failed model request (transient errors only).",
        &MODEL_MAX_RETRIES,
        0,
        100,
        Sighup,
        GucFlags::default(),
    );
    int(
        c"agent_loop.model_retry_base_delay",
        c"First backoff delay between model retries.",
        &MODEL_RETRY_BASE_MS,
        1,
        600_000,
        Sighup,
        GucFlags::UNIT_MS,
    );
    int(
        c"agent_loop.model_retry_max_delay",
        c"Longest backoff delay, Retry-After included.",
        &MODEL_RETRY_MAX_MS,
        1,
        3_600_000,
        Sighup,
        GucFlags::UNIT_MS,
    );
    int(
        c"agent_loop.max_response_size",
        c"Largest model response body accepted.",
        &MAX_RESPONSE_BYTES,
        1024,
        i32::MAX,
        Sighup,
        GucFlags::UNIT_BYTE,
    );
    int(
        c"agent_loop.memory_limit",
        c"Earlier lessons recalled into a new task's prompt.",
        &MEMORY_LIMIT,
        0,
        100,
        Sighup,
        GucFlags::default(),
    );
    int(
        c"agent_loop.memory_window",
        c"How many lessons, of an owner's latest tasks, recall ranks for a new task.",
        &MEMORY_WINDOW,
        1,
        1_000_000,
        Sighup,
        GucFlags::default(),
    );
    int(
        c"agent_loop.retention",
        c"Ended tasks older than this are deleted with their steps by the worker; 0 keeps them.",
        &RETENTION_SECONDS,
        0,
        i32::MAX,
        Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_enum_guc(
        c"agent_loop.step_commit",
        c"sync, or async: steps that do not end their task commit without waiting for WAL flush.",
        c"Terminal transitions and claims are always synchronous.",
        &STEP_COMMIT,
        Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"agent_loop.fault_injection",
        c"For durability tests only: point:action:task_id entries where the worker crashes, errs or panics.",
        c"Points: recalling, preparing, claimed, decided, acted, stepped, finishing, finished. Actions: crash, error, panic.",
        &FAULT_INJECTION,
        Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"agent_loop.system_prompt",
        c"Instructions sent to the model first.",
        c"",
        &SYSTEM_PROMPT,
        Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"agent_loop.default_model",
        c"Model submit() uses when none is named.",
        c"",
        &DEFAULT_MODEL,
        Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"agent_loop.api_keys",
        c"API keys by model name: 'model=key,other=key'. Superuser-only and never shown.",
        c"Used when a model has no api_key_env. Set in postgresql.conf or with ALTER SYSTEM.",
        &API_KEYS,
        Suset,
        GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL,
    );
}

/// Reads a string setting; empty counts as unset.
pub fn string(setting: &GucSetting<Option<CString>>) -> Option<String> {
    setting
        .get()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
}

/// The key configured for `model` in `agent_loop.api_keys`.
pub fn api_key_from_setting(model: &str) -> Option<String> {
    string(&API_KEYS)?.split(',').find_map(|entry| {
        let (name, key) = entry.split_once('=')?;
        (name.trim() == model).then(|| key.trim().to_owned())
    })
}

/// Workers each database should have (`agent_loop.workers_per_database`).
pub fn workers_per_database() -> usize {
    WORKERS_PER_DATABASE.get().max(1) as usize
}
