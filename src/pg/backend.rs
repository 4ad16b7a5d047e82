//! This backend process: who it is, its latch, its signals, its statistics, its limits.
//! Everything here is a thin safe face on one PostgreSQL (or libc) call.

use std::sync::Arc;

use pgrx::pg_sys;
use pgrx::FromDatum;

mod raw {
    extern "C-unwind" {
        // Bound directly, not through pgrx, whose wrappers refuse any thread but the main one:
        // SetLatch is async-signal-safe and documented as callable from any thread.
        pub fn SetLatch(latch: *mut pgrx::pg_sys::Latch);
        /// tcop/postgres.c: the SIGTERM handler of every backend (pgrx wraps its binding in a
        /// guard that a signal handler must not run).
        pub fn die(signal: std::ffi::c_int);
    }
}

/// This process's id.
pub fn pid() -> i32 {
    // SAFETY: set at process start, never changed after.
    unsafe { pg_sys::MyProcPid }
}

/// This process's PGPROC number (other processes set its latch through it).
pub fn procno() -> i32 {
    // SAFETY: MyProc is set before any of our code runs in a backend or background worker
    // connected to shared memory, and lives as long as the process.
    unsafe { (*pg_sys::MyProc).pgprocno }
}

/// The database this backend is connected to.
pub fn database() -> pg_sys::Oid {
    // SAFETY: set once at connection, read-only afterwards.
    unsafe { pg_sys::MyDatabaseId }
}

/// Sets this process's own latch (wakes its next `wait_latch`).
pub fn set_own_latch() {
    // SAFETY: MyLatch points at this process's latch for its whole life.
    unsafe { raw::SetLatch(pg_sys::MyLatch) }
}

/// A function any thread may call to set this process's latch: how helper threads wake the
/// worker when a model answer arrives.
pub fn latch_setter() -> Arc<dyn Fn() + Send + Sync> {
    // SAFETY: MyLatch is this process's latch for its whole life.
    let latch = unsafe { pg_sys::MyLatch } as usize;
    // SAFETY: SetLatch may be called from any thread, and the latch outlives every thread of
    // the process.
    Arc::new(move || unsafe { raw::SetLatch(latch as *mut pg_sys::Latch) })
}

/// Sets the latch of the process with PGPROC number `procno`. Safe from any thread and in a
/// callback: no allocation, no error.
pub fn set_latch_of(procno: i32) {
    if procno < 0 {
        return;
    }
    // SAFETY: procno names a PGPROC in ProcGlobal's array, which lives as long as the server;
    // SetLatch on a latch whose owner has exited is harmless.
    unsafe {
        let proc = (*pg_sys::ProcGlobal).allProcs.add(procno as usize);
        raw::SetLatch(&raw mut (*proc).procLatch);
    }
}

/// Re-reads the configuration files (after a SIGHUP).
pub fn reload_config() {
    // SAFETY: called from the main thread between transactions, as PostgreSQL's own
    // background processes do.
    unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
}

/// Sends this process's pending statistics (a background worker never idles through the
/// point where a backend does).
pub fn flush_stats() {
    // SAFETY: outside a transaction, on the main thread.
    unsafe { pg_sys::pgstat_report_stat(false) };
}

/// Shows this backend in `pg_stat_activity` as running `statement`.
pub fn report_running(statement: &std::ffi::CStr) {
    // SAFETY: the text is copied into shared memory before the call returns.
    unsafe {
        pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_RUNNING, statement.as_ptr())
    };
}

/// Shows this backend in `pg_stat_activity` as idle, with no statement.
pub fn report_idle() {
    // SAFETY: a null statement is allowed with STATE_IDLE.
    unsafe { pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_IDLE, std::ptr::null()) };
}

/// Forgets this transaction's snapshot of the statistics views, so the next read is fresh.
pub fn clear_stats_snapshot() {
    // SAFETY: inside a transaction; only drops cached memory.
    unsafe { pg_sys::pgstat_clear_snapshot() };
}

/// Whether this transaction's isolation level keeps one snapshot (repeatable read or
/// serializable).
pub fn snapshot_is_fixed() -> bool {
    // SAFETY: a plain global of this backend.
    unsafe { pg_sys::XactIsoLevel >= pg_sys::XACT_REPEATABLE_READ as i32 }
}

/// Whether `xid` is this transaction's (or one of its subtransactions').
pub fn is_own_transaction(xid: u32) -> bool {
    // SAFETY: a lookup in this backend's own transaction state.
    xid != 0 && unsafe { pg_sys::TransactionIdIsCurrentTransactionId(xid.into()) }
}

/// Whether the extension is installed in this database. Needs a transaction.
pub fn extension_installed() -> bool {
    // SAFETY: a catalog lookup by a NUL-terminated name; missing_ok returns InvalidOid.
    unsafe { pg_sys::get_extension_oid(c"agent_loop".as_ptr(), true) != pg_sys::InvalidOid }
}

/// Whether the library is being loaded at server start (`shared_preload_libraries`).
pub fn preloading() -> bool {
    // SAFETY: a plain global of the postmaster, set around the preload.
    unsafe { pg_sys::process_shared_preload_libraries_in_progress }
}

/// The `i32` a background worker was started with.
pub fn i32_argument(arg: pg_sys::Datum) -> Option<i32> {
    // SAFETY: the starter passed an int4 datum by value (never null).
    unsafe { i32::from_datum(arg, false) }
}

/// The OID a background worker was started with.
pub fn oid_argument(arg: pg_sys::Datum) -> Option<pg_sys::Oid> {
    // SAFETY: the starter passed an oid datum by value (never null).
    unsafe { pg_sys::Oid::from_datum(arg, false) }
}

/// From now on, SIGTERM ends this process at its next interrupt check, as for any backend:
/// a FATAL that even a tool catching `query_canceled` cannot stop.
pub fn die_on_sigterm() {
    // SAFETY: installs PostgreSQL's own handler for the signal it was written for.
    unsafe { pg_sys::pqsignal(libc::SIGTERM, Some(raw::die)) };
}

/// Asks process `pid` (one of ours: an executor) to exit.
pub fn terminate(pid: i32) {
    if pid > 0 {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// Ends this process at once, as a crash would (the durability tests' faults).
pub fn crash() -> ! {
    // SAFETY: kill(2) on our own pid; SIGKILL cannot be caught, so it does not return.
    unsafe { libc::kill(pid(), libc::SIGKILL) };
    std::process::abort()
}

/// Runs `callback(arg)` when this process exits, before it leaves shared memory (also after a
/// FATAL): how a worker gives back its slot and an executor marks its own death.
pub fn at_exit(callback: fn(usize), arg: usize) {
    EXIT_CALLBACKS.with(|c| c.borrow_mut().push((callback, arg)));
    if EXIT_CALLBACKS.with(|c| c.borrow().len()) == 1 {
        // SAFETY: registers a guarded C callback; its argument is unused.
        unsafe { pg_sys::before_shmem_exit(Some(run_exit_callbacks), pg_sys::Datum::from(0)) };
    }
}

/// A function to run at exit, and its argument.
type ExitCallback = (fn(usize), usize);

thread_local! {
    static EXIT_CALLBACKS: std::cell::RefCell<Vec<ExitCallback>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn run_exit_callbacks(_code: i32, _arg: pg_sys::Datum) {
    let callbacks = EXIT_CALLBACKS.with(|c| std::mem::take(&mut *c.borrow_mut()));
    for (callback, arg) in callbacks {
        callback(arg);
    }
}

/// Caps this process's address space at what it maps now (shared memory included) plus
/// `megabytes`, so that an allocation beyond it fails with PostgreSQL's "out of memory" error
/// instead of growing the process without bound. False if the limit could not be set.
pub fn limit_memory(megabytes: i32) -> bool {
    if megabytes <= 0 {
        return true;
    }
    // SAFETY: sysconf reads a constant of the system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    let mapped = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(|pages| pages * page);
    let Some(mapped) = mapped else {
        return false;
    };
    let rlimit = libc::rlimit {
        rlim_cur: mapped + megabytes as u64 * 1024 * 1024,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct it is given.
    unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlimit) == 0 }
}

/// Raises this process's limit of open files to at least `wanted` (within the hard limit):
/// each model call in flight holds a socket, and the soft limit a server starts with is often
/// 1,024. PostgreSQL's own file cache keeps to the budget it computed at server start.
/// Returns the limit now in force.
pub fn raise_open_files(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or fill the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < wanted {
            let raised = libc::rlimit {
                rlim_cur: wanted.min(limit.rlim_max),
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}
