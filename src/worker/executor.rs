//! Executor backends: the processes that run tenants' code for a worker.
//!
//! The worker is a superuser backend shared by every tenant, so no tool call, `accept_if` check
//! or approved call runs in it. It hands each group of steps (and each resumption after a wait)
//! to one of its executors (`agent_loop.executors_per_worker`) as a [`Job`]: the job is written
//! to a dynamic shared memory segment, the executor runs it in its own transaction exactly as
//! the worker would (`job::run`), and writes the reply to a segment of its own. So a step's
//! effects and the rows that record them still commit together.
//!
//! A tool that ignores cancellation (PL/pgSQL can catch `query_canceled`) is ended by
//! terminating its executor once it has run `agent_loop.tool_timeout` plus a grace second: the
//! executor's transaction rolls back, the task fails with `tool_timeout`, the other tasks of the
//! job go back to the queue (a lost job is never run again: it may have committed), and a fresh
//! executor starts. An executor's address space is
//! capped (`agent_loop.executor_memory`), so a tool that allocates too much gets an "out of
//! memory" error of its own instead of taking the server's memory.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::job::{self, Job, Reply};
use super::task::Task;
use crate::pg::segment::{self, Segment};
use crate::pg::shmem::{self, executor_state as state, ExecutorSlot};
use crate::pg::txn::{in_transaction, pin_worker_session};
use crate::pg::{backend, Error};
use crate::settings;
use crate::store::Store;

/// Past the tool timeout, how long a call may go on ignoring its cancellation.
const GRACE_US: i64 = 1_000_000;

/// What became of a job sent to an executor.
pub enum Outcome {
    Done(Reply),
    /// The executor exited before it replied (nothing of the job committed). `ended_task` is
    /// the task whose tool call it was running then, and whether the watchdog ended it.
    Lost {
        job: Job,
        ended_task: Option<(i64, bool)>,
    },
}

/// One executor of this worker, and the job it runs.
struct Executor {
    index: usize,
    /// When it was last started: a slot whose start fails is retried once a second.
    launched: std::time::Instant,
    slot: &'static ExecutorSlot,
    job: Option<Job>,
    request: Option<Segment>,
    /// The task whose call the watchdog ended, if it did.
    terminated: Option<i64>,
}

/// A worker's executors.
pub struct Executors {
    database: pg_sys::Oid,
    executors: Vec<Executor>,
    queue: VecDeque<Job>,
}

impl Executors {
    /// Starts `count` executors for this worker's database.
    pub fn start(database: pg_sys::Oid, count: usize) -> Executors {
        let mut pool = Executors {
            database,
            executors: Vec::new(),
            queue: VecDeque::new(),
        };
        for _ in 0..count {
            match shmem::claim_executor_slot(database) {
                Some(index) => {
                    let slot = shmem::executor_slot(index).expect("claimed above");
                    launch(index, database);
                    pool.executors.push(Executor {
                        index,
                        launched: std::time::Instant::now(),
                        slot,
                        job: None,
                        request: None,
                        terminated: None,
                    });
                }
                None => warning!(
                    "agent_loop: no executor slot is free; tool calls wait for one (at most {} \
                     executors in all)",
                    shmem::MAX_EXECUTORS
                ),
            }
        }
        pool
    }

    /// Whether any job is queued or running.
    pub fn busy(&self) -> bool {
        !self.queue.is_empty() || self.executors.iter().any(|e| e.job.is_some())
    }

    /// The tasks in jobs not yet answered (still this worker's: in flight, leases to renew).
    pub fn tasks(&self) -> impl Iterator<Item = &Task> {
        let running = self.executors.iter().filter_map(|e| e.job.as_ref());
        running.chain(self.queue.iter()).flat_map(Job::tasks)
    }

    pub fn submit(&mut self, job: Job) {
        self.queue.extend(job.split_by_owner());
        self.dispatch();
    }

    /// Hands queued jobs to idle executors, fairly by owner: an idle executor takes the first
    /// queued job of an owner that no other executor is working for, with the queued steps of
    /// other such owners, up to a group (when every queued owner is busy elsewhere: the queue
    /// in order, grouped). So
    /// one role's slow or stubborn calls, however many, hold one executor at a time while
    /// another role's steps wait, and a stubborn call is ended after tool_timeout + 1 s.
    fn dispatch(&mut self) {
        for index in 0..self.executors.len() {
            if self.queue.is_empty() {
                break;
            }
            let executor = &self.executors[index];
            if executor.job.is_some() || executor.slot.state.load(Acquire) != state::IDLE {
                continue;
            }
            let busy: Vec<pg_sys::Oid> = (self.executors.iter())
                .filter_map(|e| e.job.as_ref())
                .flat_map(|job| job.tasks().into_iter().map(|t| t.owner))
                .collect();
            let free = |job: &Job| job.tasks().iter().all(|t| !busy.contains(&t.owner));
            // When every queued owner is busy elsewhere, the queue goes in order, grouped.
            let chosen = self.queue.iter().position(free);
            let fallback = chosen.is_none();
            let first = chosen.unwrap_or(0);
            let mut job = self.queue.remove(first).expect("the queue is not empty");
            // Steps that queued up while every executor was busy go together: one commit.
            if let Job::Steps(steps) = &mut job {
                let mut i = 0;
                while i < self.queue.len() && steps.len() < job::STEP_GROUP {
                    let fits = match &self.queue[i] {
                        Job::Steps(next) => {
                            (fallback || free(&self.queue[i]))
                                && steps.len() + next.len() <= job::STEP_GROUP
                        }
                        Job::Resume { .. } => false,
                    };
                    if !fits {
                        i += 1;
                        continue;
                    }
                    if let Some(Job::Steps(next)) = self.queue.remove(i) {
                        steps.extend(next);
                    }
                }
            }
            let executor = &mut self.executors[index];
            let bytes = serde_json::to_vec(&job).expect("a job serializes");
            let request = Segment::create(&bytes);
            let slot = executor.slot;
            slot.request_handle.store(request.handle(), Relaxed);
            slot.request_len.store(request.len() as i64, Relaxed);
            executor.request = Some(request);
            slot.state.store(state::REQUEST, Release);
            shmem::set_latch_of(slot.procno.load(Relaxed));
            executor.job = Some(job);
        }
    }

    /// Collects the replies that are in and the jobs whose executor died (a new one starts in
    /// its place), ends tool calls past their time, and sends queued jobs on.
    pub fn poll(&mut self) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let deadline_us = settings::TOOL_TIMEOUT_MS.get() as i64 * 1000 + GRACE_US;
        let now = shmem::now_us();
        for executor in &mut self.executors {
            let slot = executor.slot;
            match slot.state.load(Acquire) {
                state::DONE if executor.job.is_some() => {
                    let reply = read_reply(slot);
                    executor.request = None;
                    let job = executor.job.take().expect("checked above");
                    slot.state.store(state::IDLE, Release);
                    outcomes.push(match reply {
                        Some(reply) => Outcome::Done(reply),
                        None => Outcome::Lost {
                            job,
                            ended_task: None,
                        },
                    });
                }
                state::DEAD
                    if executor.launched.elapsed() >= Duration::from_secs(1)
                        || executor.job.is_some() =>
                {
                    executor.request = None;
                    if let Some(job) = executor.job.take() {
                        let running = slot.call_task.load(Relaxed);
                        let ended_task = executor
                            .terminated
                            .map(|id| (id, true))
                            .or((running != 0).then_some((running, false)));
                        outcomes.push(Outcome::Lost { job, ended_task });
                    }
                    executor.terminated = None;
                    slot.call_started_us.store(0, Relaxed);
                    slot.call_task.store(0, Relaxed);
                    slot.state.store(state::STARTING, Release);
                    executor.launched = std::time::Instant::now();
                    launch(executor.index, self.database);
                }
                state::RUNNING if executor.terminated.is_none() => {
                    let started = slot.call_started_us.load(Relaxed);
                    if started != 0 && now - started > deadline_us {
                        let task = slot.call_task.load(Relaxed);
                        warning!(
                            "agent_loop: a tool call of task {task} ran past agent_loop.tool_timeout \
                             and ignored its cancellation; its executor is terminated"
                        );
                        executor.terminated = Some(task);
                        backend::terminate(slot.pid.load(Relaxed));
                    }
                }
                _ => {}
            }
        }
        self.dispatch();
        outcomes
    }

    /// Asks every executor to exit (the worker is stopping).
    pub fn stop(&mut self) {
        for executor in &mut self.executors {
            executor.request = None;
            let slot = executor.slot;
            slot.state.store(state::STOP, Release);
            backend::terminate(slot.pid.load(Relaxed));
        }
        // A step an executor was running holds its task's row until the executor's
        // transaction is over; the worker can hand that task back (release its lease) only
        // then, so it waits for them to exit, briefly.
        let deadline = Instant::now() + STOP_WAIT;
        while Instant::now() < deadline
            && (self.executors.iter()).any(|e| e.slot.pid.load(Relaxed) != 0)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Starts the executor process for slot `index`.
fn launch(index: usize, database: pg_sys::Oid) {
    let started = BackgroundWorkerBuilder::new(&format!(
        "agent_loop executor for database {}",
        database.to_u32()
    ))
    .set_type("agent_loop executor")
    .set_library("agent_loop")
    .set_function("agent_loop_executor_main")
    .set_argument((index as i32).into_datum())
    .enable_spi_access()
    .set_restart_time(None)
    .load_dynamic();
    if started.is_err() {
        warning!("agent_loop: could not start an executor: no background worker slot is free");
        if let Some(slot) = shmem::executor_slot(index) {
            slot.state.store(state::DEAD, Release);
        }
    }
}

fn read_reply(slot: &ExecutorSlot) -> Option<Reply> {
    let bytes = segment::read(
        slot.reply_handle.load(Relaxed),
        slot.reply_len.load(Relaxed) as usize,
    )?;
    serde_json::from_slice(&bytes)
        .inspect_err(|e| warning!("agent_loop: an executor's reply is unreadable: {e}"))
        .ok()
}

// --- the executor process ---------------------------------------------------------------

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn agent_loop_executor_main(arg: pg_sys::Datum) {
    let index = backend::i32_argument(arg).unwrap_or(-1);
    let Some(slot) = shmem::executor_slot(index as usize) else {
        return;
    };
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP);
    backend::die_on_sigterm();
    backend::at_exit(mark_dead, index as usize);
    let database = pg_sys::Oid::from(slot.database.load(Relaxed));
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(database), None);
    if !backend::limit_memory(settings::EXECUTOR_MEMORY_MB.get()) {
        warning!("agent_loop executor: could not limit its memory");
    }
    if let Err(e) = in_transaction(|| {
        pin_worker_session(settings::WORKER_LOCK_TIMEOUT_MS.get());
        Ok::<_, Error>(())
    }) {
        warning!("agent_loop executor: pinning the session: {e}");
        return;
    }
    shmem::become_executor(slot);
    slot.pid.store(backend::pid(), Relaxed);
    slot.procno.store(backend::procno(), Relaxed);
    let _ = slot
        .state
        .compare_exchange(state::STARTING, state::IDLE, Release, Relaxed);
    shmem::set_latch_of(slot.worker_procno.load(Relaxed));

    let mut store = Store::default();
    let mut reply_segment: Option<Segment> = None;
    loop {
        match slot.state.load(Acquire) {
            state::STOP => break,
            state::REQUEST => {
                // The worker has read the previous reply by now.
                reply_segment = None;
                slot.state.store(state::RUNNING, Release);
                let bytes = segment::read(
                    slot.request_handle.load(Relaxed),
                    slot.request_len.load(Relaxed) as usize,
                );
                let job = bytes.and_then(|b| serde_json::from_slice::<Job>(&b).ok());
                let Some(job) = job else {
                    warning!("agent_loop executor: a job is unreadable; exiting");
                    break;
                };
                let reply = job::run(&mut store, job);
                shmem::note_tool_call(None);
                let bytes = serde_json::to_vec(&reply).expect("a reply serializes");
                let reply = Segment::create(&bytes);
                slot.reply_handle.store(reply.handle(), Relaxed);
                slot.reply_len.store(reply.len() as i64, Relaxed);
                reply_segment = Some(reply);
                slot.state.store(state::DONE, Release);
                shmem::set_latch_of(slot.worker_procno.load(Relaxed));
                backend::flush_stats();
                continue;
            }
            _ => {}
        }
        if BackgroundWorker::sighup_received() {
            backend::reload_config();
        }
        // Exits on postmaster death; a SIGTERM ends the process inside (`die`).
        BackgroundWorker::wait_latch(Some(Duration::from_secs(1)));
    }
    drop(reply_segment);
}

/// How long a stopping worker waits for its executors to exit.
const STOP_WAIT: Duration = Duration::from_secs(2);

fn mark_dead(index: usize) {
    if let Some(slot) = shmem::executor_slot(index) {
        slot.pid.store(0, Relaxed);
        if slot.state.load(Acquire) == state::STOP {
            shmem::free_executor_slot(slot);
        } else {
            slot.state.store(state::DEAD, Release);
            shmem::set_latch_of(slot.worker_procno.load(Relaxed));
        }
    }
}
