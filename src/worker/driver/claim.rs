//! Claiming: one transaction per wake-up that ends the queued tasks whose cancel was requested
//! and claims queued tasks up to capacity, and what each claimed task needs before its first
//! model call (tools, log, recalled lessons).

use std::cell::Cell;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering::Relaxed;

use agent_loop_core::faults::Point;
use agent_loop_core::items::Memory;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::{lease_seconds, Worker};
use crate::pg::txn::{in_subtransaction, in_transaction};
use crate::pg::{backend, shmem};
use crate::settings;
use crate::store::{ClaimedTask, Store, ToolRow};
use crate::worker::faults;
use crate::worker::job::Job;
use crate::worker::task::Task;

/// What a claiming transaction found.
struct Claimed {
    tasks: Vec<Task>,
    /// Queued tasks it cancelled.
    cancelled: Vec<i64>,
    /// Running tasks whose cancel was requested.
    cancel_running: Vec<i64>,
}

impl Worker {
    /// One transaction per wake-up: ends queued tasks whose cancel was requested, claims queued
    /// tasks up to capacity, and returns the running tasks with a pending cancel. `None` when
    /// the extension has been dropped.
    pub(super) fn claim(&mut self) -> Option<Vec<i64>> {
        let capacity = settings::MAX_IN_FLIGHT.get() as usize;
        let batch = capacity
            .saturating_sub(self.in_flight())
            .min(settings::CLAIM_BATCH.get() as usize) as i32;
        let pid = self.pid;
        // The task being prepared when the claiming transaction failed, if it failed there,
        // and the error code it fails with.
        let preparing = Cell::new(None);
        let failure_code = Cell::new("internal_error");
        let claimed = in_transaction(AssertUnwindSafe(|| -> Result<Option<Claimed>, String> {
            // A cheap index probe, so DROP EXTENSION is noticed at the next wake-up.
            if !backend::extension_installed() {
                return Ok(None);
            }
            let (cancelled, cancel_running) =
                self.store.cancellations().map_err(|e| e.to_string())?;
            let mut tasks = Vec::new();
            if batch > 0 {
                let in_flight = self.in_flight_by_owner();
                let per_owner = settings::MAX_IN_FLIGHT_PER_OWNER.get();
                let claims = self
                    .store
                    .claim(batch, pid, lease_seconds(), &in_flight, per_owner)
                    .map_err(|e| e.to_string())?;
                // Each model of the batch is read once; re-reading at each claim lets
                // add_model() changes reach a running worker.
                let mut names: Vec<&str> = claims.iter().map(|c| c.model.as_str()).collect();
                names.sort_unstable();
                names.dedup();
                for name in names {
                    if let Some(model) = self.store.model(name).map_err(|e| e.to_string())? {
                        self.models.insert(model.name.clone(), model);
                    }
                }
                // Tasks of a batch mostly share their tools: each set is read once. Their
                // lessons are recalled together, an owner's latest read once; should that
                // fail, each task recalls alone, so a failure fails only its own task.
                let mut tool_sets = HashMap::new();
                let store = &mut self.store;
                let mut recalled =
                    in_subtransaction(AssertUnwindSafe(|| recall_fresh(store, &claims)))
                        .unwrap_or_else(|e| {
                            warning!("agent_loop: recalling lessons for a claim: {e}");
                            HashMap::new()
                        });
                for claim in claims {
                    preparing.set(Some(claim.id));
                    let task = self.prepare(claim, &mut tool_sets, &mut recalled, &failure_code);
                    tasks.push(task?);
                }
                preparing.set(None);
            }
            // The claim commits synchronously, also in async mode: it counts the attempt, and
            // a claim lost in a crash would let a task that crashes the worker do it forever.
            Ok(Some(Claimed {
                tasks,
                cancelled,
                cancel_running,
            }))
        }));
        let claimed = match claimed {
            Ok(Some(claimed)) => claimed,
            Ok(None) => return None,
            Err(e) => {
                warning!("agent_loop: claiming tasks: {e}");
                if let Some(id) = preparing.get() {
                    self.fail_unprepared(id, failure_code.get(), &e.to_string());
                }
                return Some(Vec::new());
            }
        };
        claimed
            .cancelled
            .into_iter()
            .for_each(shmem::announce_task_ended);
        if batch > 0 && claimed.tasks.len() as i32 == batch {
            // More may be waiting: come straight back instead of sleeping.
            backend::set_own_latch();
        }
        self.slot
            .tasks_claimed
            .fetch_add(claimed.tasks.len() as i64, Relaxed);
        let mut waited = Vec::new();
        for task in claimed.tasks {
            faults::at(Point::Claimed, task.id, task.attempt);
            if task.has_waiting_calls() {
                waited.push(task);
                continue;
            }
            self.ready.push_back(task.id);
            self.tasks.insert(task.id, task);
        }
        if !waited.is_empty() {
            let worker_pid = self.pid;
            self.run_job(Job::Resume {
                tasks: waited,
                worker_pid,
            });
        }
        Some(claimed.cancel_running)
    }

    /// How many tasks this worker drives for each owner (`held_tasks`).
    fn in_flight_by_owner(&self) -> Vec<(pg_sys::Oid, i32)> {
        let mut counts: HashMap<pg_sys::Oid, i32> = HashMap::new();
        for task in self.held_tasks() {
            *counts.entry(task.owner).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// A task whose preparation failed (and rolled its whole claim back) fails alone, with the
    /// error; the tasks claimed with it are claimed again at once. Otherwise the batch would
    /// fail with it at every wake-up, and no task behind it would ever start.
    fn fail_unprepared(&mut self, id: i64, code: &str, error: &str) {
        let message = format!("preparing the task: {error}");
        let store = &mut self.store;
        match in_transaction(AssertUnwindSafe(|| {
            store.fail_unprepared(id, code, &message)
        })) {
            Ok(true) => {
                shmem::announce_task_ended(id);
                backend::set_own_latch();
            }
            Ok(false) => {}
            Err(e) => warning!("agent_loop: failing task {id}: {e}"),
        }
    }

    /// Loads what a claimed task needs; a fresh task gets its perceive phase written.
    fn prepare(
        &mut self,
        claim: ClaimedTask,
        tool_sets: &mut HashMap<Vec<String>, Vec<ToolRow>>,
        recalled: &mut HashMap<i64, Vec<Memory>>,
        failure_code: &Cell<&'static str>,
    ) -> Result<Task, String> {
        // Input the task's owner wrote: one that cannot be read fails this task alone.
        let output_schema = match claim.output_schema.as_deref().map(serde_json::from_str) {
            None => None,
            Some(Ok(schema)) => Some(schema),
            Some(Err(e)) => {
                failure_code.set("invalid_task");
                return Err(format!("its output_schema cannot be read: {e}"));
            }
        };
        self.prepare_readable(claim, output_schema, tool_sets, recalled)
            .map_err(|e| e.to_string())
    }

    fn prepare_readable(
        &mut self,
        claim: ClaimedTask,
        output_schema: Option<serde_json::Value>,
        tool_sets: &mut HashMap<Vec<String>, Vec<ToolRow>>,
        recalled: &mut HashMap<i64, Vec<Memory>>,
    ) -> pgrx::spi::SpiResult<Task> {
        let tools = match tool_sets.get(&claim.tools) {
            Some(tools) => tools.clone(),
            None => {
                let tools = self.store.tools(claim.tools.clone())?;
                tool_sets.insert(claim.tools.clone(), tools.clone());
                tools
            }
        };
        let log = match claim.has_log {
            true => self.store.load_items(claim.id, &claim.goal)?,
            false => Ok(Vec::new()),
        };
        let items = match log {
            Ok(items) => items,
            Err(bad_row) => {
                // A log that cannot be read cannot be resumed; start over from the goal.
                warning!(
                    "agent_loop: task {}: {bad_row}; its log is ignored",
                    claim.id
                );
                Vec::new()
            }
        };
        let fresh = items.is_empty();
        let (owner, goal) = (claim.owner, claim.goal.clone());
        let guidance_pending = claim.guidance_pending;
        let mut task = Task::new(claim, output_schema, tools, items);
        // A task whose calls waited is resumed in a transaction of its own, where those calls
        // get their results (an approved one runs, as the owner: never in the claim) before
        // any guidance is taken in (job::Job::Resume).
        if task.has_waiting_calls() {
            faults::at(Point::Preparing, task.id, task.attempt);
            return Ok(task);
        }
        if fresh {
            let memories = match recalled.remove(&task.id) {
                Some(memories) => memories,
                None => {
                    let mut lists = recall(&mut self.store, owner, vec![goal])?;
                    lists.pop().unwrap_or_default()
                }
            };
            task.perceive(&mut self.store, memories)?;
        }
        if guidance_pending {
            task.take_guidance(&mut self.store)?;
        }
        faults::at(Point::Preparing, task.id, task.attempt);
        Ok(task)
    }
}

/// The lessons recalled for each task of a claim that has no log yet, by task id.
fn recall_fresh(
    store: &mut Store,
    claims: &[ClaimedTask],
) -> pgrx::spi::SpiResult<HashMap<i64, Vec<Memory>>> {
    let mut by_owner: HashMap<pg_sys::Oid, Vec<&ClaimedTask>> = HashMap::new();
    for claim in claims.iter().filter(|c| !c.has_log) {
        faults::at(Point::Recalling, claim.id, claim.attempt);
        by_owner.entry(claim.owner).or_default().push(claim);
    }
    let mut recalled = HashMap::new();
    for (owner, tasks) in by_owner {
        let goals = tasks.iter().map(|t| t.goal.clone()).collect();
        let lists = recall(store, owner, goals)?;
        recalled.extend(tasks.iter().map(|t| t.id).zip(lists));
    }
    Ok(recalled)
}

fn recall(
    store: &mut Store,
    owner: pg_sys::Oid,
    goals: Vec<String>,
) -> pgrx::spi::SpiResult<Vec<Vec<Memory>>> {
    let limit = settings::MEMORY_LIMIT.get();
    store.recall(owner, goals, limit, settings::MEMORY_WINDOW.get())
}
