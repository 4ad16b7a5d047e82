//! One claimed task: its log in memory and the transaction of each step.
//!
//! A step is one transaction: lock the task's row (a step that ends the task locks it with
//! its final update), record the model's answer, run the tool calls (their effects and the
//! rows recording them commit together), save the new state.
//! Decisions come from `agent_loop_core::agent`; this module only does the I/O.

use std::collections::BTreeSet;

use agent_loop_core::accounting::Prices;
use agent_loop_core::agent::{self, Next};
use agent_loop_core::compaction;
use agent_loop_core::context::build_prompt;
use agent_loop_core::faults::Point;
use agent_loop_core::items::{Item, Memory, Phase};
use agent_loop_core::lifecycle::TaskStatus;
use agent_loop_core::task::{Acceptance, Failure, Limits, Outcome, Progress};
use agent_loop_core::tools::Builtin;
use agent_loop_core::vocab::{CallOutcome, Prompt, ToolCallRequest, ToolSpec};
use agent_loop_core::{reflection, subtasks};
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
    /// The instructions every prompt starts with.
    pub instructions: String,
    /// The model's context window in tokens; `None` never compacts.
    pub context_window: Option<i32>,
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
            },
            progress: claimed.progress,
            items,
            awaiting_model: false,
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

    /// One step, after the model call returned. Runs inside the step's transaction.
    pub fn step(
        &mut self,
        store: &mut Store,
        context: &StepContext,
        call: &CallOutcome,
    ) -> SpiResult<StepEnd> {
        let turn = self.progress.steps_done + 1;
        let cost = (call.result.as_ref().ok())
            .and_then(|reply| context.prices.map(|p| p.cost(&reply.usage)));
        let mut progress = self.progress.clone();
        if let Ok(reply) = &call.result {
            progress.steps_done = turn;
            progress.add(&reply.usage, cost.unwrap_or(0.0));
        }
        let attribution = tools::Attribution {
            task_id: self.id,
            turn,
        };
        // What follows is decided before anything is written, so that a step that ends the
        // task locks the row with its final update (a lock record first: 54 bytes of WAL per
        // task). The answer's check runs read-only, as the owner; it needs no lock.
        let mut verified = None;
        let next = match agent::after_decide(
            &self.limits,
            &self.acceptance,
            &progress,
            call.result.as_ref(),
        ) {
            Next::Verify {
                candidate,
                accept_if,
            } => {
                let checked = tools::verify(self.owner, &accept_if, &candidate, &attribution);
                if checked.is_ok() {
                    // A failed check is recorded with the rejection below.
                    let detail = format!("the check {} holds", accept_if.trim());
                    verified = Some(Item::Verification {
                        passed: true,
                        detail,
                    });
                }
                agent::after_verify(candidate, checked)
            }
            other => other,
        };
        let (id, pid, attempt) = (self.id, context.worker_pid, self.attempt);
        let finished = match &next {
            Next::Finish(outcome) => {
                store.finish_if_ours(id, pid, attempt, ending(outcome, &progress))?
            }
            _ => false,
        };
        // A step that runs tools most likely continues: locking the row, it saves the progress
        // at once (one write to the row, where a lock and a later update were two).
        let runs_tools = call.result.as_ref().is_ok_and(|r| !r.tool_calls.is_empty());
        let locked = match (finished, runs_tools) {
            (true, _) => None,
            (false, true) => {
                store.lock_saving_progress(id, pid, attempt, &progress, context.lease_seconds)?
            }
            (false, false) => store.lock_task(id, pid, attempt)?,
        };
        match &locked {
            None if !finished => return Ok(StepEnd::Lost),
            Some(locked) if locked.cancel_requested => {
                self.cancel(store)?;
                return Ok(StepEnd::Ended);
            }
            _ => {}
        }
        for failed in &call.failed_attempts {
            let item = Item::Error {
                phase: Phase::Decide,
                class: failed.class.as_str().into(),
                message: format!("{failed} (retried)"),
            };
            self.append(store, turn, item, None, None)?;
        }
        self.progress = progress;
        if let Ok(reply) = &call.result {
            // Usage, cost and latency go on the first row of the model's answer.
            let latency = call.latency.as_millis().min(i32::MAX as u128) as i32;
            let metered = Metered {
                usage: &reply.usage,
                cost,
            };
            let mut first_row = Some((metered, latency));
            let mut rows: Vec<Item> = reply
                .reasoning
                .iter()
                .cloned()
                .map(Item::Reasoning)
                .collect();
            if let Some(text) = reply.text.as_ref().filter(|t| !t.trim().is_empty()) {
                rows.push(Item::AssistantMessage { text: text.clone() });
            }
            rows.extend(reply.tool_calls.iter().map(|c| Item::ToolCall {
                call_id: c.call_id.clone(),
                name: c.name.clone(),
                arguments: c.arguments.clone(),
            }));
            for item in rows {
                let (metered, latency) = first_row.take().unzip();
                self.append(store, turn, item, metered, latency)?;
            }
        }
        if let Some(item) = verified {
            self.append(store, turn, item, None, None)?;
        }
        // Only a finishing step holds no lock of its own: its final update locked the row.
        let Some(locked) = locked else {
            let Next::Finish(outcome) = next else {
                unreachable!("the row is left unlocked only by the final update")
            };
            self.record_end(store, &outcome)?;
            faults::at(Point::Finishing, self.id, self.attempt);
            return Ok(StepEnd::Ended);
        };
        match next {
            Next::Finish(outcome) => {
                self.end(store, outcome)?;
                Ok(StepEnd::Ended)
            }
            Next::Reject { detail } => self.rejected(store, context, &detail, locked),
            Next::Verify { .. } => unreachable!("after_verify accepts or rejects"),
            Next::RunTools(calls) => {
                // Calls of needs_approval tools wait for a decision, spawn_subtasks starts
                // tasks; the others run now. Either kind of wait parks the task.
                let mut awaiting_approval = Vec::new();
                let mut spawned = false;
                for c in calls {
                    let tool = self.tools.iter().find(|t| t.name == c.name);
                    if tool.is_some_and(|t| t.needs_approval) {
                        awaiting_approval.push(c);
                    } else if tool.is_some()
                        && Builtin::named(&c.name) == Some(Builtin::SpawnSubtasks)
                    {
                        spawned |= self.spawn(store, &c, turn)?;
                    } else {
                        self.run_tool(store, &c, &attribution)?;
                    }
                }
                if spawned || !awaiting_approval.is_empty() {
                    let status = match awaiting_approval.is_empty() {
                        true => TaskStatus::WaitingSubtasks,
                        false => TaskStatus::WaitingApproval,
                    };
                    store.park(
                        self.id,
                        self.owner,
                        &awaiting_approval,
                        &self.progress,
                        status,
                    )?;
                    return Ok(StepEnd::Parked);
                }
                faults::at(Point::Acted, self.id, self.attempt);
                if let Some(outcome) = agent::after_act(&self.limits, &self.progress) {
                    self.end(store, outcome)?;
                    return Ok(StepEnd::Ended);
                }
                self.continue_loop(store, context, locked)
            }
        }
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

    /// The answer was not accepted: the model is shown why, unless the steps are used up.
    fn rejected(
        &mut self,
        store: &mut Store,
        context: &StepContext,
        detail: &str,
        locked: LockedTask,
    ) -> SpiResult<StepEnd> {
        let item = Item::Verification {
            passed: false,
            detail: detail.to_owned(),
        };
        self.append(store, self.progress.steps_done, item, None, None)?;
        if let Some(outcome) = agent::after_rejection(&self.limits, &self.progress, detail) {
            self.end(store, outcome)?;
            return Ok(StepEnd::Ended);
        }
        self.continue_loop(store, context, locked)
    }

    /// The end of a step that decides again: guidance sent meanwhile is taken in, failures
    /// since the last plan get a revised one (reflect), and a prompt grown near the model's
    /// context window is compacted.
    fn continue_loop(
        &mut self,
        store: &mut Store,
        context: &StepContext,
        locked: LockedTask,
    ) -> SpiResult<StepEnd> {
        let turn = self.progress.steps_done;
        if locked.guidance_pending {
            self.take_guidance(store)?;
        }
        if let Some(plan) = agent::revised_plan(&self.items) {
            let item = Item::Reflection {
                outcome: agent_loop_core::items::REVISED_PLAN.into(),
                lesson: plan,
            };
            self.append(store, turn, item, None, None)?;
        }
        if let Some(window) = context.context_window {
            let estimate = compaction::estimate_tokens(&self.prompt(&context.instructions));
            if let Some(item) = compaction::plan(&self.items, estimate, window.max(1) as usize) {
                self.append(store, turn, item, None, None)?;
            }
        }
        if !locked.progress_saved {
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
        // rows): a copy in steps was 15% of a 1-step task's WAL.
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
