//! Reflect: the lesson stored when a task ends, recalled by later tasks of the same owner.
//!
//! This is the structured summary; it names the goal, the outcome and the tools that were used
//! so full-text search can match it to a later goal.

use crate::agent::Outcome;

pub fn lesson(goal: &str, outcome: &Outcome, steps_done: i32, tools_used: &[String]) -> String {
    let goal = one_line(goal, 200);
    let tools = if tools_used.is_empty() {
        "no tools".to_owned()
    } else {
        format!("tools {}", tools_used.join(", "))
    };
    match outcome {
        Outcome::Succeeded { answer } => format!(
            "Goal \"{goal}\" succeeded in {steps_done} step(s) using {tools}. Answer: {}",
            one_line(answer, 200)
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
        Outcome::Succeeded { .. } => "succeeded",
        Outcome::Failed(_) => "failed",
    }
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::model::truncate(&flat, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Failure;

    #[test]
    fn lessons_name_goal_outcome_and_tools() {
        let ok = lesson(
            "Count\n the orders",
            &Outcome::Succeeded { answer: "3".into() },
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
