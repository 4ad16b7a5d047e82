//! The loop as a state machine: perceive → decide → act → (verify) → reflect.
//!
//! The worker owns I/O (SPI, HTTP); this module owns every decision about what happens next, so
//! the rules — when a task succeeds, when a limit ends it, what a model failure means — are
//! stated once and unit-tested without PostgreSQL.

use crate::items::Phase;
use crate::model::{ModelError, ModelReply, ToolCallRequest, Usage};

/// The limits a task was submitted with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// How many decide phases (model calls that succeeded) the task may use.
    pub max_steps: i32,
    /// Total tokens (input + output) the task may spend; `None` is unlimited.
    pub token_budget: Option<i64>,
    /// Seconds since the Unix epoch after which no new step starts; `None` is no deadline.
    pub deadline_epoch: Option<f64>,
}

/// How far a task has got.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    pub steps_done: i32,
    pub usage: Usage,
}

impl Progress {
    pub fn add(&mut self, usage: &Usage) {
        self.usage.add(usage);
    }
}

/// Why a task ended without an accepted answer. The code is the `tasks.error_code` value.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    MaxSteps { max_steps: i32 },
    TokenBudget { used: i64, budget: i64 },
    Deadline,
    Model(ModelError),
    EmptyAnswer,
    Internal(String),
}

impl Failure {
    pub fn code(&self) -> String {
        match self {
            Failure::MaxSteps { .. } => "max_steps_exceeded".into(),
            Failure::TokenBudget { .. } => "token_budget_exceeded".into(),
            Failure::Deadline => "deadline_exceeded".into(),
            Failure::Model(e) => format!("model_{}", e.class.as_str()),
            Failure::EmptyAnswer => "model_empty_answer".into(),
            Failure::Internal(_) => "internal_error".into(),
        }
    }

    /// The loop phase the failure is recorded under in the step log.
    pub fn phase(&self) -> Phase {
        match self {
            Failure::MaxSteps { .. } | Failure::Internal(_) => Phase::Act,
            _ => Phase::Decide,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Failure::MaxSteps { max_steps } => {
                format!("the task used all {max_steps} steps without a final answer")
            }
            Failure::TokenBudget { used, budget } => {
                format!("the task used {used} tokens, over its budget of {budget}")
            }
            Failure::Deadline => "the task passed its deadline".into(),
            Failure::Model(e) => e.to_string(),
            Failure::EmptyAnswer => "the model returned neither text nor tool calls".into(),
            Failure::Internal(m) => m.clone(),
        }
    }
}

/// How a task ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Succeeded { answer: String },
    Failed(Failure),
}

/// What the worker must do next for a task.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Run these tool calls (act), then come back to [`after_act`].
    RunTools(Vec<ToolCallRequest>),
    /// The task is over; reflect and record the outcome.
    Finish(Outcome),
}

/// Checked before every decide: may another model call start?
pub fn before_decide(limits: &Limits, progress: &Progress, now_epoch: f64) -> Option<Outcome> {
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
/// `progress` must already count this step.
pub fn after_decide(
    limits: &Limits,
    progress: &Progress,
    reply: Result<&ModelReply, &ModelError>,
) -> Next {
    let reply = match reply {
        Ok(reply) => reply,
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
    match reply.text.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => Next::Finish(Outcome::Succeeded {
            answer: text.to_owned(),
        }),
        _ => Next::Finish(Outcome::Failed(Failure::EmptyAnswer)),
    }
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
    use crate::model::ErrorClass;

    fn limits(max_steps: i32) -> Limits {
        Limits {
            max_steps,
            ..Limits::default()
        }
    }

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
            &limits(3),
            &Progress::default(),
            Ok(&reply(Some(" 42 "), 0)),
        );
        assert_eq!(
            next,
            Next::Finish(Outcome::Succeeded {
                answer: "42".into()
            })
        );
    }

    #[test]
    fn tool_calls_win_over_text_and_all_run() {
        let next = after_decide(
            &limits(3),
            &Progress::default(),
            Ok(&reply(Some("thinking"), 2)),
        );
        match next {
            Next::RunTools(calls) => assert_eq!(calls.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_reply_fails_instead_of_succeeding_with_nothing() {
        let next = after_decide(&limits(3), &Progress::default(), Ok(&reply(Some("  "), 0)));
        assert_eq!(next, Next::Finish(Outcome::Failed(Failure::EmptyAnswer)));
    }

    #[test]
    fn a_model_error_fails_the_task_with_its_class() {
        let err = ModelError::new(ErrorClass::Transport, "connection refused");
        let Next::Finish(Outcome::Failed(f)) =
            after_decide(&limits(3), &Progress::default(), Err(&err))
        else {
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
        assert_eq!(after_act(&limits(2), &progress), None);
        progress.steps_done = 2;
        assert_eq!(
            after_act(&limits(2), &progress).map(|o| match o {
                Outcome::Failed(f) => f.code(),
                _ => String::new(),
            }),
            Some("max_steps_exceeded".to_string())
        );
    }

    #[test]
    fn deadline_and_budget_stop_the_next_decide() {
        let mut l = limits(5);
        l.deadline_epoch = Some(100.0);
        assert_eq!(before_decide(&l, &Progress::default(), 99.0), None);
        assert_eq!(
            before_decide(&l, &Progress::default(), 100.0),
            Some(Outcome::Failed(Failure::Deadline))
        );
        let mut l = limits(5);
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
}
