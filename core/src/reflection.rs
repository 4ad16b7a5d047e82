//! Reflect: the lesson stored when a task ends, recalled by later tasks of the same owner, and
//! the revised plan written mid-task after failures.
//!
//! These are structured summaries: a lesson names the goal, the outcome and the tools used so
//! full-text search can match it to a later goal; a revised plan names what failed and how.

use crate::task::Outcome;
use crate::vocab::one_line;

/// A tool call that returned an error.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolFailure {
    pub tool: String,
    pub arguments: String,
    pub error: String,
}

/// What went wrong since the last plan, and the plan that follows from it.
pub fn revised_plan(tool_failures: &[ToolFailure], rejections: &[String]) -> String {
    let mut wrong = Vec::new();
    let mut plan = Vec::new();
    let mut tools: Vec<&str> = tool_failures.iter().map(|f| f.tool.as_str()).collect();
    tools.dedup();
    for tool in &tools {
        let failures: Vec<&ToolFailure> =
            tool_failures.iter().filter(|f| f.tool == *tool).collect();
        let last = failures.last().expect("grouped from the list");
        wrong.push(format!(
            "{tool} failed {} time(s), last with: {}",
            failures.len(),
            one_line(&last.error, 160)
        ));
        let repeated = failures
            .windows(2)
            .any(|w| w[0].arguments == w[1].arguments);
        if repeated {
            plan.push(format!(
                "stop calling {tool} with the same arguments ({}); they fail every time",
                one_line(&last.arguments, 120)
            ));
        }
    }
    if !tool_failures.is_empty() {
        plan.push(
            "check names, columns and argument types against the tool descriptions before the \
             next call, and reach the goal another way if a tool keeps failing"
                .to_owned(),
        );
    }
    for detail in rejections {
        wrong.push(format!("an answer was rejected: {}", one_line(detail, 200)));
    }
    if !rejections.is_empty() {
        plan.push(
            "give an answer that meets the requirement it failed, checking the data it depends \
             on first"
                .to_owned(),
        );
    }
    format!(
        "What went wrong: {}. Revised plan: {}.",
        wrong.join("; "),
        plan.join("; ")
    )
}

/// The lesson a task ends with. The words of its template are left out of the lesson's
/// lexemes (reflections.lesson_tsv): a change here goes there too.
pub fn lesson(goal: &str, outcome: &Outcome, steps_done: i32, tools_used: &[String]) -> String {
    let goal = one_line(goal, 200);
    let tools = if tools_used.is_empty() {
        "no tools".to_owned()
    } else {
        format!("tools {}", tools_used.join(", "))
    };
    match outcome {
        Outcome::Succeeded(candidate) => format!(
            "Goal \"{goal}\" succeeded in {steps_done} step(s) using {tools}. Answer: {}",
            one_line(&candidate.answer, 200)
        ),
        Outcome::Failed(failure) => format!(
            "Goal \"{goal}\" failed ({}) after {steps_done} step(s) using {tools}: {}",
            failure.code(),
            one_line(&failure.message(), 200)
        ),
    }
}

pub fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded(_) => "succeeded",
        Outcome::Failed(_) => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Candidate, Failure};

    #[test]
    fn a_revised_plan_names_the_failures_and_what_changes() {
        let failure = |args: &str| ToolFailure {
            tool: "sql_query".into(),
            arguments: args.into(),
            error: "relation \"orderz\" does not exist".into(),
        };
        let plan = revised_plan(&[failure("{\"q\":1}"), failure("{\"q\":1}")], &[]);
        assert!(plan.starts_with("What went wrong: sql_query failed 2 time(s), last with: relation \"orderz\" does not exist."), "{plan}");
        assert!(
            plan.contains("stop calling sql_query with the same arguments"),
            "{plan}"
        );
        let plan = revised_plan(&[], &["the check returned false".into()]);
        assert!(
            plan.contains("an answer was rejected: the check returned false"),
            "{plan}"
        );
        assert!(!plan.contains("stop calling"), "{plan}");
    }

    #[test]
    fn lessons_name_goal_outcome_and_tools() {
        let ok = lesson(
            "Count\n the orders",
            &Outcome::Succeeded(Candidate {
                answer: "3".into(),
                output: None,
            }),
            2,
            &["sql_query".into()],
        );
        assert_eq!(
            ok,
            "Goal \"Count the orders\" succeeded in 2 step(s) using tools sql_query. Answer: 3"
        );
        let failed = lesson(
            "g",
            &Outcome::Failed(Failure::MaxSteps { max_steps: 2 }),
            2,
            &[],
        );
        assert!(
            failed.contains("failed (max_steps_exceeded)") && failed.contains("no tools"),
            "{failed}"
        );
    }
}
