//! What comes back from the work a worker hands out: executors' replies and lost jobs, the end
//! of each step (continue, park, end, retry after a lock timeout), and re-queued tasks.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use agent_loop_core::faults::Point;
use agent_loop_core::vocab::CallOutcome;
use pgrx::prelude::*;

use super::Worker;
use crate::pg::txn::in_transaction;
use crate::pg::{backend, shmem};
use crate::settings;
use crate::worker::executor;
use crate::worker::faults;
use crate::worker::job::{self, Job, Reply, StepFailed, StepJob};
use crate::worker::task::{StepEnd, Task};

impl Worker {
    /// Hands a job to the executors, or runs it here when there are none.
    pub(super) fn run_job(&mut self, job: Job) {
        match self.executors.as_mut() {
            Some(executors) => executors.submit(job),
            None => {
                let reply = job::run(&mut self.store, job);
                self.after_reply(reply);
            }
        }
    }

    /// Takes in what the executors finished, and what became of the jobs whose executor died.
    pub(super) fn collect(&mut self) {
        let Some(executors) = self.executors.as_mut() else {
            return;
        };
        for outcome in executors.poll() {
            match outcome {
                executor::Outcome::Done(reply) => self.after_reply(reply),
                executor::Outcome::Lost { job, ended_task } => self.after_lost(job, ended_task),
            }
        }
    }

    pub(super) fn after_reply(&mut self, reply: Reply) {
        match reply {
            Reply::Steps(ends) => {
                self.slot.steps_done.fetch_add(ends.len() as i64, Relaxed);
                for (task, end) in ends {
                    self.after_step(task, end);
                }
            }
            Reply::Resumed(resumed) => {
                for (task, outcome) in resumed {
                    match outcome {
                        Ok(StepEnd::Continue) => {
                            self.ready.push_back(task.id);
                            self.tasks.insert(task.id, task);
                        }
                        Ok(StepEnd::Ended) => shmem::announce_task_ended(task.id),
                        Ok(_) => {}
                        Err(StepFailed {
                            message, failed, ..
                        }) => {
                            warning!("agent_loop: resuming task {}: {message}", task.id);
                            if failed {
                                shmem::announce_task_ended(task.id);
                            }
                        }
                    }
                }
            }
        }
    }

    /// An executor exited before it replied (or its reply was unreadable). Whether the job
    /// committed is not known, so it is not run again: its tasks go back to the queue and
    /// resume from what their logs hold, except the task whose tool call the watchdog ended,
    /// which fails with `tool_timeout` (its step was still running, so nothing of it
    /// committed).
    pub(super) fn after_lost(&mut self, job: Job, ended_task: Option<(i64, bool)>) {
        // An executor that died by itself (a fast shutdown ends it before its worker, say) is
        // no reason to fail the task whose call it ran; three such deaths are.
        let ended_task = ended_task.filter(|&(id, by_watchdog)| {
            let deaths = self.executor_deaths.entry(id).or_default();
            *deaths += 1;
            by_watchdog || *deaths >= 3
        });
        let mut requeue = Vec::new();
        for task in job.into_tasks() {
            match ended_task {
                Some((id, by_watchdog)) if id == task.id => {
                    self.executor_deaths.remove(&id);
                    let (code, message) = match by_watchdog {
                        true => (
                            "tool_timeout",
                            format!(
                                "a tool call ran past agent_loop.tool_timeout ({} ms) and ignored \
                                 its cancellation; its executor was terminated and the step rolled back",
                                settings::TOOL_TIMEOUT_MS.get()
                            ),
                        ),
                        false => (
                            "executor_died",
                            "executors running a tool call of this task exited three times".to_owned(),
                        ),
                    };
                    self.fail_task(&task, code, &message);
                }
                _ => requeue.push(task.id),
            }
        }
        if !requeue.is_empty() {
            self.requeue(requeue);
        }
    }

    /// Hands tasks of this worker back to the queue, to be claimed again at once; they resume
    /// from their logs.
    pub(super) fn requeue(&mut self, ids: Vec<i64>) {
        let (store, pid) = (&mut self.store, self.pid);
        match in_transaction(AssertUnwindSafe(|| store.release_tasks(ids, pid))) {
            Ok(()) => backend::set_own_latch(),
            Err(e) => warning!("agent_loop: re-queueing tasks: {e}"),
        }
    }

    /// Fails a task outside any step, recording why (its step rolled back).
    pub(super) fn fail_task(&mut self, task: &Task, code: &str, message: &str) {
        let (id, attempt, pid) = (task.id, task.attempt, self.pid);
        let store = &mut self.store;
        match in_transaction(AssertUnwindSafe(|| {
            store.fail_with(id, pid, attempt, code, message)
        })) {
            Ok(true) => shmem::announce_task_ended(id),
            Ok(false) => {}
            Err(e) => warning!("agent_loop: failing task {id}: {e}"),
        }
    }

    /// What follows a step's commit: decide again, or wake the task's waiters.
    pub(super) fn after_step(&mut self, task: Task, end: Result<StepEnd, StepFailed>) {
        let id = task.id;
        if !self.executor_deaths.is_empty() {
            self.executor_deaths.remove(&id);
        }
        if !self.lock_retries.is_empty() && end.is_ok() {
            self.lock_retries.remove(&id);
        }
        match end {
            Ok(StepEnd::Continue) => {
                faults::at(Point::Stepped, id, task.attempt);
                self.tasks.insert(id, task);
                self.ready.push_back(id);
            }
            Ok(StepEnd::Ended) => {
                faults::at(Point::Finished, id, task.attempt);
                shmem::announce_task_ended(id)
            }
            Ok(StepEnd::Parked) => {
                // wait() returns for a task that waits for approval; subtasks it started are
                // claimed at once, without waiting for a wake-up.
                shmem::announce_task_ended(id);
                backend::set_own_latch();
            }
            Ok(StepEnd::Lost) => {}
            Err(StepFailed {
                retry: Some(call), ..
            }) => self.retry_later(task, *call),
            Err(StepFailed {
                message, failed, ..
            }) => {
                warning!("agent_loop: step of task {id} failed and was rolled back: {message}");
                if failed {
                    shmem::announce_task_ended(id);
                }
            }
        }
    }

    /// A step that timed out on a lock (its owner holds the task's row, say) is tried again
    /// a little later, a few times; then the task goes back to the queue.
    pub(super) fn retry_later(&mut self, task: Task, call: CallOutcome) {
        const TRIES: u32 = 5;
        let tries = self.lock_retries.entry(task.id).or_default();
        *tries += 1;
        if *tries > TRIES {
            self.lock_retries.remove(&task.id);
            self.requeue(vec![task.id]);
            return;
        }
        let context = self.step_context(&task);
        let due = Instant::now() + Duration::from_millis(500);
        self.retries.push((
            due,
            StepJob {
                task,
                call,
                context,
            },
        ));
    }

    /// Sends the steps whose retry is due.
    pub(super) fn run_due_retries(&mut self) {
        if self.retries.is_empty() {
            return;
        }
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.retries = later;
        if !due.is_empty() {
            self.run_job(Job::Steps(due.into_iter().map(|(_, step)| step).collect()));
        }
    }
}
