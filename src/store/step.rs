//! The step transaction's statements: the task row locked (or locked saving progress), the log
//! appended, guidance taken in, approvals and subtasks recorded, and the task's new state
//! (progress, finish, park, or failure after an error).

use agent_loop_core::lifecycle::TaskStatus;
use agent_loop_core::subtasks::SubtaskEnd;
use agent_loop_core::task::Progress;
use agent_loop_core::vocab::{ToolCallRequest, Usage};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::SpiResult;
use pgrx::JsonB;

use super::{sql, Decision, Ending, LockedTask, NewStep, Sql, Store};

impl Store {
    pub fn insert_step(
        &mut self,
        task_id: i64,
        owner: pg_sys::Oid,
        step: NewStep<'_>,
    ) -> SpiResult<()> {
        let usage = step.metered.map(|m| m.usage);
        let cost = step.metered.and_then(|m| m.cost);
        let tokens = |f: fn(&Usage) -> i64| usage.map(|u| f(u).min(i32::MAX as i64) as i32);
        let args = [
            task_id.into(),
            step.n.into(),
            step.turn.into(),
            owner.into(),
            step.item.phase().as_str().into(),
            step.item.kind().into(),
            JsonB(step.item.content()).into(),
            tokens(|u| u.input_tokens).into(),
            tokens(|u| u.cached_tokens).into(),
            tokens(|u| u.output_tokens).into(),
            tokens(|u| u.reasoning_tokens).into(),
            cost.into(),
            step.latency_ms.into(),
        ];
        self.exec(&sql::INSERT_STEP, &args)
    }

    /// Locks the task's row for this step. `None`: the task is no longer ours (the lease was
    /// lost or it ended).
    pub fn lock_task(
        &mut self,
        task_id: i64,
        worker_pid: i32,
        attempt: i32,
    ) -> SpiResult<Option<LockedTask>> {
        let args = [task_id.into(), worker_pid.into(), attempt.into()];
        self.lock_with(&sql::LOCK_TASK, &args)
    }

    /// `lock_task` that also saves the step's progress (with the phase the task waits in next):
    /// one update instead of a lock record and an update, for a step that goes on to run tools.
    /// On a row this step has locked already, it saves the progress.
    pub fn lock_saving_progress(
        &mut self,
        task_id: i64,
        worker_pid: i32,
        attempt: i32,
        progress: &Progress,
        lease_seconds: i32,
    ) -> SpiResult<Option<LockedTask>> {
        let mut args = vec![
            task_id.into(),
            worker_pid.into(),
            attempt.into(),
            lease_seconds.into(),
        ];
        args.extend(progress_args(progress));
        self.lock_with(&sql::LOCK_SAVING_PROGRESS, &args)
    }

    /// Runs a statement that locks the task's row and returns (cancel requested, guidance
    /// pending), or no row when the task is no longer ours.
    fn lock_with(
        &mut self,
        statement: &'static Sql,
        args: &[DatumWithOid<'static>],
    ) -> SpiResult<Option<LockedTask>> {
        Spi::connect_mut(|c| {
            let rows = self.run(c, statement, args)?;
            if rows.is_empty() {
                return Ok(None);
            }
            let row = rows.first();
            Ok(Some(LockedTask {
                cancel_requested: row
                    .get_by_name::<bool, _>("cancel_requested")?
                    .unwrap_or(false),
                guidance_pending: row
                    .get_by_name::<bool, _>("guidance_pending")?
                    .unwrap_or(false),
            }))
        })
    }

    /// Removes the task's unread messages from send() and returns them, oldest first.
    pub fn take_guidance(&mut self, task_id: i64) -> SpiResult<Vec<String>> {
        Spi::connect_mut(|c| {
            self.run(c, &sql::TAKE_GUIDANCE, &[task_id.into()])?
                .map(|row| row.get::<String>(1).map(Option::unwrap_or_default))
                .collect()
        })
    }

    /// Ends the task, on the row this step has locked.
    pub fn finish(&mut self, task_id: i64, ending: Ending<'_>) -> SpiResult<()> {
        self.exec(&sql::FINISH, &finish_args(task_id, ending))
    }

    /// Ends the task if this worker still holds it and no cancel is pending; the update locks
    /// the row. `false`: nothing changed (lock the row to learn why).
    pub fn finish_if_ours(
        &mut self,
        task_id: i64,
        worker_pid: i32,
        attempt: i32,
        ending: Ending<'_>,
    ) -> SpiResult<bool> {
        let mut args = finish_args(task_id, ending);
        args.extend([worker_pid.into(), attempt.into()]);
        Spi::connect_mut(|c| Ok(!self.run(c, &sql::FINISH_IF_OURS, &args)?.is_empty()))
    }

    /// Records the calls that wait for a decision and parks the task in `status`: it leaves
    /// this worker and is queued again when no decision and no subtask is pending.
    pub fn park(
        &mut self,
        task_id: i64,
        owner: pg_sys::Oid,
        awaiting_approval: &[ToolCallRequest],
        progress: &Progress,
        status: TaskStatus,
    ) -> SpiResult<()> {
        let mut args = vec![task_id.into(), status.as_str().into()];
        args.extend(progress_args(progress));
        Spi::connect_mut(|c| {
            for call in awaiting_approval {
                self.run(
                    c,
                    &sql::REQUEST_APPROVAL,
                    &[
                        task_id.into(),
                        call.call_id.as_str().into(),
                        owner.into(),
                        call.name.as_str().into(),
                        call.arguments.as_str().into(),
                    ],
                )?;
            }
            self.run(c, &sql::PARK, &args).map(drop)
        })
    }

    /// Queues one subtask of `parent` per goal, for its call `call_id`.
    pub fn spawn_subtasks(
        &mut self,
        parent: i64,
        call_id: &str,
        goals: Vec<String>,
    ) -> SpiResult<()> {
        self.exec(&sql::SPAWN, &[parent.into(), call_id.into(), goals.into()])
    }

    /// How many subtasks `parent` has started, and whether its owner may start any number.
    pub fn subtasks_started(&mut self, parent: i64) -> SpiResult<(i32, bool)> {
        Spi::connect_mut(|c| {
            let rows = self.run(c, &sql::SUBTASKS_STARTED, &[parent.into()])?;
            if rows.is_empty() {
                return Ok((0, false));
            }
            let row = rows.first();
            Ok((row.get(1)?.unwrap_or(0), row.get(2)?.unwrap_or(false)))
        })
    }

    /// How the subtasks of `parent`'s call `call_id` ended (or stand).
    pub fn subtask_ends(&mut self, parent: i64, call_id: &str) -> SpiResult<Vec<SubtaskEnd>> {
        Spi::connect_mut(|c| {
            let mut ends = Vec::new();
            for row in self.run(c, &sql::SUBTASK_ENDS, &[parent.into(), call_id.into()])? {
                ends.push(SubtaskEnd {
                    task_id: row.get_by_name("id")?.unwrap_or_default(),
                    goal: row.get_by_name("goal")?.unwrap_or_default(),
                    status: row.get_by_name("status")?.unwrap_or_default(),
                    answer: row.get_by_name("answer")?,
                    error: row.get_by_name("error")?,
                });
            }
            Ok(ends)
        })
    }

    /// The decisions taken on the task's calls that needed approval.
    pub fn decisions(&mut self, task_id: i64) -> SpiResult<Vec<Decision>> {
        Spi::connect_mut(|c| {
            let mut decisions = Vec::new();
            for row in self.run(c, &sql::DECISIONS, &[task_id.into()])? {
                decisions.push(Decision {
                    call_id: row.get_by_name("call_id")?.unwrap_or_default(),
                    approved: row.get_by_name("approved")?.unwrap_or(false),
                    decided_by: row.get_by_name("decided_by")?.unwrap_or_default(),
                    reason: row.get_by_name("reason")?,
                    tool_unchanged: row.get_by_name("tool_unchanged")?.unwrap_or(false),
                });
            }
            Ok(decisions)
        })
    }

    pub fn insert_reflection(
        &mut self,
        owner: pg_sys::Oid,
        task_id: i64,
        outcome: &str,
        lesson: &str,
    ) -> SpiResult<()> {
        let args = [owner.into(), task_id.into(), outcome.into(), lesson.into()];
        self.exec(&sql::INSERT_REFLECTION, &args)
    }

    /// Fails a queued task whose claim was rolled back while it was prepared; `false` if it
    /// is no longer queued (or a cancel is pending: that ends it as cancelled).
    pub fn fail_unprepared(
        &mut self,
        task_id: i64,
        error_code: &str,
        message: &str,
    ) -> SpiResult<bool> {
        Spi::connect_mut(|c| {
            let args = [task_id.into(), message.into(), error_code.into()];
            Ok(!self.run(c, &sql::FAIL_UNPREPARED, &args)?.is_empty())
        })
    }

    /// Records a failure outside any step (the step's own transaction rolled back) and fails
    /// the task, if this worker still holds it. Returns whether it did.
    pub fn fail_after_error(
        &mut self,
        task_id: i64,
        worker_pid: i32,
        attempt: i32,
        message: &str,
    ) -> SpiResult<bool> {
        self.fail_with(task_id, worker_pid, attempt, "internal_error", message)
    }

    /// `fail_after_error` with an error code of the caller's.
    pub fn fail_with(
        &mut self,
        task_id: i64,
        worker_pid: i32,
        attempt: i32,
        error_code: &str,
        message: &str,
    ) -> SpiResult<bool> {
        Spi::connect_mut(|c| {
            let rows = self.run(
                c,
                &sql::FAIL_AFTER_ERROR,
                &[
                    task_id.into(),
                    worker_pid.into(),
                    attempt.into(),
                    message.into(),
                    error_code.into(),
                ],
            )?;
            Ok(!rows.is_empty())
        })
    }
}

fn finish_args(task_id: i64, ending: Ending<'_>) -> Vec<DatumWithOid<'static>> {
    let mut args = vec![
        task_id.into(),
        ending.status.as_str().into(),
        ending.result.map(JsonB).into(),
        ending.error_code.into(),
        ending.error_message.into(),
    ];
    args.extend(progress_args(ending.progress));
    args
}

/// The task row's progress columns, the last six parameters of every statement that saves
/// them: steps_done, input, cached, output and reasoning tokens, cost.
fn progress_args(progress: &Progress) -> [DatumWithOid<'static>; 6] {
    let u = &progress.usage;
    [
        progress.steps_done.into(),
        u.input_tokens.into(),
        u.cached_tokens.into(),
        u.output_tokens.into(),
        u.reasoning_tokens.into(),
        progress.cost.into(),
    ]
}
