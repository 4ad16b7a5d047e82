//! The work that runs tenants' code: a group of steps (a model answer each), or the resumption
//! of tasks whose calls waited for approval or subtasks. A job runs in an executor backend
//! (`worker::executor`), which reads it from shared memory and writes its reply back; with
//! `agent_loop.executors_per_worker = 0`, the worker runs it itself. Either way it is the same
//! code: [`run`].

use std::panic::AssertUnwindSafe;

use agent_loop_core::vocab::CallOutcome;
use serde::{Deserialize, Serialize};

use super::task::{StepContext, StepEnd, Task};
use crate::pg::txn::{
    commit_without_flush, in_subtransaction, in_transaction, with_local_settings,
};
use crate::settings::{self, StepCommit};
use crate::store::Store;

/// Most steps committed together. Each step's subtransaction takes a subtransaction id (and a
/// tool that writes, another); past 64 in one transaction, other sessions' snapshots get slow.
pub const STEP_GROUP: usize = 16;

/// The `lock_timeout` of a step whose group already holds other tasks' rows (0 would mean no
/// limit): a row someone else holds puts the step off instead of making the group wait.
const NO_LOCK_WAIT: &std::ffi::CStr = c"1ms";

/// One step to take: the task as the worker holds it, the model's answer, its settings.
#[derive(Serialize, Deserialize)]
pub struct StepJob {
    pub task: Task,
    pub call: CallOutcome,
    pub context: StepContext,
}

#[derive(Serialize, Deserialize)]
pub enum Job {
    /// Steps committed together, each in a subtransaction of its own.
    Steps(Vec<StepJob>),
    /// Tasks claimed again after waiting: the calls that waited get their results (an
    /// approved call runs now, as the owner), in a transaction per task.
    Resume { tasks: Vec<Task>, worker_pid: i32 },
}

/// A step rolled back: why, and whether the task could be marked failed.
#[derive(Serialize, Deserialize)]
pub struct StepFailed {
    pub message: String,
    pub failed: bool,
    /// A lock conflict (a lock the task's owner holds on its row, say): the task did not fail,
    /// and the same answer may be stepped again (nothing of the step committed).
    pub retry: Option<Box<CallOutcome>>,
}

/// How each task of a job came out; the tasks come back with their new state.
#[derive(Serialize, Deserialize)]
pub enum Reply {
    Steps(Vec<(Task, Result<StepEnd, StepFailed>)>),
    /// `Ok(true)`: the task may decide again; `Ok(false)`: it is no longer this worker's;
    /// `Err`: it failed.
    Resumed(Vec<(Task, Result<StepEnd, StepFailed>)>),
}

impl Job {
    /// The tasks the job holds.
    pub fn tasks(&self) -> Vec<&Task> {
        match self {
            Job::Steps(steps) => steps.iter().map(|s| &s.task).collect(),
            Job::Resume { tasks, .. } => tasks.iter().collect(),
        }
    }

    /// The job as one job per owner, owners in the order they first appear: executors are
    /// shared fairly by owner (`executor::Executors::dispatch`).
    pub fn split_by_owner(self) -> Vec<Job> {
        fn split<T>(items: Vec<T>, owner: impl Fn(&T) -> pgrx::pg_sys::Oid) -> Vec<Vec<T>> {
            let mut groups: Vec<(pgrx::pg_sys::Oid, Vec<T>)> = Vec::new();
            for item in items {
                let o = owner(&item);
                match groups.iter_mut().find(|(g, _)| *g == o) {
                    Some((_, group)) => group.push(item),
                    None => groups.push((o, vec![item])),
                }
            }
            groups.into_iter().map(|(_, group)| group).collect()
        }
        match self {
            Job::Steps(steps) => split(steps, |s| s.task.owner)
                .into_iter()
                .map(Job::Steps)
                .collect(),
            Job::Resume { tasks, worker_pid } => split(tasks, |t| t.owner)
                .into_iter()
                .map(|tasks| Job::Resume { tasks, worker_pid })
                .collect(),
        }
    }

    /// The tasks the job holds.
    pub fn into_tasks(self) -> Vec<Task> {
        match self {
            Job::Steps(steps) => steps.into_iter().map(|s| s.task).collect(),
            Job::Resume { tasks, .. } => tasks,
        }
    }
}

/// Runs a job in the current process.
pub fn run(store: &mut Store, job: Job) -> Reply {
    match job {
        Job::Steps(steps) => Reply::Steps(run_steps(store, steps)),
        Job::Resume { tasks, worker_pid } => Reply::Resumed(
            tasks
                .into_iter()
                .map(|mut task| {
                    let resumed = resume(store, &mut task, worker_pid);
                    (task, resumed)
                })
                .collect(),
        ),
    }
}

/// The steps of model answers that are in, in one transaction: each step in a subtransaction
/// of its own, so one that fails rolls back alone and fails its task; one commit, so one WAL
/// flush, for them all. The group commits asynchronously only when `step_commit = async` and
/// none of its steps ends its task.
fn run_steps(
    store: &mut Store,
    mut group: Vec<StepJob>,
) -> Vec<(Task, Result<StepEnd, StepFailed>)> {
    let committed = in_transaction(AssertUnwindSafe(|| {
        let mut ends = Vec::with_capacity(group.len());
        let mut holds_task_rows = false;
        for job in group.iter_mut() {
            let (task, call, context) = (&mut job.task, &job.call, &job.context);
            let step = in_subtransaction(AssertUnwindSafe(|| {
                // Once the group holds a task's row, waiting for another's could close a
                // cycle with a tenant's statement that locks several of its tasks in another
                // order, and the deadlock would abort the tenant's statement.
                if holds_task_rows {
                    with_local_settings(&[(c"lock_timeout", NO_LOCK_WAIT)], || {
                        task.step(store, context, call)
                    })
                } else {
                    task.step(store, context, call)
                }
            }));
            holds_task_rows |= step.is_ok();
            ends.push(match step {
                Ok(end) => Ok(end),
                Err(error) if error.is_lock_conflict() => Err(StepFailed {
                    message: error.to_string(),
                    failed: false,
                    retry: Some(Box::new(call.clone())),
                }),
                Err(error) => {
                    let message = error.to_string();
                    // In a subtransaction of its own: should recording the failure fail too
                    // (a lock its owner holds on the row outlasts lock_timeout), the other
                    // steps of the group still commit; the task's lease then runs out.
                    let pid = context.worker_pid;
                    let failed = in_subtransaction(AssertUnwindSafe(|| {
                        store.fail_after_error(task.id, pid, task.attempt, &message)
                    }))
                    .unwrap_or(false);
                    Err(StepFailed {
                        message,
                        failed,
                        retry: None,
                    })
                }
            });
        }
        let all_continue = ends.iter().all(|e| matches!(e, Ok(StepEnd::Continue)));
        if all_continue && settings::STEP_COMMIT.get() == StepCommit::Async {
            // A lost intermediate step is redone after a crash, effects and record alike.
            commit_without_flush();
        }
        Ok::<_, pgrx::spi::Error>(ends)
    }));
    match committed {
        Ok(ends) => group.into_iter().map(|j| j.task).zip(ends).collect(),
        // Nothing of the group committed (an error at commit): each task fails as its step
        // would have alone.
        Err(error) => group
            .into_iter()
            .map(|job| {
                let (id, attempt, pid) = (job.task.id, job.task.attempt, job.context.worker_pid);
                let message = error.to_string();
                let failed = in_transaction(AssertUnwindSafe(|| {
                    store.fail_after_error(id, pid, attempt, &message)
                }));
                let failed = failed == Ok(true);
                let retry = None;
                (
                    job.task,
                    Err(StepFailed {
                        message,
                        failed,
                        retry,
                    }),
                )
            })
            .collect(),
    }
}

/// The transaction that resumes a task claimed after waiting: its row locked, the calls that
/// waited answered, guidance sent meanwhile taken in.
fn resume(store: &mut Store, task: &mut Task, worker_pid: i32) -> Result<StepEnd, StepFailed> {
    let (id, attempt) = (task.id, task.attempt);
    let resumed = in_transaction(AssertUnwindSafe(|| {
        let Some(locked) = store.lock_task(id, worker_pid, attempt)? else {
            return Ok(StepEnd::Lost);
        };
        // Cancelled since it was claimed: no call that waited runs, approved or not.
        if locked.cancel_requested {
            task.cancel(store)?;
            return Ok(StepEnd::Ended);
        }
        task.answer_waiting_calls(store)?;
        if locked.guidance_pending {
            task.take_guidance(store)?;
        }
        Ok::<_, pgrx::spi::Error>(StepEnd::Continue)
    }));
    resumed.map_err(|error| {
        let message = error.to_string();
        let failed = in_transaction(AssertUnwindSafe(|| {
            store.fail_after_error(id, worker_pid, attempt, &message)
        }));
        StepFailed {
            message,
            failed: failed == Ok(true),
            retry: None,
        }
    })
}
