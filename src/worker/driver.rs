//! The per-database worker: one main thread that owns SPI and drives every claimed task, and a
//! pool of helper threads for the model calls.
//!
//! Each turn of the main loop collects finished model calls (one step transaction each), ends
//! cancelled tasks, claims new ones, dispatches the ready ones, then sleeps on the latch until a
//! model call finishes, a submit commits, or the poll interval passes.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agent_loop_core::agent;
use agent_loop_core::faults::Point;
use agent_loop_core::model::http::CallSettings;
use agent_loop_core::model::pool::{ModelJob, ModelOutcome, ModelPool, Purpose};
use agent_loop_core::model::retry::RetryPolicy;
use agent_loop_core::model::{self as wire, Endpoint};
use agent_loop_core::task::{Failure, Outcome};
use agent_loop_core::vocab::{ErrorClass, ModelError, Prompt};
use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::executor::Executors;
use super::faults;
use super::job::{Job, StepJob, STEP_GROUP};
use super::task::{StepContext, Task};
use crate::pg::shmem::{self, WorkerSlot};
use crate::pg::txn::{in_transaction, pin_worker_session};
use crate::pg::{backend, Error};
use crate::settings;
use crate::store::{ModelRow, Store};

mod claim;
mod outcomes;
mod perceive;

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn agent_loop_worker_main(arg: pg_sys::Datum) {
    let database = backend::oid_argument(arg).expect("database oid");
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(database), None);

    let installed = in_transaction(|| Ok::<_, Error>(backend::extension_installed()));
    if installed != Ok(true) {
        shmem::set_without_extension(database, true);
        shmem::clear_start_request(database);
        return;
    }
    shmem::set_without_extension(database, false);
    let wanted = settings::workers_per_database();
    let slot = shmem::claim_slot(database, wanted);
    shmem::clear_start_request(database);
    let Some(slot) = slot else {
        return; // enough workers serve this database
    };
    // With workers_per_database > 1, each new worker starts the next until there are enough.
    if shmem::claim_worker_start(database, wanted) {
        super::launcher::start_worker(database);
    }
    backend::at_exit(release_slot_at_exit, slot as *const WorkerSlot as usize);
    log!(
        "agent_loop worker started for database {}",
        database.to_u32()
    );
    Worker::new(slot).run();
}

fn release_slot_at_exit(slot: usize) {
    shmem::stop_executors_of(backend::pid());
    if let Some(slot) = shmem::worker_slot_at(slot) {
        shmem::release_slot(slot);
    }
}

struct Worker {
    slot: &'static WorkerSlot,
    pid: i32,
    store: Store,
    pool: ModelPool,
    tasks: HashMap<i64, Task>,
    /// Tasks whose next decide has not been sent (their model was at its concurrency cap).
    ready: VecDeque<i64>,
    models: HashMap<String, ModelRow>,
    calls_per_model: HashMap<String, usize>,
    /// The processes that run tenants' code for this worker; `None`: it runs here.
    executors: Option<Executors>,
    /// Executors that died running a call of the task, by task.
    executor_deaths: HashMap<i64, u32>,
    /// Steps that timed out on a lock, to be tried again at the instant given; and how often
    /// each task's step has, so far.
    retries: Vec<(Instant, StepJob)>,
    lock_retries: HashMap<i64, u32>,
}

impl Worker {
    fn new(slot: &'static WorkerSlot) -> Worker {
        let wake = backend::latch_setter();
        Worker {
            slot,
            pid: backend::pid(),
            store: Store::default(),
            pool: ModelPool::new(settings::MAX_IN_FLIGHT.get() as usize, wake),
            tasks: HashMap::new(),
            ready: VecDeque::new(),
            models: HashMap::new(),
            calls_per_model: HashMap::new(),
            executors: None,
            executor_deaths: HashMap::new(),
            retries: Vec::new(),
            lock_retries: HashMap::new(),
        }
    }

    fn run(&mut self) {
        if let Err(e) = pin_session() {
            warning!("agent_loop: pinning the worker's session: {e}");
            return;
        }
        // A socket per model call in flight, and room for PostgreSQL's own files.
        let wanted = settings::MAX_IN_FLIGHT.get() as u64 + 1024;
        let open_files = backend::raise_open_files(wanted);
        if open_files < wanted {
            warning!(
                "agent_loop: this worker may open {open_files} files (the hard limit), fewer than \
                 agent_loop.max_in_flight = {} model calls need; raise the server's limit \
                 (LimitNOFILE, ulimit -n)",
                settings::MAX_IN_FLIGHT.get()
            );
        }
        let executors = settings::EXECUTORS_PER_WORKER.get().max(0) as usize;
        if executors > 0 {
            let database = backend::database();
            self.executors = Some(Executors::start(database, executors));
        }
        let orphans = in_transaction(AssertUnwindSafe(|| {
            self.store.requeue_orphans(shmem::live_worker_pids())
        }));
        match orphans {
            Ok(0) => {}
            Ok(n) => log!("agent_loop: resuming {n} task(s) whose worker is gone"),
            Err(e) => warning!("agent_loop: re-queueing orphaned tasks: {e}"),
        }
        // After a restart the hot relations are cold: the first claims would each wait on
        // reads from disk.
        let started = Instant::now();
        match in_transaction(AssertUnwindSafe(|| self.store.prewarm())) {
            Ok(Some(blocks)) => {
                self.slot.prewarmed_blocks.store(blocks, Relaxed);
                log!(
                    "agent_loop: prewarmed {blocks} blocks of its tables and indexes in {} ms",
                    started.elapsed().as_millis()
                )
            }
            Ok(None) => {}
            Err(e) => warning!("agent_loop: prewarming: {e}"),
        }
        let mut next_housekeeping = Instant::now();
        let mut next_prune = Instant::now();
        loop {
            self.slot.last_wakeup_us.store(shmem::now_us(), Relaxed);
            if BackgroundWorker::sighup_received() {
                backend::reload_config();
                if let Err(e) = pin_session() {
                    warning!("agent_loop: pinning the worker's session: {e}");
                }
                if shmem::is_surplus(self.slot, settings::workers_per_database()) {
                    log!("agent_loop: workers_per_database went down; this worker exits");
                    break;
                }
            }
            if Instant::now() >= next_housekeeping {
                self.housekeeping();
                next_housekeeping = Instant::now() + lease_duration() / 3;
            }
            let retention = settings::RETENTION_SECONDS.get();
            if retention > 0 && Instant::now() >= next_prune {
                next_prune = Instant::now() + self.prune(retention);
            }
            // Claiming first: it also notices a dropped extension before anything else runs.
            let Some(cancel_running) = self.claim() else {
                log!("agent_loop extension dropped; worker exits");
                return;
            };
            self.cancel_running(cancel_running);
            self.dispatch_ready();
            // Each group's tasks send their next model call as soon as the group commits: with
            // a thousand answers in, the first group's calls are out long before the last group
            // has run.
            loop {
                let answers: Vec<_> = std::iter::from_fn(|| self.pool.try_next())
                    .take(STEP_GROUP)
                    .collect();
                if answers.is_empty() {
                    break;
                }
                self.step_group(answers);
                self.collect();
                self.dispatch_ready();
            }
            self.run_due_retries();
            self.collect();
            self.dispatch_ready();
            self.slot.in_flight.store(self.in_flight() as i32, Relaxed);
            self.slot
                .helper_threads
                .store(self.pool.threads() as i32, Relaxed);
            // A background worker reports its statistics itself (rate-limited to once a second
            // inside): without them autovacuum never learns of the dead tuples steps leave.
            backend::flush_stats();
            let mut poll = Duration::from_millis(settings::POLL_INTERVAL_MS.get() as u64);
            if self.executors.as_ref().is_some_and(Executors::busy) || !self.retries.is_empty() {
                // The watchdog looks at running tool calls this often.
                poll = poll.min(Duration::from_millis(100));
            }
            if !BackgroundWorker::wait_latch(Some(poll)) {
                break;
            }
        }
        // SIGTERM, or a surplus worker: between steps by construction. Running tasks go back to
        // the queue and resume from their last committed step (on another worker, or after the
        // restart); answers still in flight are abandoned.
        if let Some(executors) = self.executors.as_mut() {
            executors.stop();
        }
        if let Err(e) = in_transaction(AssertUnwindSafe(|| self.store.release_leases(self.pid))) {
            warning!("agent_loop: could not release leases at shutdown: {e}");
        }
    }

    /// The tasks this worker drives: waiting for a model or their turn, in a job, or waiting
    /// to retry a step.
    fn held_tasks(&self) -> impl Iterator<Item = &Task> {
        let in_jobs = self.executors.iter().flat_map(Executors::tasks);
        let retrying = self.retries.iter().map(|(_, step)| &step.task);
        self.tasks.values().chain(in_jobs).chain(retrying)
    }

    fn in_flight(&self) -> usize {
        self.held_tasks().count()
    }

    /// Renews this worker's leases and re-queues the tasks of workers that died.
    fn housekeeping(&mut self) {
        let ids: Vec<i64> = self.held_tasks().map(|t| t.id).collect();
        let pid = self.pid;
        let result = in_transaction(AssertUnwindSafe(|| {
            if !ids.is_empty() {
                self.store.renew_leases(ids, pid, lease_seconds())?;
            }
            self.store.requeue_expired()
        }));
        match result {
            Ok(0) => {}
            Ok(requeued) => {
                log!("agent_loop: re-queued {requeued} task(s) whose worker's lease expired")
            }
            Err(e) => warning!("agent_loop housekeeping: {e}"),
        }
    }

    /// Deletes tasks older than `agent_loop.retention`; returns when to do it next: soon while
    /// a backlog remains, otherwise after a quarter of the retention (between 1 s and 1 min).
    fn prune(&mut self, retention: i32) -> Duration {
        const BATCH: i32 = 5000;
        let pruned = in_transaction(AssertUnwindSafe(|| {
            self.store.prune_ended(retention, BATCH)
        }));
        match pruned {
            Ok(n) if n as i32 == BATCH => return Duration::from_millis(100),
            Ok(_) => {}
            Err(e) => warning!("agent_loop: pruning ended tasks: {e}"),
        }
        Duration::from_secs((retention as u64 / 4).clamp(1, 60))
    }

    /// Ends the running tasks of this worker whose cancel was requested.
    fn cancel_running(&mut self, requested: Vec<i64>) {
        for id in requested {
            // Not in the map: another worker's task, or already ended.
            if let Some(mut task) = self.tasks.remove(&id) {
                self.forget_call(&mut task);
                self.conclude(task, "cancelling", |task, store| task.cancel(store));
            }
        }
    }

    /// Sends the next model call of every ready task whose model has room.
    fn dispatch_ready(&mut self) {
        let mut deferred = VecDeque::new();
        while let Some(id) = self.ready.pop_front() {
            let Some(task) = self.tasks.get(&id) else {
                continue;
            };
            let Some(model) = self.models.get(&task.model).cloned() else {
                let error = ModelError::new(
                    ErrorClass::BadRequest,
                    format!("model \"{}\" no longer exists", task.model),
                );
                self.end_task(id, Outcome::Failed(Failure::Model(error)));
                continue;
            };
            let busy = self.calls_per_model.get(&model.name).copied().unwrap_or(0);
            if busy >= model.max_concurrency.max(1) as usize {
                deferred.push_back(id);
                continue;
            }
            if let Some(outcome) = agent::before_decide(&task.limits, &task.progress, now_epoch()) {
                self.end_task(id, outcome);
                continue;
            }
            let (purpose, prompt) = self.next_call(id, &model);
            let Some(task) = self.tasks.get(&id) else {
                continue;
            };
            match self.model_job(task, &model, purpose, &prompt) {
                Ok(job) => {
                    self.pool.submit(job);
                    *self.calls_per_model.entry(model.name.clone()).or_default() += 1;
                    if let Some(task) = self.tasks.get_mut(&id) {
                        task.awaiting_model = true;
                    }
                }
                Err(error) => self.end_task(id, Outcome::Failed(Failure::Model(error))),
            }
        }
        self.ready = deferred;
    }

    fn model_job(
        &self,
        task: &Task,
        model: &ModelRow,
        purpose: Purpose,
        prompt: &Prompt,
    ) -> Result<ModelJob, ModelError> {
        let api_key = match &model.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                ModelError::new(
                    ErrorClass::Auth,
                    format!("environment variable {var} (api_key_env of model \"{}\") is not set in the server's environment", model.name),
                )
            })?),
            None => settings::api_key_from_setting(&model.name),
        };
        let provider = wire::provider(&model.provider).ok_or_else(|| {
            ModelError::new(
                ErrorClass::BadRequest,
                format!("unknown provider \"{}\"", model.provider),
            )
        })?;
        let endpoint = Endpoint {
            base_url: &model.base_url,
            model: &model.model,
            api_key: api_key.as_deref(),
            options: &model.options,
        };
        let request = (provider.build_request)(&endpoint, prompt);
        Ok(ModelJob {
            task_id: task.id,
            ticket: task.attempt as i64,
            purpose,
            request,
            settings: CallSettings {
                timeout: Duration::from_millis(model.timeout_ms.max(1.0) as u64),
                max_body_bytes: settings::MAX_RESPONSE_BYTES.get() as usize,
                retry: RetryPolicy {
                    max_retries: settings::MODEL_MAX_RETRIES.get() as u32,
                    base_delay: Duration::from_millis(settings::MODEL_RETRY_BASE_MS.get() as u64),
                    max_delay: Duration::from_millis(settings::MODEL_RETRY_MAX_MS.get() as u64),
                },
            },
            parse: provider.parse_response,
        })
    }

    /// The task's model call is over (answered or abandoned): free its place under the cap.
    fn forget_call(&mut self, task: &mut Task) {
        if std::mem::take(&mut task.awaiting_model) {
            if let Some(n) = self.calls_per_model.get_mut(&task.model) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Takes the model answers that are in: each becomes a step, run by an executor (or, with
    /// none, here) in a group that commits together.
    fn step_group(&mut self, answers: Vec<ModelOutcome>) {
        let mut steps = Vec::with_capacity(answers.len());
        for answer in answers {
            if answer.purpose == Purpose::Summary {
                self.summary_written(answer);
                continue;
            }
            let id = answer.task_id;
            // A task cancelled, lost or re-claimed meanwhile: the answer belongs to nobody.
            if self
                .tasks
                .get(&id)
                .is_none_or(|t| t.attempt as i64 != answer.ticket)
            {
                continue;
            }
            let mut task = self.tasks.remove(&id).expect("checked above");
            self.forget_call(&mut task);
            faults::at(Point::Decided, id, task.attempt);
            let context = self.step_context(&task);
            steps.push(StepJob {
                task,
                call: answer.call,
                context,
            });
        }
        if !steps.is_empty() {
            self.run_job(Job::Steps(steps));
        }
    }

    fn step_context(&self, task: &Task) -> StepContext {
        let model = self.models.get(&task.model);
        StepContext {
            worker_pid: self.pid,
            lease_seconds: lease_seconds(),
            prices: model.and_then(|m| m.prices),
        }
    }

    /// Ends a task outside a model answer (limits before a decide, configuration errors).
    fn end_task(&mut self, id: i64, outcome: Outcome) {
        if let Some(task) = self.tasks.remove(&id) {
            self.conclude(task, "ending", |task, store| task.end(store, outcome));
        }
    }

    /// Writes a task's final state in its own transaction, if this worker still holds it, and
    /// wakes its waiters.
    fn conclude(
        &mut self,
        mut task: Task,
        doing: &str,
        write: impl FnOnce(&mut Task, &mut Store) -> pgrx::spi::SpiResult<()>,
    ) {
        let (id, attempt, pid) = (task.id, task.attempt, self.pid);
        let store = &mut self.store;
        let ended = in_transaction(AssertUnwindSafe(|| {
            match store.lock_task(task.id, pid, task.attempt)? {
                Some(_) => write(&mut task, store).map(|_| true),
                None => Ok(false),
            }
        }));
        match ended {
            Ok(true) => {
                faults::at(Point::Finished, id, attempt);
                shmem::announce_task_ended(id)
            }
            Ok(false) => {}
            Err(e) => warning!("agent_loop: {doing} task {id}: {e}"),
        }
    }
}

/// Pins the worker's session settings (`txn::pin_worker_session`) in a transaction of its own.
fn pin_session() -> Result<(), Error> {
    in_transaction(|| {
        pin_worker_session(settings::WORKER_LOCK_TIMEOUT_MS.get());
        Ok::<_, Error>(())
    })
}

/// The system prompt every task's prompt starts with (`agent_loop.system_prompt`).
fn instructions() -> String {
    settings::string(&settings::SYSTEM_PROMPT).unwrap_or_default()
}

fn lease_seconds() -> i32 {
    settings::LEASE_SECONDS.get()
}

fn lease_duration() -> Duration {
    Duration::from_secs(lease_seconds().max(1) as u64)
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
