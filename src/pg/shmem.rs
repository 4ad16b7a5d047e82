//! Shared memory: the registry of running workers (so a committing `submit()` can set its
//! worker's latch) and the condition variables `wait()` sleeps on until a task ends.

use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::backend;
pub use super::backend::set_latch_of;

pub const MAX_WORKERS: usize = 64;
/// `wait()` callers sleep on channel `task_id % WAIT_CHANNELS`, so a task's end wakes only
/// the waiters that may care.
const WAIT_CHANNELS: usize = 64;

/// One running worker. `database == 0` marks a free slot. Counters are for the `workers` view.
#[repr(C)]
pub struct WorkerSlot {
    pub database: AtomicU32,
    pub pid: AtomicI32,
    procno: AtomicI32,
    pub started_at_us: AtomicI64,
    pub in_flight: AtomicI32,
    pub helper_threads: AtomicI32,
    pub tasks_claimed: AtomicI64,
    pub steps_done: AtomicI64,
    pub last_wakeup_us: AtomicI64,
    /// Blocks `pg_prewarm` read at start; -1 when it did not run.
    pub prewarmed_blocks: AtomicI64,
}

/// Executor backends: a worker's pool of processes that run its steps (tenants' code), each
/// reached through one of these slots (see `worker::executor`).
pub const MAX_EXECUTORS: usize = 64;

/// One executor. `state` moves FREE -> STARTING (a worker claimed it) -> IDLE (the process is
/// up) -> REQUEST (a job is in `request`) -> RUNNING -> DONE (the reply is in `reply`) -> IDLE;
/// DEAD when the process exits, STOP when its worker asks it to exit.
#[repr(C)]
pub struct ExecutorSlot {
    pub state: AtomicU32,
    pub database: AtomicU32,
    /// The worker it serves, and that worker's PGPROC number (for its latch).
    pub worker_pid: AtomicI32,
    pub worker_procno: AtomicI32,
    pub pid: AtomicI32,
    pub procno: AtomicI32,
    /// The job: a dynamic shared memory segment, and its length in bytes.
    pub request_handle: AtomicU32,
    pub request_len: AtomicI64,
    pub reply_handle: AtomicU32,
    pub reply_len: AtomicI64,
    /// While a tool call (or an accept_if check) runs: when it began (µs) and its task.
    pub call_started_us: AtomicI64,
    pub call_task: AtomicI64,
}

pub mod executor_state {
    pub const FREE: u32 = 0;
    pub const STARTING: u32 = 1;
    pub const IDLE: u32 = 2;
    pub const REQUEST: u32 = 3;
    pub const RUNNING: u32 = 4;
    pub const DONE: u32 = 5;
    pub const DEAD: u32 = 6;
    pub const STOP: u32 = 7;
}

#[repr(C)]
struct Shared {
    slots: [WorkerSlot; MAX_WORKERS],
    /// Databases whose worker found no extension; the launcher skips them until a submit or a
    /// CREATE EXTENSION starts a worker there again.
    without_extension: [AtomicU32; MAX_WORKERS],
    /// Databases a worker was requested for, and when (µs): one request per database until
    /// that worker registers, however many sessions submit meanwhile.
    start_requested: [(AtomicU32, AtomicI64); MAX_WORKERS],
    task_ended: [pg_sys::ConditionVariable; WAIT_CHANNELS],
    executors: [ExecutorSlot; MAX_EXECUTORS],
}

static mut SHARED: *mut Shared = std::ptr::null_mut();
/// Guards slot assignment (held for a few instructions, never across an ERROR): the named
/// LWLock tranche "agent_loop".
static mut REGISTRY_LOCK: *mut pg_sys::LWLock = std::ptr::null_mut();
/// `AddinShmemInitLock` is `MainLWLockArray[21]` (storage/lwlocknames.h; a shape test reads
/// the header to check it).
const ADDIN_SHMEM_INIT_LOCK: usize = 21;
static mut PREV_SHMEM_REQUEST_HOOK: pg_sys::shmem_request_hook_type = None;
static mut PREV_SHMEM_STARTUP_HOOK: pg_sys::shmem_startup_hook_type = None;

pub fn install_hooks() {
    // SAFETY: in _PG_init of a preloaded library, in the postmaster, before any backend: the
    // hooks are chained as PostgreSQL documents.
    unsafe {
        PREV_SHMEM_REQUEST_HOOK = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(shmem_request);
        PREV_SHMEM_STARTUP_HOOK = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(shmem_startup);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn shmem_request() {
    if let Some(prev) = PREV_SHMEM_REQUEST_HOOK {
        prev();
    }
    pg_sys::RequestAddinShmemSpace(std::mem::size_of::<Shared>());
    pg_sys::RequestNamedLWLockTranche(c"agent_loop".as_ptr(), 1);
}

#[pg_guard]
unsafe extern "C-unwind" fn shmem_startup() {
    if let Some(prev) = PREV_SHMEM_STARTUP_HOOK {
        prev();
    }
    let init_lock = &raw mut (*pg_sys::MainLWLockArray.add(ADDIN_SHMEM_INIT_LOCK)).lock;
    pg_sys::LWLockAcquire(init_lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
    let mut found = false;
    let shared = pg_sys::ShmemInitStruct(
        c"agent_loop".as_ptr(),
        std::mem::size_of::<Shared>(),
        &mut found,
    ) as *mut Shared;
    if !found {
        std::ptr::write_bytes(shared, 0, 1);
        for cv in (*shared).task_ended.iter_mut() {
            pg_sys::ConditionVariableInit(cv);
        }
    }
    SHARED = shared;
    REGISTRY_LOCK = &raw mut (*pg_sys::GetNamedLWLockTranche(c"agent_loop".as_ptr())).lock;
    pg_sys::LWLockRelease(init_lock);
}

fn shared() -> Option<&'static Shared> {
    // SAFETY: set once by the startup hook in the postmaster, inherited by every backend.
    unsafe { SHARED.as_ref() }
}

/// Whether the library was preloaded (otherwise no worker can run).
pub fn available() -> bool {
    shared().is_some()
}

pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Runs `f` holding the registry lock. `f` must not raise an ERROR (an abort would release
/// the lock, but leave a half-changed slot).
fn with_registry<R>(_shared: &Shared, f: impl FnOnce() -> R) -> R {
    // SAFETY: the lock was set with the shared memory (`_shared` proves it exists) and lives
    // as long as the server; it is released before this returns.
    unsafe { pg_sys::LWLockAcquire(REGISTRY_LOCK, pg_sys::LWLockMode::LW_EXCLUSIVE) };
    let result = f();
    // SAFETY: acquired above.
    unsafe { pg_sys::LWLockRelease(REGISTRY_LOCK) };
    result
}

/// How many registered workers serve `database` (call under the registry lock).
fn serving(shared: &Shared, database: u32) -> usize {
    shared
        .slots
        .iter()
        .filter(|s| s.database.load(Ordering::Acquire) == database)
        .count()
}

/// Registers the calling worker for `database`. `None` when `wanted` live workers already
/// serve it (the caller then exits) or every slot is taken.
pub fn claim_slot(database: pg_sys::Oid, wanted: usize) -> Option<&'static WorkerSlot> {
    let shared = shared()?;
    let (pid, procno) = (backend::pid(), backend::procno());
    with_registry(shared, || {
        let db = database.to_u32();
        if serving(shared, db) >= wanted {
            return None;
        }
        let slot = shared
            .slots
            .iter()
            .find(|s| s.database.load(Ordering::Acquire) == 0)?;
        slot.pid.store(pid, Ordering::Relaxed);
        slot.procno.store(procno, Ordering::Relaxed);
        slot.started_at_us.store(now_us(), Ordering::Relaxed);
        for counter in [&slot.tasks_claimed, &slot.steps_done, &slot.last_wakeup_us] {
            counter.store(0, Ordering::Relaxed);
        }
        slot.in_flight.store(0, Ordering::Relaxed);
        slot.helper_threads.store(0, Ordering::Relaxed);
        slot.prewarmed_blocks.store(-1, Ordering::Relaxed);
        slot.database.store(db, Ordering::Release);
        Some(slot)
    })
}

pub fn release_slot(slot: &WorkerSlot) {
    if let Some(shared) = shared() {
        with_registry(shared, || {
            slot.pid.store(0, Ordering::Relaxed);
            slot.database.store(0, Ordering::Release);
        });
    }
}

/// Remembers (or forgets) that `database` has no agent_loop extension.
pub fn set_without_extension(database: pg_sys::Oid, absent: bool) {
    let Some(shared) = shared() else { return };
    let db = database.to_u32();
    with_registry(shared, || {
        let list = &shared.without_extension;
        if let Some(entry) = list.iter().find(|e| e.load(Ordering::Relaxed) == db) {
            if !absent {
                entry.store(0, Ordering::Relaxed);
            }
        } else if absent {
            if let Some(free) = list.iter().find(|e| e.load(Ordering::Relaxed) == 0) {
                free.store(db, Ordering::Relaxed);
            }
        }
    });
}

pub fn known_without_extension(database: pg_sys::Oid) -> bool {
    shared().is_some_and(|s| {
        s.without_extension
            .iter()
            .any(|e| e.load(Ordering::Relaxed) == database.to_u32())
    })
}

/// A start request older than this is assumed lost (the worker failed before registering).
const START_GRACE_US: i64 = 5_000_000;

/// Whether the caller should start a worker for `database`: fewer than `wanted` serve it and
/// no start was requested in the last few seconds. A true answer records the request.
pub fn claim_worker_start(database: pg_sys::Oid, wanted: usize) -> bool {
    let Some(shared) = shared() else { return false };
    let db = database.to_u32();
    let now = now_us();
    with_registry(shared, || {
        if serving(shared, db) >= wanted {
            return false;
        }
        let requests = &shared.start_requested;
        if let Some((_, at)) = requests
            .iter()
            .find(|(d, _)| d.load(Ordering::Relaxed) == db)
        {
            if now - at.load(Ordering::Relaxed) < START_GRACE_US {
                return false;
            }
            at.store(now, Ordering::Relaxed);
            return true;
        }
        let entry = requests
            .iter()
            .find(|(d, at)| {
                d.load(Ordering::Relaxed) == 0 || now - at.load(Ordering::Relaxed) >= START_GRACE_US
            })
            .unwrap_or(&requests[0]);
        entry.0.store(db, Ordering::Relaxed);
        entry.1.store(now, Ordering::Relaxed);
        true
    })
}

/// Forgets the start request for `database`: its worker registered, or found nothing to do.
pub fn clear_start_request(database: pg_sys::Oid) {
    if let Some(shared) = shared() {
        for (requested, _) in &shared.start_requested {
            let _ = requested.compare_exchange(
                database.to_u32(),
                0,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }
}

/// Whether `slot`'s worker is one too many for its database (after `workers_per_database`
/// went down): more than `wanted` serve it and this one started last.
pub fn is_surplus(slot: &WorkerSlot, wanted: usize) -> bool {
    let Some(shared) = shared() else { return false };
    let db = slot.database.load(Ordering::Acquire);
    with_registry(shared, || {
        let started = slot.started_at_us.load(Ordering::Relaxed);
        serving(shared, db) > wanted
            && shared.slots.iter().all(|s| {
                s.database.load(Ordering::Acquire) != db
                    || s.started_at_us.load(Ordering::Relaxed) <= started
            })
    })
}

/// Sets the latch of every worker serving `database`, if there is one. Safe in a commit callback:
/// no allocation, no error.
pub fn wake_worker(database: pg_sys::Oid) {
    let Some(shared) = shared() else { return };
    for slot in &shared.slots {
        if slot.database.load(Ordering::Acquire) == database.to_u32() {
            backend::set_latch_of(slot.procno.load(Ordering::Relaxed));
        }
    }
}

/// Process ids of every live worker of this server.
pub fn live_worker_pids() -> Vec<i32> {
    live_slots()
        .iter()
        .map(|s| s.pid.load(Ordering::Relaxed))
        .collect()
}

/// The worker slot at `address` (as [`backend::at_exit`] carries it).
pub fn worker_slot_at(address: usize) -> Option<&'static WorkerSlot> {
    shared()?
        .slots
        .iter()
        .find(|slot| std::ptr::from_ref(*slot) as usize == address)
}

/// Snapshot of the registry for the `workers` view.
pub fn live_slots() -> Vec<&'static WorkerSlot> {
    shared()
        .map(|s| {
            s.slots
                .iter()
                .filter(|slot| slot.database.load(Ordering::Acquire) != 0)
                .collect()
        })
        .unwrap_or_default()
}

fn task_channel(task_id: i64) -> Option<*mut pg_sys::ConditionVariable> {
    let shared = shared()?;
    let cv = &shared.task_ended[task_id.rem_euclid(WAIT_CHANNELS as i64) as usize];
    Some(cv as *const _ as *mut _)
}

/// Wakes every `wait()` that may be waiting for `task_id`. Call after the commit that ended it.
pub fn announce_task_ended(task_id: i64) {
    if let Some(cv) = task_channel(task_id) {
        // SAFETY: a condition variable in shared memory, initialised at startup.
        unsafe { pg_sys::ConditionVariableBroadcast(cv) };
    }
}

/// Prepares to sleep on `task_id`'s channel. Check the task's state after this and before
/// [`sleep_on_task`], so an end announced in between is not missed.
pub fn prepare_wait(task_id: i64) -> bool {
    match task_channel(task_id) {
        Some(cv) => {
            // SAFETY: as above; cancel_wait() or the next sleep ends the preparation.
            unsafe { pg_sys::ConditionVariablePrepareToSleep(cv) };
            true
        }
        None => false,
    }
}

pub fn sleep_on_task(task_id: i64, timeout_ms: i64) {
    match task_channel(task_id) {
        // SAFETY: as above; the sleep checks for interrupts.
        Some(cv) => unsafe {
            pg_sys::ConditionVariableTimedSleep(cv, timeout_ms, pg_sys::PG_WAIT_EXTENSION);
        },
        // SAFETY: a plain sleep.
        None => unsafe { pg_sys::pg_usleep(timeout_ms * 1000) },
    }
}

pub fn cancel_wait() {
    // SAFETY: a no-op when this backend prepared no sleep.
    unsafe { pg_sys::ConditionVariableCancelSleep() };
}

/// Reserves a free executor slot for the calling worker; `None` when all are taken.
pub fn claim_executor_slot(database: pg_sys::Oid) -> Option<usize> {
    let shared = shared()?;
    let (pid, procno) = (backend::pid(), backend::procno());
    with_registry(shared, || {
        let index = shared
            .executors
            .iter()
            .position(|e| e.state.load(Ordering::Acquire) == executor_state::FREE)?;
        let slot = &shared.executors[index];
        slot.database.store(database.to_u32(), Ordering::Relaxed);
        slot.worker_pid.store(pid, Ordering::Relaxed);
        slot.worker_procno.store(procno, Ordering::Relaxed);
        slot.pid.store(0, Ordering::Relaxed);
        slot.call_started_us.store(0, Ordering::Relaxed);
        slot.call_task.store(0, Ordering::Relaxed);
        slot.state
            .store(executor_state::STARTING, Ordering::Release);
        Some(index)
    })
}

pub fn executor_slot(index: usize) -> Option<&'static ExecutorSlot> {
    shared().and_then(|s| s.executors.get(index))
}

/// Gives a slot back (its executor has exited, or never started).
pub fn free_executor_slot(slot: &ExecutorSlot) {
    slot.pid.store(0, Ordering::Relaxed);
    slot.state.store(executor_state::FREE, Ordering::Release);
}

/// The slot of this process, when it is an executor: its tool calls report into it.
static mut CURRENT_EXECUTOR: Option<&'static ExecutorSlot> = None;

/// Called once by an executor at start.
pub fn become_executor(slot: &'static ExecutorSlot) {
    // SAFETY: set once, before any tool call reads it, by the process's only thread.
    unsafe { CURRENT_EXECUTOR = Some(slot) };
}

/// Marks a tool call (or a check) of `task_id` as running from now, or none, for the worker's
/// watchdog (`worker::executor`). Does nothing outside an executor.
pub fn note_tool_call(task_id: Option<i64>) {
    // SAFETY: written once at executor start, before any tool call.
    let Some(slot) = (unsafe { CURRENT_EXECUTOR }) else {
        return;
    };
    match task_id {
        Some(id) => {
            slot.call_task.store(id, Ordering::Relaxed);
            slot.call_started_us.store(now_us(), Ordering::Relaxed);
        }
        None => slot.call_started_us.store(0, Ordering::Relaxed),
    }
}

/// The worker `worker_pid` exits: its executors are asked to exit, and free slots freed.
pub fn stop_executors_of(worker_pid: i32) {
    let Some(shared) = shared() else { return };
    for slot in &shared.executors {
        if slot.worker_pid.load(Ordering::Relaxed) != worker_pid
            || slot.state.load(Ordering::Acquire) == executor_state::FREE
        {
            continue;
        }
        let pid = slot.pid.load(Ordering::Relaxed);
        if pid > 0 {
            slot.state.store(executor_state::STOP, Ordering::Release);
            backend::terminate(pid);
        } else {
            free_executor_slot(slot);
        }
    }
}
