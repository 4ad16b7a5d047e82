//! A task as the loop sees it: the limits it was submitted with, what its answer must satisfy,
//! how far it has got, and how it ended.

use serde_json::Value;

use crate::items::Phase;
use crate::vocab::{ModelError, Usage};

/// The limits a task was submitted with.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// How many decide phases (model calls that succeeded) the task may use.
    pub max_steps: i32,
    /// Total tokens (input + output) the task may spend; `None` is unlimited.
    pub token_budget: Option<i64>,
    /// Seconds since the Unix epoch after which no new step starts; `None` is no deadline.
    pub deadline_epoch: Option<f64>,
}

impl Limits {
    /// `max_steps` steps and no other limit.
    pub fn steps(max_steps: i32) -> Limits {
        Limits {
            max_steps,
            ..Limits::default()
        }
    }
}

/// What a final answer must satisfy before it is accepted.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Acceptance {
    /// JSON Schema the answer must match (structured output).
    pub output_schema: Option<Value>,
    /// A boolean SQL expression the worker runs on the answer (`accept_if`).
    pub accept_if: Option<String>,
    /// The answer must rest on a tool's result (`require_tool_use`): an answer given before
    /// any tool call has one is sent back (see `guards`).
    pub needs_data: bool,
}

/// A final answer waiting to be accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub answer: String,
    /// The answer read as JSON, when the task asked for structured output.
    pub output: Option<Value>,
}

/// How far a task has got.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub steps_done: i32,
    pub usage: Usage,
    /// What the model calls cost so far, at the model's prices (0 without prices).
    pub cost: f64,
}

impl Progress {
    pub fn add(&mut self, usage: &Usage, cost: f64) {
        self.usage.add(usage);
        self.cost += cost;
    }
}

/// Why a task ended without an accepted answer. The code is the `tasks.error_code` value.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    MaxSteps {
        max_steps: i32,
    },
    TokenBudget {
        used: i64,
        budget: i64,
    },
    Deadline,
    Model(ModelError),
    EmptyAnswer,
    /// The last answer the steps allowed was not accepted.
    AnswerRejected {
        detail: String,
    },
    /// The model's answer kept being rejected for the same reason (by `accept_if`).
    RejectedAgain {
        detail: String,
    },
    /// The model kept answering without data from a tool, though the task needs it.
    NoData,
    /// The model kept answering in a shape its `output_schema` does not allow.
    SchemaMismatch {
        detail: String,
    },
    /// The model kept making a call it had made before, with the same arguments.
    RepeatedCall {
        tool: String,
    },
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
            Failure::AnswerRejected { .. } | Failure::RejectedAgain { .. } => {
                "answer_rejected".into()
            }
            Failure::NoData => "answer_without_data".into(),
            Failure::SchemaMismatch { .. } => "answer_schema_mismatch".into(),
            Failure::RepeatedCall { .. } => "repeated_tool_call".into(),
            Failure::Internal(_) => "internal_error".into(),
        }
    }

    /// The loop phase the failure is recorded under in the step log.
    pub fn phase(&self) -> Phase {
        match self {
            Failure::MaxSteps { .. } | Failure::Internal(_) => Phase::Act,
            Failure::AnswerRejected { .. }
            | Failure::RejectedAgain { .. }
            | Failure::NoData
            | Failure::SchemaMismatch { .. } => Phase::Verify,
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
            Failure::AnswerRejected { detail } => {
                format!("the task used all its steps; its last answer was not accepted: {detail}")
            }
            Failure::RejectedAgain { detail } => format!(
                "the model's answer was rejected {} times for the same reason: {detail}",
                crate::guards::SAME_REJECTIONS_BEFORE_FAILING + 1
            ),
            Failure::NoData => format!(
                "the model answered without data from a tool {} times; the task needs it",
                crate::guards::SAME_REJECTIONS_BEFORE_FAILING + 1
            ),
            Failure::SchemaMismatch { detail } => format!(
                "the model's answer did not match output_schema {} times; the last: {detail}",
                crate::guards::SAME_REJECTIONS_BEFORE_FAILING + 1
            ),
            Failure::RepeatedCall { tool } => format!(
                "the model called {tool} with the same arguments {} times",
                crate::guards::REPEATS_BEFORE_FAILING + 1
            ),
            Failure::Internal(m) => m.clone(),
        }
    }
}

/// How a task ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Succeeded(Candidate),
    Failed(Failure),
}
