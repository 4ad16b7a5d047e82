//! One claimed task: its log in memory and the transaction of each step.
//!
//! A step is one transaction: lock the task's row (a step that ends the task locks it with
//! its final update), record the model's answer, run the tool calls (their effects and the
//! rows recording them commit together), save the new state. What a step does is decided by
//! `agent_loop_core::step` (the plan); this module carries it out.

use std::collections::BTreeSet;

use agent_loop_core::accounting::Prices;
use agent_loop_core::agent;
use agent_loop_core::context::build_prompt;
use agent_loop_core::faults::Point;
use agent_loop_core::items::{Item, Memory, Phase};
use agent_loop_core::lifecycle::TaskStatus;
use agent_loop_core::step::{self, AfterCalls, Disposition, PlannedCall, RowWrite, StepPlan, Then};
use agent_loop_core::task::{Acceptance, Failure, Limits, Outcome, Progress};
use agent_loop_core::tools::Builtin;
use agent_loop_core::vocab::{CallOutcome, Prompt, ToolCallRequest, ToolSpec};
use agent_loop_core::{guards, reflection, subtasks};
use pgrx::pg_sys;
use pgrx::spi::SpiResult;
use serde_json::json;

use super::faults;
use crate::store::{ClaimedTask, Ending, LockedTask, Metered, NewStep, Store, ToolRow};
use crate::tools;

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Task {
    pub id: i64,
    /// Which claim of the task this is (`tasks.attempts`); a model answer for another claim is
    /// stale.
    pub attempt: i32,
    #[serde(with = "oid")]
    pub owner: pg_sys::Oid,
    pub goal: String,
    pub model: String,
    pub tools: Vec<ToolRow>,
    pub limits: Limits,
    pub acceptance: Acceptance,
    pub progress: Progress,
    pub items: Vec<Item>,
    /// A model call for this task is in flight (counted against its model's concurrency cap).
    #[serde(skip)]
    pub awaiting_model: bool,
    /// The compaction waiting for the model's summary (the structured one, its fallback).
    #[serde(skip)]
    pub compacting: Option<Item>,
    tools_used: BTreeSet<String>,
}

/// How a step ended.
#[derive(serde::Serialize, serde::Deserialize)]
pub enum StepEnd {
    /// Decide again.
    Continue,
    /// The task reached a final state.
    Ended,
    /// The task is no longer this worker's (lease lost, or ended elsewhere).
    Lost,
    /// The task waits, without a worker, for approval of tool calls or for its subtasks.
    Parked,
}

/// What a step needs to know besides its task and its model's answer.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct StepContext {
    /// The worker that holds the task's lease.
    pub worker_pid: i32,
    pub lease_seconds: i32,
    /// The model's prices; `None` records no cost.
    pub prices: Option<Prices>,
}

impl Task {
    pub fn new(
        claimed: ClaimedTask,
        output_schema: Option<serde_json::Value>,
        tools: Vec<ToolRow>,
        items: Vec<Item>,
    ) -> Task {
        let tools_used = items
            .iter()
            .filter_map(|i| match i {
                Item::ToolCall { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        Task {
            id: claimed.id,
            attempt: claimed.attempt,
            owner: claimed.owner,
            goal: claimed.goal,
            model: claimed.model,
            tools,
            limits: claimed.limits,
            acceptance: Acceptance {
                output_schema,
                accept_if: claimed.accept_if,
                needs_data: claimed.needs_data,
            },
            progress: claimed.progress,
            items,
            awaiting_model: false,
            compacting: None,
            tools_used,
        }
    }

    pub fn tool_specs(&self) -> Vec<ToolSpec> {
        self.tools
            .iter()
            .map(|t| ToolSpec {
                name: t.name.clone(),
                description: t.description.clone(),
                parameters: t.parameters.clone(),
            })
            .collect()
    }

    /// The prompt of the next decide.
    pub fn prompt(&self, instructions: &str) -> Prompt {
        build_prompt(
            instructions,
            &self.items,
            self.tool_specs(),
            self.acceptance.output_schema.clone(),
            self.acceptance.needs_data,
        )
    }

    /// Moves messages sent with send() into the log as guidance (perceive).
    pub fn take_guidance(&mut self, store: &mut Store) -> SpiResult<()> {
        for text in store.take_guidance(self.id)? {
            self.append(
                store,
                self.progress.steps_done,
                Item::Guidance { text },
                None,
                None,
            )?;
        }
        Ok(())
    }

    /// Appends to the log, in memory and in `steps`.
    pub fn append(
        &mut self,
        store: &mut Store,
        turn: i32,
        item: Item,
        metered: Option<Metered<'_>>,
        latency_ms: Option<i32>,
    ) -> SpiResult<()> {
        let n = self.items.len() as i32 + 1;
        store.insert_step(
            self.id,
            self.owner,
            NewStep {
                n,
                turn,
                item: &item,
                metered,
                latency_ms,
            },
        )?;
        self.items.push(item);
        Ok(())
    }

    /// The perceive phase of a task's first claim: the goal and the lessons recalled for it.
    pub fn perceive(&mut self, store: &mut Store, memories: Vec<Memory>) -> SpiResult<()> {
        let goal = Item::Goal {
            text: self.goal.clone(),
            memories,
        };
        self.append(store, 0, goal, None, None)
    }

    /// One step, after the model call returned: plans it (`agent_loop_core::step`), then
    /// carries the plan out inside the step's transaction.
    pub fn step(
        &mut self,
        store: &mut Store,
        context: &StepContext,
        call: &CallOutcome,
    ) -> SpiResult<StepEnd> {
        let turn = self.progress.steps_done + 1;
        let attribution = tools::Attribution {
            task_id: self.id,
            turn,
        };
        let tools = &self.tools;
        let needs_approval = |name: &str| {
            tools
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.needs_approval)
        };
        let state = step::TaskState {
            limits: &self.limits,
            acceptance: &self.acceptance,
            progress: &self.progress,
            items: &self.items,
            needs_approval: &needs_approval,
        };
        // The answer's check runs read-only, as the owner; it needs no lock.
        let owner = self.owner;
        let plan = step::plan(&state, call, context.prices, |accept_if, candidate| {
            tools::verify(owner, accept_if, candidate, &attribution)
        });
        let (id, pid, attempt) = (self.id, context.worker_pid, self.attempt);
        if let (RowWrite::Finish, Then::End(outcome)) = (&plan.row, &plan.then) {
            // The final update locks the row itself.
            if store.finish_if_ours(id, pid, attempt, ending(outcome, &plan.progress))? {
                self.record_answer(store, &plan, call)?;
                self.record_end(store, outcome)?;
                faults::at(Point::Finishing, self.id, self.attempt);
                return Ok(StepEnd::Ended);
            }
            // It did not apply (cancel requested, lease lost): the lock below says why.
        }
        let locked = match plan.row {
            RowWrite::LockSavingProgress => store.lock_saving_progress(
                id,
                pid,
                attempt,
                &plan.progress,
                context.lease_seconds,
            )?,
            RowWrite::Finish | RowWrite::Lock => store.lock_task(id, pid, attempt)?,
        };
        let Some(locked) = locked else {
            return Ok(StepEnd::Lost);
        };
        if locked.cancel_requested {
            self.cancel(store)?;
            return Ok(StepEnd::Ended);
        }
        self.record_answer(store, &plan, call)?;
        if locked.guidance_pending && step::guidance_reopens(&plan, &self.limits) {
            return self.continue_loop(store, context, &plan, locked);
        }
        let outcome = match &plan.then {
            Then::End(outcome) | Then::Rejected { end: Some(outcome) } => outcome.clone(),
            Then::Rejected { end: None } | Then::DecideAgain => {
                return self.continue_loop(store, context, &plan, locked)
            }
            Then::Calls(calls) => match self.carry_out(store, calls, &attribution)? {
                AfterCalls::Park(status) => {
                    let awaiting: Vec<ToolCallRequest> = (calls.iter())
                        .filter(|c| c.disposition == Disposition::AwaitApproval)
                        .map(|c| c.call.clone())
                        .collect();
                    store.park(self.id, self.owner, &awaiting, &self.progress, status)?;
                    return Ok(StepEnd::Parked);
                }
                AfterCalls::End(outcome) => outcome,
                AfterCalls::Continue => return self.continue_loop(store, context, &plan, locked),
            },
        };
        self.end(store, outcome)?;
        Ok(StepEnd::Ended)
    }

    /// The step's progress and its rows: failed attempts, the answer (usage, cost and latency
    /// on its first row), the verification.
    fn record_answer(
        &mut self,
        store: &mut Store,
        plan: &StepPlan,
        call: &CallOutcome,
    ) -> SpiResult<()> {
        self.progress = plan.progress.clone();
        let latency = call.latency.as_millis().min(i32::MAX as u128) as i32;
        let usage = call.result.as_ref().ok().map(|reply| &reply.usage);
        for (i, item) in plan.rows.iter().enumerate() {
            let metered = usage
                .filter(|_| plan.metered_row == Some(i))
                .map(|usage| Metered {
                    usage,
                    cost: plan.cost,
                });
            let latency = metered.map(|_| latency);
            self.append(store, plan.turn, item.clone(), metered, latency)?;
        }
        Ok(())
    }

    /// The act phase: each call as its disposition says, then what follows.
    fn carry_out(
        &mut self,
        store: &mut Store,
        calls: &[PlannedCall],
        attribution: &tools::Attribution,
    ) -> SpiResult<AfterCalls> {
        let mut awaiting_approval = false;
        let mut spawned = false;
        for planned in calls {
            match planned.disposition {
                Disposition::AwaitApproval => awaiting_approval = true,
                Disposition::SpawnSubtasks => {
                    spawned |= self.spawn(store, &planned.call, attribution.turn)?
                }
                Disposition::Run => self.run_tool(store, &planned.call, attribution)?,
                Disposition::Repeated => {
                    let call = &planned.call;
                    let (earlier, is_error) = guards::earlier_result(&self.items, call)
                        .map(|(output, is_error)| (output.to_owned(), is_error))
                        .unwrap_or_default();
                    let output = guards::repeated_call_output(&call.name, &earlier);
                    self.record_result(store, attribution.turn, call, output, is_error, None)?
                }
            }
        }
        let follows = step::after_calls(&self.limits, &self.progress, awaiting_approval, spawned);
        if !matches!(follows, AfterCalls::Park(_)) {
            faults::at(Point::Acted, self.id, self.attempt);
        }
        Ok(follows)
    }

    /// Runs one tool call as the owner and records its result (act).
    fn run_tool(
        &mut self,
        store: &mut Store,
        call: &ToolCallRequest,
        attribution: &tools::Attribution,
    ) -> SpiResult<()> {
        let run = tools::run(self.owner, &self.tools, call, attribution);
        self.tools_used.insert(call.name.clone());
        let latency = Some(run.elapsed_ms);
        self.record_result(
            store,
            attribution.turn,
            call,
            run.output,
            run.is_error,
            latency,
        )
    }

    /// Appends the result of `call` to the log.
    fn record_result(
        &mut self,
        store: &mut Store,
        turn: i32,
        call: &ToolCallRequest,
        output: String,
        is_error: bool,
        latency_ms: Option<i32>,
    ) -> SpiResult<()> {
        let item = Item::ToolResult {
            call_id: call.call_id.clone(),
            name: call.name.clone(),
            output,
            is_error,
        };
        self.append(store, turn, item, None, latency_ms)
    }

    /// Starts the subtasks of a spawn_subtasks call; false (and the reason as the call's
    /// result) when its arguments are not usable.
    fn spawn(&mut self, store: &mut Store, call: &ToolCallRequest, turn: i32) -> SpiResult<bool> {
        self.tools_used.insert(call.name.clone());
        match subtasks::goals(&call.arguments) {
            Ok(goals) => {
                let (started, unlimited) = store.subtasks_started(self.id)?;
                let cap = crate::settings::MAX_SUBTASKS.get();
                if !unlimited && started as usize + goals.len() > cap.max(0) as usize {
                    let problem = subtasks::over_cap(cap, started, goals.len());
                    self.record_result(store, turn, call, problem, true, None)?;
                    return Ok(false);
                }
                store.spawn_subtasks(self.id, &call.call_id, goals)?;
                Ok(true)
            }
            Err(problem) => {
                self.record_result(store, turn, call, problem, true, None)?;
                Ok(false)
            }
        }
    }

    /// Whether calls of the last step wait for their results (approval, subtasks).
    pub fn has_waiting_calls(&self) -> bool {
        !agent::unanswered_calls(&self.items).is_empty()
    }

    /// A task claimed again after it waited: the calls that waited get their results, as part
    /// of the claim. An approved call runs now; a rejected one gets the rejection; a
    /// spawn_subtasks call gets what its subtasks answered. A call nobody decided on (the task
    /// was cancelled and retried meanwhile) is not run.
    pub fn answer_waiting_calls(&mut self, store: &mut Store) -> SpiResult<()> {
        let waiting = agent::unanswered_calls(&self.items);
        if waiting.is_empty() {
            return Ok(());
        }
        let decisions = store.decisions(self.id)?;
        let attribution = tools::Attribution {
            task_id: self.id,
            turn: self.progress.steps_done,
        };
        for call in &waiting {
            let (output, is_error) = if Builtin::named(&call.name) == Some(Builtin::SpawnSubtasks) {
                let ends = store.subtask_ends(self.id, &call.call_id)?;
                match ends.is_empty() {
                    true => ("not run: no subtask was started".to_owned(), true),
                    false => (subtasks::results(&ends), subtasks::all_failed(&ends)),
                }
            } else {
                match decisions.iter().find(|d| d.call_id == call.call_id) {
                    Some(d) if d.approved && d.tool_unchanged => {
                        self.run_tool(store, call, &attribution)?;
                        continue;
                    }
                    Some(d) if d.approved => (agent::changed_since_approval(&call.name), true),
                    Some(d) => (
                        agent::rejected_call_output(&d.decided_by, d.reason.as_deref()),
                        true,
                    ),
                    None => (
                        "not run: nobody approved this call before the task was cancelled"
                            .to_owned(),
                        true,
                    ),
                }
            };
            self.record_result(store, attribution.turn, call, output, is_error, None)?;
        }
        Ok(())
    }

    /// The end of a step that decides again: guidance sent meanwhile is taken in, and failures
    /// since the last plan get a revised one (reflect). Compaction, when the prompt nears the
    /// model's context window, happens as the next prompt is built (perceive).
    fn continue_loop(
        &mut self,
        store: &mut Store,
        context: &StepContext,
        plan: &StepPlan,
        locked: LockedTask,
    ) -> SpiResult<StepEnd> {
        let turn = self.progress.steps_done;
        if locked.guidance_pending {
            self.take_guidance(store)?;
        }
        if let Some(item) = step::before_next_decide(&self.items) {
            self.append(store, turn, item, None, None)?;
        }
        if step::saves_progress_at_end(plan) {
            // The row is locked already; this saves the progress, as a step that ran tools did
            // when it locked the row.
            let (id, pid, attempt) = (self.id, context.worker_pid, self.attempt);
            store.lock_saving_progress(id, pid, attempt, &self.progress, context.lease_seconds)?;
        }
        Ok(StepEnd::Continue)
    }

    /// Reflect and record the outcome, on the row this step has locked.
    pub fn end(&mut self, store: &mut Store, outcome: Outcome) -> SpiResult<()> {
        self.record_end(store, &outcome)?;
        store.finish(self.id, ending(&outcome, &self.progress))?;
        faults::at(Point::Finishing, self.id, self.attempt);
        Ok(())
    }

    /// The rows an outcome adds: a failure's error step, and the lesson (reflect).
    fn record_end(&mut self, store: &mut Store, outcome: &Outcome) -> SpiResult<()> {
        let turn = self.progress.steps_done;
        if let Outcome::Failed(failure) = outcome {
            let item = Item::Error {
                phase: failure.phase(),
                class: failure.code(),
                message: failure.message(),
            };
            self.append(store, turn, item, None, None)?;
        }
        let tools_used: Vec<String> = self.tools_used.iter().cloned().collect();
        let lesson = reflection::lesson(&self.goal, outcome, turn, &tools_used);
        // The lesson is written once, to reflections (trace() shows it after this step's
        // rows), not also as a step row.
        let outcome_name = reflection::outcome_name(outcome);
        store.insert_reflection(self.owner, self.id, outcome_name, &lesson)
    }

    /// Ends the task as cancelled. No lesson: a cancel says nothing about how to do the work.
    pub fn cancel(&mut self, store: &mut Store) -> SpiResult<()> {
        let item = Item::Error {
            phase: Phase::Decide,
            class: "cancelled".into(),
            message: "cancelled on request".into(),
        };
        self.append(store, self.progress.steps_done, item, None, None)?;
        store.finish(
            self.id,
            Ending {
                status: TaskStatus::Cancelled,
                result: None,
                error_code: Some("cancelled".into()),
                error_message: Some("cancelled on request".into()),
                progress: &self.progress,
            },
        )
    }
}

/// The task row's final state for `outcome`.
fn ending<'a>(outcome: &Outcome, progress: &'a Progress) -> Ending<'a> {
    let (status, result, failure) = match outcome {
        Outcome::Succeeded(candidate) => {
            let mut result = json!({ "answer": candidate.answer });
            if let Some(output) = &candidate.output {
                result["output"] = output.clone();
            }
            (TaskStatus::Succeeded, Some(result), None)
        }
        Outcome::Failed(failure) => (TaskStatus::Failed, None, Some(failure)),
    };
    Ending {
        status,
        result,
        error_code: failure.map(Failure::code),
        error_message: failure.map(Failure::message),
        progress,
    }
}

/// A role's OID as a plain number, for a task sent to an executor.
mod oid {
    use pgrx::pg_sys::Oid;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(oid: &Oid, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(oid.to_u32())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Oid, D::Error> {
        u32::deserialize(deserializer).map(Oid::from)
    }
}
