//! The loop as a state machine: perceive → decide → act → (verify) → reflect.
//!
//! The worker owns I/O (SPI, HTTP); this module owns every decision about what happens next, so
//! the rules — when a task succeeds, when a limit ends it, what a model failure means — are
//! stated once and unit-tested without PostgreSQL.

use crate::items::Item;
use crate::task::{Acceptance, Candidate, Failure, Limits, Outcome, Progress};
use crate::vocab::{ErrorClass, ModelError, ModelReply, ToolCallRequest};
use crate::{guards, reflection, schema};

/// What the worker must do next for a task.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Run these tool calls (act), then come back to [`after_act`].
    RunTools(Vec<ToolCallRequest>),
    /// Run the task's check on this answer (verify), then come back to [`after_verify`].
    Verify {
        candidate: Candidate,
        accept_if: String,
    },
    /// The answer was not accepted: show the model why, then ask [`after_rejection`].
    Reject { detail: String },
    /// The server could not parse the model's output: record the error and decide again,
    /// with the `tool_choice` that [`guards::tool_choice`] picks after it. Not a step.
    DecideAgain { error: ModelError },
    /// The task is over; reflect and record the outcome.
    Finish(Outcome),
}

/// Checked before every decide: may another model call start? (A task that resumes after
/// waiting for approval may have used its last step on the calls that waited.)
pub fn before_decide(limits: &Limits, progress: &Progress, now_epoch: f64) -> Option<Outcome> {
    if progress.steps_done >= limits.max_steps {
        return Some(Outcome::Failed(Failure::MaxSteps {
            max_steps: limits.max_steps,
        }));
    }
    if let Some(deadline) = limits.deadline_epoch {
        if now_epoch >= deadline {
            return Some(Outcome::Failed(Failure::Deadline));
        }
    }
    over_budget(limits, progress)
}

fn over_budget(limits: &Limits, progress: &Progress) -> Option<Outcome> {
    let budget = limits.token_budget?;
    let used = progress.usage.input_tokens + progress.usage.output_tokens;
    (used > budget).then_some(Outcome::Failed(Failure::TokenBudget { used, budget }))
}

/// The decide phase returned: the model answered (`Ok`) or every attempt failed (`Err`).
/// `progress` must already count this step; `items` is the log before it.
pub fn after_decide(
    limits: &Limits,
    acceptance: &Acceptance,
    progress: &Progress,
    items: &[Item],
    reply: Result<&ModelReply, &ModelError>,
) -> Next {
    let reply = match reply {
        Ok(reply) => reply,
        Err(error)
            if error.class == ErrorClass::UnparsableOutput && !guards::unparsable_again(items) =>
        {
            return Next::DecideAgain {
                error: error.clone(),
            }
        }
        Err(error) => return Next::Finish(Outcome::Failed(Failure::Model(error.clone()))),
    };
    if !reply.tool_calls.is_empty() {
        // The calls of this step run even when the budget is now spent: the model asked for
        // them with the step it was given, and their results keep the log resumable.
        return Next::RunTools(reply.tool_calls.clone());
    }
    if let Some(outcome) = over_budget(limits, progress) {
        return Next::Finish(outcome);
    }
    let answer = match reply.text.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => text.to_owned(),
        _ => return Next::Finish(Outcome::Failed(Failure::EmptyAnswer)),
    };
    let again =
        |reason: &str| guards::rejections(items, reason) >= guards::SAME_REJECTIONS_BEFORE_FAILING;
    if acceptance.needs_data && !guards::has_tool_result(items) {
        if again(guards::NO_DATA_YET) {
            return Next::Finish(Outcome::Failed(Failure::NoData));
        }
        return Next::Reject {
            detail: guards::NO_DATA_YET.to_owned(),
        };
    }
    let output = match &acceptance.output_schema {
        Some(output_schema) => {
            let checked = schema::parse_answer(&answer)
                .and_then(|value| schema::validate(output_schema, &value).map(|()| value));
            match checked {
                Ok(value) => Some(value),
                Err(detail) => {
                    let detail = format!("{} {detail}", guards::SCHEMA_MISMATCH);
                    if again(guards::SCHEMA_MISMATCH) {
                        return Next::Finish(Outcome::Failed(Failure::SchemaMismatch { detail }));
                    }
                    return Next::Reject { detail };
                }
            }
        }
        None => None,
    };
    let candidate = Candidate { answer, output };
    match &acceptance.accept_if {
        Some(accept_if) => Next::Verify {
            candidate,
            accept_if: accept_if.clone(),
        },
        None => Next::Finish(Outcome::Succeeded(candidate)),
    }
}

/// The task's check ran on `candidate`: `Err` holds why it did not pass.
pub fn after_verify(candidate: Candidate, check: Result<(), String>) -> Next {
    match check {
        Ok(()) => Next::Finish(Outcome::Succeeded(candidate)),
        Err(detail) => Next::Reject { detail },
    }
}

/// An answer was rejected. `None` means decide again; the steps may be used up.
pub fn after_rejection(limits: &Limits, progress: &Progress, detail: &str) -> Option<Outcome> {
    if progress.steps_done >= limits.max_steps {
        return Some(Outcome::Failed(Failure::AnswerRejected {
            detail: detail.to_owned(),
        }));
    }
    over_budget(limits, progress)
}

/// Tool calls in the log that have no result yet: after a wait (for approval, for subtasks),
/// the calls that waited, in the order the model asked for them.
pub fn unanswered_calls(items: &[Item]) -> Vec<ToolCallRequest> {
    let answered: std::collections::HashSet<&str> = items
        .iter()
        .filter_map(|i| match i {
            Item::ToolResult { call_id, .. } => Some(call_id.as_str()),
            _ => None,
        })
        .collect();
    items
        .iter()
        .filter_map(Item::as_tool_call)
        .filter(|call| !answered.contains(call.call_id.as_str()))
        .collect()
}

/// The tool result the model sees for a call a human did not approve: not an error of the
/// tool, a decision to respect.
pub fn rejected_call_output(rejected_by: &str, reason: Option<&str>) -> String {
    let reason = reason
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map_or_else(|| "no reason given".to_owned(), |r| format!("\"{r}\""));
    format!(
        "not run: {rejected_by} rejected this call ({reason}). Do not repeat it as it was; \
         change the plan or finish without it."
    )
}

/// The tool result for an approved call whose tool changed after the approval was asked for
/// (another function, another definition, or no longer needing approval): what was approved
/// is not what would run.
pub fn changed_since_approval(tool: &str) -> String {
    format!(
        "not run: the tool {tool} changed after this call was approved (its function, its \
         definition or its need for approval), so the approval does not cover it. Call it \
         again to ask for a new approval."
    )
}

/// Tool errors since the last revised plan that call for a new one.
pub const TOOL_FAILURES_BEFORE_REPLAN: usize = 2;

/// Failure attribution: whether the log, since the last revised plan, holds repeated tool
/// failures or a rejected answer — then the text of a revised plan to write (reflect) before
/// the next decide, so the model changes strategy instead of repeating itself.
pub fn revised_plan(items: &[Item]) -> Option<String> {
    let since = items
        .iter()
        .rposition(|i| matches!(i, Item::Reflection { outcome, .. } if outcome == crate::items::REVISED_PLAN))
        .map_or(0, |p| p + 1);
    let calls = crate::items::call_arguments(&items[since..]);
    let mut failed_tools = Vec::new();
    let mut rejections = Vec::new();
    for item in &items[since..] {
        match item {
            Item::ToolResult {
                call_id,
                name,
                output,
                is_error: true,
            } => failed_tools.push(reflection::ToolFailure {
                tool: name.clone(),
                arguments: calls
                    .get(call_id.as_str())
                    .copied()
                    .unwrap_or("")
                    .to_owned(),
                error: output.clone(),
            }),
            Item::Verification {
                passed: false,
                detail,
            } => rejections.push(detail.clone()),
            _ => {}
        }
    }
    (failed_tools.len() >= TOOL_FAILURES_BEFORE_REPLAN || !rejections.is_empty())
        .then(|| reflection::revised_plan(&failed_tools, &rejections))
}

/// The act phase finished: every tool call has its result. `None` means decide again.
pub fn after_act(limits: &Limits, progress: &Progress) -> Option<Outcome> {
    if progress.steps_done >= limits.max_steps {
        return Some(Outcome::Failed(Failure::MaxSteps {
            max_steps: limits.max_steps,
        }));
    }
    over_budget(limits, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: Option<&str>, calls: usize) -> ModelReply {
        ModelReply {
            text: text.map(str::to_owned),
            tool_calls: (0..calls)
                .map(|i| ToolCallRequest {
                    call_id: format!("c{i}"),
                    name: "sql_query".into(),
                    arguments: "{}".into(),
                })
                .collect(),
            ..ModelReply::default()
        }
    }

    #[test]
    fn text_without_tool_calls_is_the_final_answer() {
        let next = after_decide(
            &Limits::steps(3),
            &Acceptance::default(),
            &Progress::default(),
            &[],
            Ok(&reply(Some(" 42 "), 0)),
        );
        assert_eq!(
            next,
            Next::Finish(Outcome::Succeeded(Candidate {
                answer: "42".into(),
                output: None
            }))
        );
    }

    #[test]
    fn tool_calls_win_over_text_and_all_run() {
        let next = after_decide(
            &Limits::steps(3),
            &Acceptance::default(),
            &Progress::default(),
            &[],
            Ok(&reply(Some("thinking"), 2)),
        );
        match next {
            Next::RunTools(calls) => assert_eq!(calls.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_reply_fails_instead_of_succeeding_with_nothing() {
        let next = after_decide(
            &Limits::steps(3),
            &Acceptance::default(),
            &Progress::default(),
            &[],
            Ok(&reply(Some("  "), 0)),
        );
        assert_eq!(next, Next::Finish(Outcome::Failed(Failure::EmptyAnswer)));
    }

    #[test]
    fn a_model_error_fails_the_task_with_its_class() {
        let err = ModelError::new(ErrorClass::Transport, "connection refused");
        let Next::Finish(Outcome::Failed(f)) = after_decide(
            &Limits::steps(3),
            &Acceptance::default(),
            &Progress::default(),
            &[],
            Err(&err),
        ) else {
            panic!()
        };
        assert_eq!(f.code(), "model_transport");
        assert!(f.message().contains("connection refused"));
    }

    #[test]
    fn max_steps_ends_the_task_after_the_last_act() {
        let mut progress = Progress {
            steps_done: 1,
            ..Progress::default()
        };
        assert_eq!(after_act(&Limits::steps(2), &progress), None);
        assert_eq!(before_decide(&Limits::steps(2), &progress, 0.0), None);
        progress.steps_done = 2;
        assert_eq!(
            after_act(&Limits::steps(2), &progress).map(|o| match o {
                Outcome::Failed(f) => f.code(),
                _ => String::new(),
            }),
            Some("max_steps_exceeded".to_string())
        );
        assert!(matches!(
            before_decide(&Limits::steps(2), &progress, 0.0),
            Some(Outcome::Failed(Failure::MaxSteps { max_steps: 2 }))
        ));
    }

    #[test]
    fn calls_that_waited_are_found_unanswered_on_resume() {
        let calls = reply(None, 3).tool_calls;
        let (later, now) = (vec![calls[1].clone()], [&calls[0], &calls[2]]);
        let mut items: Vec<Item> = calls.iter().map(Item::tool_call).collect();
        for c in now {
            items.push(Item::ToolResult {
                call_id: c.call_id.clone(),
                name: c.name.clone(),
                output: "ok".into(),
                is_error: false,
            });
        }
        assert_eq!(unanswered_calls(&items), later);
        let text = rejected_call_output("alice", Some(" too risky "));
        assert!(
            text.contains("alice rejected this call (\"too risky\")"),
            "{text}"
        );
        assert!(rejected_call_output("bob", None).contains("no reason given"));
    }

    #[test]
    fn deadline_and_budget_stop_the_next_decide() {
        let mut l = Limits::steps(5);
        l.deadline_epoch = Some(100.0);
        assert_eq!(before_decide(&l, &Progress::default(), 99.0), None);
        assert_eq!(
            before_decide(&l, &Progress::default(), 100.0),
            Some(Outcome::Failed(Failure::Deadline))
        );
        let mut l = Limits::steps(5);
        l.token_budget = Some(10);
        let mut p = Progress::default();
        p.usage.input_tokens = 8;
        p.usage.output_tokens = 3;
        assert!(matches!(
            before_decide(&l, &p, 0.0),
            Some(Outcome::Failed(Failure::TokenBudget {
                used: 11,
                budget: 10
            }))
        ));
    }

    #[test]
    fn structured_output_is_parsed_and_a_mismatch_goes_back_to_the_model() {
        let acceptance = Acceptance {
            output_schema: Some(serde_json::json!({"type": "object", "required": ["n"]})),
            ..Acceptance::default()
        };
        let p = Progress::default();
        let next = after_decide(
            &Limits::steps(3),
            &acceptance,
            &p,
            &[],
            Ok(&reply(Some("{\"n\": 1}"), 0)),
        );
        let Next::Finish(Outcome::Succeeded(c)) = next else {
            panic!("{next:?}")
        };
        assert_eq!(c.output, Some(serde_json::json!({"n": 1})));
        let next = after_decide(
            &Limits::steps(3),
            &acceptance,
            &p,
            &[],
            Ok(&reply(Some("{}"), 0)),
        );
        assert!(
            matches!(&next, Next::Reject { detail } if detail.contains("missing required property \"n\"")),
            "{next:?}"
        );
    }

    #[test]
    fn a_checked_task_verifies_before_it_succeeds_and_fails_when_steps_run_out() {
        let acceptance = Acceptance {
            accept_if: Some("$1 = '8'".into()),
            ..Acceptance::default()
        };
        let mut p = Progress {
            steps_done: 1,
            ..Progress::default()
        };
        let Next::Verify {
            candidate,
            accept_if,
        } = after_decide(
            &Limits::steps(2),
            &acceptance,
            &p,
            &[],
            Ok(&reply(Some("7"), 0)),
        )
        else {
            panic!()
        };
        assert_eq!(accept_if, "$1 = '8'");
        assert!(matches!(
            after_verify(candidate.clone(), Ok(())),
            Next::Finish(Outcome::Succeeded(_))
        ));
        assert_eq!(
            after_verify(candidate, Err("7 <> 8".into())),
            Next::Reject {
                detail: "7 <> 8".into()
            }
        );
        assert_eq!(after_rejection(&Limits::steps(2), &p, "7 <> 8"), None);
        p.steps_done = 2;
        let Some(Outcome::Failed(f)) = after_rejection(&Limits::steps(2), &p, "7 <> 8") else {
            panic!()
        };
        assert_eq!(f.code(), "answer_rejected");
    }

    #[test]
    fn repeated_tool_failures_or_a_rejection_call_for_a_revised_plan_once() {
        let call = |id: &str| Item::ToolCall {
            call_id: id.into(),
            name: "f".into(),
            arguments: "{}".into(),
        };
        let failed = |id: &str| Item::ToolResult {
            call_id: id.into(),
            name: "f".into(),
            output: "boom".into(),
            is_error: true,
        };
        let mut items = vec![call("a"), failed("a")];
        assert_eq!(revised_plan(&items), None, "one failure is not a pattern");
        items.extend([call("b"), failed("b")]);
        let plan = revised_plan(&items).expect("two failures");
        assert!(plan.contains("f failed 2 time(s)"), "{plan}");
        items.push(Item::Reflection {
            outcome: crate::items::REVISED_PLAN.into(),
            lesson: plan,
        });
        assert_eq!(revised_plan(&items), None, "already revised");
        items.push(Item::Verification {
            passed: false,
            detail: "wrong".into(),
        });
        assert!(revised_plan(&items).unwrap().contains("rejected: wrong"));
    }
}
