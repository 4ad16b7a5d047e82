//! The step as a plan: from a task's state and its model's answer, one value that says
//! everything the step writes — how the task row is written first, the rows appended, what
//! becomes of each tool call, and what follows. The worker carries it out in the step's
//! transaction; this module decides, and its WAL-saving choices are unit-tested here.

use crate::accounting::Prices;
use crate::agent::{self, Next};
use crate::guards;
use crate::items::{Item, Phase, REVISED_PLAN};
use crate::lifecycle::TaskStatus;
use crate::task::{Acceptance, Candidate, Failure, Limits, Outcome, Progress};
use crate::tools::Builtin;
use crate::vocab::{CallOutcome, ToolCallRequest};

/// How the step first writes the task's row. Every step holds the row locked from its first
/// write, so a concurrent cancel() or send() waits for it or is seen by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowWrite {
    /// The final update ends the task and locks the row in one write (a lock first would be
    /// one more WAL record per task).
    Finish,
    /// Lock the row and save the progress with it: a step that runs tools most likely
    /// continues, and one write replaces a lock and a later update.
    LockSavingProgress,
    /// Lock the row only; a step that then continues saves the progress at its end.
    Lock,
}

/// What becomes of one tool call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Run it now, as the task's owner (act).
    Run,
    /// Its tool needs approval: the call waits for a decision, the task parks.
    AwaitApproval,
    /// spawn_subtasks: start subtasks, the task parks until they end.
    SpawnSubtasks,
    /// The same call, with the same arguments, as an earlier one: not run again; its result
    /// says so (`guards::repeated_call_output`), and the next answer must be text.
    Repeated,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PlannedCall {
    pub call: ToolCallRequest,
    pub disposition: Disposition,
}

/// What the step does once its rows are written.
#[derive(Clone, Debug, PartialEq)]
pub enum Then {
    /// The task ends with this outcome (reflect).
    End(Outcome),
    /// The answer was rejected (its verification row is among the step's rows): the task ends
    /// with `end` when it has no step left for another answer, else decides again.
    Rejected { end: Option<Outcome> },
    /// Carry out these calls, in order, then ask [`after_calls`].
    Calls(Vec<PlannedCall>),
    /// The model's output could not be parsed (the error is among the step's rows): decide
    /// again, with another `tool_choice`.
    DecideAgain,
}

/// Everything one step does.
#[derive(Clone, Debug, PartialEq)]
pub struct StepPlan {
    /// The step's number (`steps.turn` of its rows).
    pub turn: i32,
    /// The task's progress once the step is done.
    pub progress: Progress,
    /// What the model call cost, at the model's prices.
    pub cost: Option<f64>,
    pub row: RowWrite,
    /// The rows to append, in order: failed attempts, the answer (reasoning, text, tool calls),
    /// the verification of a final answer.
    pub rows: Vec<Item>,
    /// The row of `rows` that carries the model call's usage, cost and latency.
    pub metered_row: Option<usize>,
    pub then: Then,
}

/// The task as a step sees it.
pub struct TaskState<'a> {
    pub limits: &'a Limits,
    pub acceptance: &'a Acceptance,
    pub progress: &'a Progress,
    /// The log before this step.
    pub items: &'a [Item],
    /// Whether a tool of the task needs approval; `None` for a name that is not its tool.
    pub needs_approval: &'a dyn Fn(&str) -> Option<bool>,
}

/// Plans the step for the model's answer `call`. `check` runs the task's `accept_if` on a
/// final answer (read-only, as the owner) and says why it failed.
pub fn plan(
    task: &TaskState<'_>,
    call: &CallOutcome,
    prices: Option<Prices>,
    mut check: impl FnMut(&str, &Candidate) -> Result<(), String>,
) -> StepPlan {
    let turn = task.progress.steps_done + 1;
    let is_tool = |name: &str| (task.needs_approval)(name).is_some();
    // A call written out as text is taken as the call it spells.
    let spelled =
        (call.result.as_ref().ok()).and_then(|reply| guards::call_in_text(reply, turn, &is_tool));
    let result = match &spelled {
        Some(reply) => Ok(reply),
        None => call.result.as_ref(),
    };
    let reply = result.ok();
    let cost = reply.and_then(|r| prices.map(|p| p.cost(&r.usage)));
    let mut progress = task.progress.clone();
    if let Some(reply) = reply {
        progress.steps_done = turn;
        progress.add(&reply.usage, cost.unwrap_or(0.0));
    }
    let mut rows: Vec<Item> = (call.failed_attempts.iter())
        .map(|failed| Item::Error {
            phase: Phase::Decide,
            class: failed.class.as_str().into(),
            message: format!("{failed} (retried)"),
        })
        .collect();
    let mut metered_row = None;
    if let Some(reply) = reply {
        let answer = rows.len();
        rows.extend(reply.reasoning.iter().cloned().map(Item::Reasoning));
        if let Some(text) = reply.text.as_ref().filter(|t| !t.trim().is_empty()) {
            rows.push(Item::AssistantMessage { text: text.clone() });
        }
        rows.extend(reply.tool_calls.iter().map(Item::tool_call));
        metered_row = (rows.len() > answer).then_some(answer);
    }
    let next = agent::after_decide(task.limits, task.acceptance, &progress, task.items, result);
    let (row, then) = settle(task, &progress, next, &mut rows, &mut check);
    StepPlan {
        turn,
        progress,
        cost,
        row,
        rows,
        metered_row,
        then,
    }
}

/// How the row is written and what follows, for what after_decide said; a final answer with a
/// check is checked first (`check`), and its verification row joins `rows`.
fn settle(
    task: &TaskState<'_>,
    progress: &Progress,
    next: Next,
    rows: &mut Vec<Item>,
    check: &mut dyn FnMut(&str, &Candidate) -> Result<(), String>,
) -> (RowWrite, Then) {
    match next {
        Next::Finish(outcome) => (RowWrite::Finish, Then::End(outcome)),
        Next::DecideAgain { error } => {
            rows.push(Item::Error {
                phase: Phase::Decide,
                class: error.class.as_str().into(),
                message: error.to_string(),
            });
            (RowWrite::Lock, Then::DecideAgain)
        }
        Next::Reject { detail } => {
            // The same reason again and again: the model is not getting it.
            let end = if guards::rejections(task.items, &detail)
                >= guards::SAME_REJECTIONS_BEFORE_FAILING
            {
                Some(Outcome::Failed(Failure::RejectedAgain {
                    detail: detail.clone(),
                }))
            } else {
                agent::after_rejection(task.limits, progress, &detail)
            };
            rows.push(Item::Verification {
                passed: false,
                detail,
            });
            (RowWrite::Lock, Then::Rejected { end })
        }
        Next::RunTools(calls) => {
            let repeats: Vec<usize> = (calls.iter())
                .map(|call| guards::earlier_identical(task.items, call))
                .collect();
            if let Some(i) = repeats
                .iter()
                .position(|&n| n >= guards::REPEATS_BEFORE_FAILING)
            {
                let tool = calls[i].name.clone();
                return (
                    RowWrite::Finish,
                    Then::End(Outcome::Failed(Failure::RepeatedCall { tool })),
                );
            }
            let calls = (calls.into_iter().zip(repeats))
                .map(|(call, repeats)| PlannedCall {
                    disposition: if repeats > 0 {
                        Disposition::Repeated
                    } else {
                        disposition(task, &call.name)
                    },
                    call,
                })
                .collect();
            (RowWrite::LockSavingProgress, Then::Calls(calls))
        }
        Next::Verify {
            candidate,
            accept_if,
        } => {
            let checked = check(&accept_if, &candidate);
            if checked.is_ok() {
                rows.push(Item::Verification {
                    passed: true,
                    detail: format!("the check {} holds", accept_if.trim()),
                });
            }
            // after_verify accepts or rejects: no second check.
            let next = agent::after_verify(candidate, checked);
            settle(task, progress, next, rows, check)
        }
    }
}

fn disposition(task: &TaskState<'_>, tool: &str) -> Disposition {
    match (task.needs_approval)(tool) {
        Some(true) => Disposition::AwaitApproval,
        Some(false) if Builtin::named(tool) == Some(Builtin::SpawnSubtasks) => {
            Disposition::SpawnSubtasks
        }
        // A name that is no tool of the task runs too: its result says so, to the model.
        _ => Disposition::Run,
    }
}

/// What follows the calls of a step.
#[derive(Clone, Debug, PartialEq)]
pub enum AfterCalls {
    /// The task waits, without a worker, in this status.
    Park(TaskStatus),
    End(Outcome),
    /// Decide again.
    Continue,
}

/// The calls are carried out: `awaiting_approval` calls wait for a decision, `spawned` says
/// whether subtasks were started (a spawn whose arguments were unusable started none).
pub fn after_calls(
    limits: &Limits,
    progress: &Progress,
    awaiting_approval: bool,
    spawned: bool,
) -> AfterCalls {
    if awaiting_approval {
        return AfterCalls::Park(TaskStatus::WaitingApproval);
    }
    if spawned {
        return AfterCalls::Park(TaskStatus::WaitingSubtasks);
    }
    match agent::after_act(limits, progress) {
        Some(outcome) => AfterCalls::End(outcome),
        None => AfterCalls::Continue,
    }
}

/// The rows a step that decides again ends with (reflect): a revised plan when the log,
/// since the last one, shows repeated failures or a rejected answer.
pub fn before_next_decide(items: &[Item]) -> Option<Item> {
    agent::revised_plan(items).map(|lesson| Item::Reflection {
        outcome: REVISED_PLAN.into(),
        lesson,
    })
}

/// Whether guidance that waited when the step locked the row reopens it: a final answer given
/// without the message is set aside and the model decides again with it, when a step is left.
/// (A failure ends the task whatever the message says.)
pub fn guidance_reopens(plan: &StepPlan, limits: &Limits) -> bool {
    matches!(plan.then, Then::End(Outcome::Succeeded(_)))
        && plan.progress.steps_done < limits.max_steps
}

/// Whether the task row still needs its progress saved when the step continues.
pub fn saves_progress_at_end(plan: &StepPlan) -> bool {
    plan.row != RowWrite::LockSavingProgress
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Failure;
    use crate::vocab::{ErrorClass, ModelError, ModelReply, Usage};
    use std::time::Duration;

    fn answer(text: Option<&str>, calls: &[&str]) -> CallOutcome {
        CallOutcome {
            result: Ok(ModelReply {
                text: text.map(str::to_owned),
                tool_calls: calls
                    .iter()
                    .enumerate()
                    .map(|(i, name)| ToolCallRequest {
                        call_id: format!("c{i}"),
                        name: (*name).into(),
                        arguments: "{}".into(),
                    })
                    .collect(),
                usage: Usage {
                    input_tokens: 100,
                    output_tokens: 10,
                    ..Usage::default()
                },
                ..ModelReply::default()
            }),
            failed_attempts: vec![],
            latency: Duration::from_millis(5),
        }
    }

    fn tools(name: &str) -> Option<bool> {
        match name {
            "sql_query" | "spawn_subtasks" => Some(false),
            "refund" => Some(true),
            _ => None,
        }
    }

    fn plan_for(call: &CallOutcome, acceptance: &Acceptance, max_steps: i32) -> StepPlan {
        plan_after(&[], call, acceptance, max_steps)
    }

    fn plan_after(
        items: &[Item],
        call: &CallOutcome,
        acceptance: &Acceptance,
        max_steps: i32,
    ) -> StepPlan {
        let limits = Limits::steps(max_steps);
        let task = TaskState {
            limits: &limits,
            acceptance,
            progress: &Progress::default(),
            items,
            needs_approval: &tools,
        };
        plan(&task, call, None, |_, c| match c.answer.as_str() {
            "42" => Ok(()),
            other => Err(format!("{other} is not 42")),
        })
    }

    #[test]
    fn a_step_that_ends_the_task_writes_the_row_once_with_its_final_update() {
        let plan = plan_for(&answer(Some("done"), &[]), &Acceptance::default(), 5);
        assert_eq!(plan.row, RowWrite::Finish);
        assert!(matches!(plan.then, Then::End(Outcome::Succeeded(_))));
        let failed = CallOutcome {
            result: Err(ModelError::new(ErrorClass::Auth, "no")),
            failed_attempts: vec![],
            latency: Duration::ZERO,
        };
        let plan = plan_for(&failed, &Acceptance::default(), 5);
        assert_eq!(plan.row, RowWrite::Finish);
        assert_eq!(plan.progress.steps_done, 0, "a failed call uses no step");
        assert!(matches!(
            plan.then,
            Then::End(Outcome::Failed(Failure::Model(_)))
        ));
    }

    #[test]
    fn a_step_that_runs_tools_saves_its_progress_when_it_locks_the_row() {
        let plan = plan_for(&answer(None, &["sql_query"]), &Acceptance::default(), 5);
        assert_eq!(plan.row, RowWrite::LockSavingProgress);
        assert!(
            !saves_progress_at_end(&plan),
            "one write to the row, not two"
        );
        assert_eq!(plan.progress.steps_done, 1);
        assert_eq!(plan.progress.usage.input_tokens, 100);
    }

    #[test]
    fn usage_goes_on_the_first_row_of_the_answer() {
        let mut call = answer(Some("thinking aloud"), &["sql_query"]);
        call.failed_attempts = vec![ModelError::new(ErrorClass::Server, "503")];
        let plan = plan_for(&call, &Acceptance::default(), 5);
        let kinds: Vec<&str> = plan.rows.iter().map(Item::kind).collect();
        assert_eq!(kinds, ["error", "message", "tool_call"]);
        assert_eq!(plan.metered_row, Some(1));
    }

    #[test]
    fn each_call_gets_the_disposition_of_its_tool() {
        let call = answer(None, &["sql_query", "refund", "spawn_subtasks", "nope"]);
        let Then::Calls(calls) = plan_for(&call, &Acceptance::default(), 5).then else {
            panic!("calls planned")
        };
        let dispositions: Vec<Disposition> = calls.iter().map(|c| c.disposition).collect();
        assert_eq!(
            dispositions,
            [
                Disposition::Run,
                Disposition::AwaitApproval,
                Disposition::SpawnSubtasks,
                Disposition::Run
            ]
        );
    }

    #[test]
    fn a_rejected_answer_locks_only_and_is_shown_to_the_model() {
        let acceptance = Acceptance {
            accept_if: Some("answer = '42'".into()),
            ..Acceptance::default()
        };
        let plan = plan_for(&answer(Some("41"), &[]), &acceptance, 5);
        assert_eq!(plan.row, RowWrite::Lock);
        assert!(saves_progress_at_end(&plan));
        assert_eq!(plan.then, Then::Rejected { end: None });
        assert!(matches!(
            plan.rows.last(),
            Some(Item::Verification { passed: false, detail }) if detail == "41 is not 42"
        ));
        let last_step = plan_for(&answer(Some("41"), &[]), &acceptance, 1);
        assert!(matches!(
            last_step.then,
            Then::Rejected {
                end: Some(Outcome::Failed(Failure::AnswerRejected { .. }))
            }
        ));
        let accepted = plan_for(&answer(Some("42"), &[]), &acceptance, 5);
        assert_eq!(accepted.row, RowWrite::Finish);
        assert!(matches!(
            accepted.rows.last(),
            Some(Item::Verification { passed: true, .. })
        ));
    }

    #[test]
    fn a_call_written_as_text_runs_as_that_call() {
        let text = r#"{"name": "sql_query", "arguments": {"query": "SELECT 1"}}"#;
        let plan = plan_for(&answer(Some(text), &[]), &Acceptance::default(), 5);
        let Then::Calls(calls) = &plan.then else {
            panic!("{:?}", plan.then)
        };
        assert_eq!(calls[0].call.name, "sql_query");
        let kinds: Vec<&str> = plan.rows.iter().map(Item::kind).collect();
        assert_eq!(kinds, ["tool_call"], "logged as the call, not as an answer");
        let unknown = r#"{"name": "telepathy", "arguments": {}}"#;
        let plan = plan_for(&answer(Some(unknown), &[]), &Acceptance::default(), 5);
        assert!(
            matches!(plan.then, Then::End(Outcome::Succeeded(_))),
            "not a tool: an answer"
        );
    }

    #[test]
    fn a_repeated_call_is_not_run_and_its_second_repeat_ends_the_task() {
        let first = answer(None, &["sql_query"]);
        let asked = first.result.as_ref().unwrap().tool_calls[0].clone();
        let mut items = vec![Item::tool_call(&asked)];
        let mut again = answer(None, &["sql_query"]);
        again.result.as_mut().unwrap().tool_calls[0].call_id = "c9".into();
        let Then::Calls(calls) = plan_after(&items, &again, &Acceptance::default(), 5).then else {
            panic!("calls planned")
        };
        assert_eq!(calls[0].disposition, Disposition::Repeated);
        items.push(Item::tool_call(&calls[0].call));
        again.result.as_mut().unwrap().tool_calls[0].call_id = "c10".into();
        let plan = plan_after(&items, &again, &Acceptance::default(), 5);
        assert_eq!(plan.row, RowWrite::Finish);
        assert_eq!(
            plan.then,
            Then::End(Outcome::Failed(Failure::RepeatedCall {
                tool: "sql_query".into()
            }))
        );
    }

    #[test]
    fn an_answer_rejected_for_the_same_reason_a_third_time_ends_the_task() {
        let acceptance = Acceptance {
            accept_if: Some("answer = '42'".into()),
            ..Acceptance::default()
        };
        let mut items = Vec::new();
        for _ in 0..guards::SAME_REJECTIONS_BEFORE_FAILING {
            let plan = plan_after(&items, &answer(Some("41"), &[]), &acceptance, 9);
            assert_eq!(plan.then, Then::Rejected { end: None });
            items.extend(plan.rows);
        }
        let plan = plan_after(&items, &answer(Some("41"), &[]), &acceptance, 9);
        assert!(matches!(
            plan.then,
            Then::Rejected {
                end: Some(Outcome::Failed(Failure::RejectedAgain { .. }))
            }
        ));
        let other = plan_after(&items, &answer(Some("40"), &[]), &acceptance, 9);
        assert_eq!(other.then, Then::Rejected { end: None }, "another reason");
    }

    #[test]
    fn an_answer_from_nothing_is_sent_back_then_fails_the_task() {
        let needs_data = Acceptance {
            needs_data: true,
            ..Acceptance::default()
        };
        let mut items = Vec::new();
        for _ in 0..guards::SAME_REJECTIONS_BEFORE_FAILING {
            let plan = plan_after(&items, &answer(Some("made up"), &[]), &needs_data, 9);
            assert_eq!(plan.then, Then::Rejected { end: None });
            items.extend(plan.rows);
        }
        let plan = plan_after(&items, &answer(Some("made up"), &[]), &needs_data, 9);
        assert_eq!(plan.then, Then::End(Outcome::Failed(Failure::NoData)));
        items.push(Item::ToolResult {
            call_id: "c0".into(),
            name: "sql_query".into(),
            output: "[{\"n\": 3}]".into(),
            is_error: false,
        });
        let plan = plan_after(&items, &answer(Some("3"), &[]), &needs_data, 9);
        assert!(matches!(plan.then, Then::End(Outcome::Succeeded(_))));
    }

    #[test]
    fn unparsable_output_decides_again_once_without_using_a_step() {
        let unparsable = CallOutcome {
            result: Err(ModelError::new(ErrorClass::UnparsableOutput, "HTTP 500")),
            failed_attempts: vec![],
            latency: Duration::ZERO,
        };
        let plan = plan_for(&unparsable, &Acceptance::default(), 5);
        assert_eq!((plan.row, &plan.then), (RowWrite::Lock, &Then::DecideAgain));
        assert_eq!(plan.progress.steps_done, 0);
        let again = plan_after(&plan.rows, &unparsable, &Acceptance::default(), 5);
        assert!(matches!(
            again.then,
            Then::End(Outcome::Failed(Failure::Model(ModelError {
                class: ErrorClass::UnparsableOutput,
                ..
            })))
        ));
    }

    #[test]
    fn waiting_guidance_reopens_a_final_answer_while_a_step_is_left() {
        let answered = plan_for(&answer(Some("done"), &[]), &Acceptance::default(), 5);
        assert!(guidance_reopens(&answered, &Limits::steps(5)));
        assert!(
            saves_progress_at_end(&answered),
            "reopened, it saves its progress"
        );
        assert!(
            !guidance_reopens(&answered, &Limits::steps(1)),
            "no step left"
        );
        let failed = CallOutcome {
            result: Err(ModelError::new(ErrorClass::Auth, "no")),
            failed_attempts: vec![],
            latency: Duration::ZERO,
        };
        let failed = plan_for(&failed, &Acceptance::default(), 5);
        assert!(!guidance_reopens(&failed, &Limits::steps(5)));
        let tools = plan_for(&answer(None, &["sql_query"]), &Acceptance::default(), 5);
        assert!(
            !guidance_reopens(&tools, &Limits::steps(5)),
            "it continues anyway"
        );
    }

    #[test]
    fn calls_that_wait_park_the_task_and_approval_wins() {
        let (l, p) = (Limits::steps(5), Progress::default());
        assert_eq!(
            after_calls(&l, &p, true, true),
            AfterCalls::Park(TaskStatus::WaitingApproval)
        );
        assert_eq!(
            after_calls(&l, &p, false, true),
            AfterCalls::Park(TaskStatus::WaitingSubtasks)
        );
        assert_eq!(after_calls(&l, &p, false, false), AfterCalls::Continue);
        let spent = Progress {
            steps_done: 5,
            ..Progress::default()
        };
        assert!(matches!(
            after_calls(&l, &spent, false, false),
            AfterCalls::End(Outcome::Failed(Failure::MaxSteps { .. }))
        ));
    }
}
