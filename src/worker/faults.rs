//! The worker's side of `agent_loop.fault_injection` (the plan is parsed and matched in
//! `agent_loop_core::faults`). Empty, as in production, it costs one string check per point.

use std::cell::RefCell;

use agent_loop_core::faults::{Action, FaultPlan, Point};
use pgrx::prelude::*;

use crate::settings;

thread_local! {
    /// The setting's text and its plan, re-parsed only when the text changes.
    static PLAN: RefCell<(String, FaultPlan)> = RefCell::default();
}

/// Injects the fault planned at `point` for this claim of the task, if any.
pub fn at(point: Point, task_id: i64, attempt: i32) {
    let Some(setting) = settings::string(&settings::FAULT_INJECTION) else {
        return;
    };
    let action = PLAN.with_borrow_mut(|(text, plan)| {
        if *text != setting {
            *plan = FaultPlan::parse(&setting).unwrap_or_else(|e| {
                warning!("agent_loop.fault_injection ignored: {e}");
                FaultPlan::default()
            });
            *text = setting;
        }
        plan.action_at(point, task_id, attempt)
    });
    let Some(action) = action else {
        return;
    };
    let what = format!(
        "agent_loop fault injection: {} at {point} of task {task_id}",
        action.name()
    );
    match action {
        Action::Crash => {
            warning!("{what}");
            // As abrupt as `kill -9`: no exit callback runs, the postmaster restarts the server.
            crate::pg::backend::crash();
        }
        Action::Error => error!("{what}"),
        Action::Panic => panic!("{what}"),
    }
}
