//! Fault injection for the durability tests: `agent_loop.fault_injection` names points in a
//! task's life where the worker crashes, raises an error or panics, so a test can break a step
//! at an exact place instead of hoping a `kill -9` lands there.
//!
//! The setting is a comma-separated list of `point:action:task_id`. A fault fires only during
//! the task's first claim (`attempts = 1`): the claim commits before any point is reached, so a
//! task resumed after the fault passes the same point unharmed and the test ends.

use std::fmt;

/// Places in a task's life, in the order a step passes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Inside the claiming transaction, while the lessons of its fresh tasks are recalled
    /// together (in a subtransaction: a fault there leaves each task to recall alone).
    Recalling,
    /// Inside the claiming transaction, while a claimed task is prepared (tools, log, recall,
    /// its perceive row); nothing committed.
    Preparing,
    /// The claiming transaction committed (goal and perceive written); no model call yet.
    Claimed,
    /// A model answer arrived; its step transaction has not begun.
    Decided,
    /// Inside the step transaction: the tool calls ran, nothing is committed.
    Acted,
    /// A step transaction that continues the task committed.
    Stepped,
    /// Inside the final transaction: result and reflection written, not committed.
    Finishing,
    /// The final transaction committed; waiters not yet woken.
    Finished,
}

impl Point {
    const ALL: [Point; 8] = [
        Point::Recalling,
        Point::Preparing,
        Point::Claimed,
        Point::Decided,
        Point::Acted,
        Point::Stepped,
        Point::Finishing,
        Point::Finished,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Point::Recalling => "recalling",
            Point::Preparing => "preparing",
            Point::Claimed => "claimed",
            Point::Decided => "decided",
            Point::Acted => "acted",
            Point::Stepped => "stepped",
            Point::Finishing => "finishing",
            Point::Finished => "finished",
        }
    }

    /// Whether the point lies inside a transaction, where an error or a panic can be caught
    /// and rolled back.
    pub fn in_transaction(self) -> bool {
        matches!(
            self,
            Point::Recalling | Point::Preparing | Point::Acted | Point::Finishing
        )
    }
}

/// What happens at a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The worker process dies as under `kill -9`; the postmaster restarts the server.
    Crash,
    /// A PostgreSQL ERROR is raised.
    Error,
    /// A Rust panic.
    Panic,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Crash => "crash",
            Action::Error => "error",
            Action::Panic => "panic",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Fault {
    point: Point,
    action: Action,
    task_id: i64,
}

/// A parsed `agent_loop.fault_injection` value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    faults: Vec<Fault>,
}

impl FaultPlan {
    pub fn parse(setting: &str) -> Result<FaultPlan, String> {
        let mut faults = Vec::new();
        for entry in setting.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let parts: Vec<&str> = entry.split(':').map(str::trim).collect();
            let [point, action, task] = parts[..] else {
                return Err(format!("\"{entry}\" is not point:action:task_id"));
            };
            let point = Point::ALL
                .into_iter()
                .find(|p| p.name() == point)
                .ok_or_else(|| {
                    let names: Vec<&str> = Point::ALL.iter().map(|p| p.name()).collect();
                    format!("unknown point \"{point}\" (one of {})", names.join(", "))
                })?;
            let action = match action {
                "crash" => Action::Crash,
                "error" => Action::Error,
                "panic" => Action::Panic,
                other => {
                    return Err(format!(
                        "unknown action \"{other}\" (crash, error or panic)"
                    ))
                }
            };
            if action != Action::Crash && !point.in_transaction() {
                return Err(format!(
                    "{} is outside a transaction; only crash can be injected there",
                    point.name()
                ));
            }
            let task_id = task
                .parse()
                .map_err(|_| format!("\"{task}\" is not a task id"))?;
            faults.push(Fault {
                point,
                action,
                task_id,
            });
        }
        Ok(FaultPlan { faults })
    }

    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// The action due at `point` for a task in its `attempt`-th claim.
    pub fn action_at(&self, point: Point, task_id: i64, attempt: i32) -> Option<Action> {
        if attempt != 1 {
            return None;
        }
        self.faults
            .iter()
            .find(|f| f.point == point && f.task_id == task_id)
            .map(|f| f.action)
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_list_and_fires_on_the_first_claim_only() {
        let plan = FaultPlan::parse(
            " acted:crash:7, finishing:panic:8 ,stepped:crash:7, preparing:error:9, recalling:panic:9",
        )
        .unwrap();
        assert_eq!(plan.action_at(Point::Recalling, 9, 1), Some(Action::Panic));
        assert_eq!(plan.action_at(Point::Preparing, 9, 1), Some(Action::Error));
        assert_eq!(plan.action_at(Point::Acted, 7, 1), Some(Action::Crash));
        assert_eq!(plan.action_at(Point::Stepped, 7, 1), Some(Action::Crash));
        assert_eq!(plan.action_at(Point::Finishing, 8, 1), Some(Action::Panic));
        assert_eq!(
            plan.action_at(Point::Acted, 7, 2),
            None,
            "a resumed task passes"
        );
        assert_eq!(plan.action_at(Point::Acted, 8, 1), None);
        assert_eq!(plan.action_at(Point::Claimed, 7, 1), None);
    }

    #[test]
    fn empty_means_no_faults() {
        assert!(FaultPlan::parse("").unwrap().is_empty());
        assert!(FaultPlan::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn rejects_what_it_cannot_do() {
        let err = |s| FaultPlan::parse(s).unwrap_err();
        assert!(err("acted:crash").contains("point:action:task_id"));
        assert!(err("nowhere:crash:1").contains("unknown point"));
        assert!(err("acted:explode:1").contains("unknown action"));
        assert!(err("acted:crash:x").contains("not a task id"));
        assert!(err("decided:error:1").contains("outside a transaction"));
    }
}
