//! A task's lifecycle: its statuses (the `agent_loop.task_status` enum) and the moves between
//! them, stated once. SQL spells the same lists where a statement or an index predicate needs
//! them literally; a shape test checks every such list against [`TaskStatus`].

/// The status of a task (`tasks.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskStatus {
    /// Waiting for a worker (new, re-queued after a crash, resumed after a wait, retried).
    Queued,
    /// Leased by a worker, which drives its steps.
    Running,
    /// Parked without a worker until every call of a needs_approval tool is decided.
    WaitingApproval,
    /// Parked without a worker until every subtask it spawned has ended.
    WaitingSubtasks,
    Succeeded,
    Failed,
    Cancelled,
}

use TaskStatus::*;

impl TaskStatus {
    /// Every status, in the enum's order.
    pub const ALL: [TaskStatus; 7] = [
        Queued,
        Running,
        WaitingApproval,
        WaitingSubtasks,
        Succeeded,
        Failed,
        Cancelled,
    ];

    /// The enum label.
    pub fn as_str(self) -> &'static str {
        match self {
            Queued => "queued",
            Running => "running",
            WaitingApproval => "waiting_approval",
            WaitingSubtasks => "waiting_subtasks",
            Succeeded => "succeeded",
            Failed => "failed",
            Cancelled => "cancelled",
        }
    }

    pub fn parse(label: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|s| s.as_str() == label)
    }

    /// A final status: nothing moves the task again but `retry()` (failed, cancelled).
    pub fn has_ended(self) -> bool {
        matches!(self, Succeeded | Failed | Cancelled)
    }

    /// Parked: waiting, without a worker, for something other than a worker.
    pub fn is_parked(self) -> bool {
        matches!(self, WaitingApproval | WaitingSubtasks)
    }

    /// `wait()` returns at it: the task ended, or it needs a human.
    pub fn settles_wait(self) -> bool {
        self.has_ended() || self == WaitingApproval
    }

    /// `cancel()` ends it at once: no worker holds it (a running task ends at its next step).
    pub fn cancels_at_once(self) -> bool {
        self == Queued || self.is_parked()
    }

    /// `retry()` may re-queue it.
    pub fn can_retry(self) -> bool {
        matches!(self, Failed | Cancelled)
    }

    /// Whether the task may move from `self` to `to`. Every statement that changes a status
    /// makes one of these moves.
    pub fn can_move_to(self, to: TaskStatus) -> bool {
        match (self, to) {
            // claim; cancel before it started
            (Queued, Running | Cancelled) => true,
            // a step parks it, ends it; a lost lease or a stopped worker re-queues it
            (Running, WaitingApproval | WaitingSubtasks | Queued) => true,
            (Running, Succeeded | Failed | Cancelled) => true,
            // decided, or its subtasks ended: queued to resume; cancelled while it waits
            (WaitingApproval | WaitingSubtasks, Queued | Cancelled) => true,
            // an approval decided while its subtasks still run
            (WaitingApproval, WaitingSubtasks) => true,
            // retry()
            (Failed | Cancelled, Queued) => true,
            // a queued task whose perceive cannot even start (invalid input) fails at claim
            (Queued, Failed) => true,
            _ => false,
        }
    }

    /// The statuses for which `pick` holds, as SQL spells a list: `'a', 'b'`.
    pub fn sql_list(pick: impl Fn(TaskStatus) -> bool) -> String {
        TaskStatus::ALL
            .into_iter()
            .filter(|s| pick(*s))
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new status does not compile here until it has a number, nor pass until ALL has it.
    fn number(status: TaskStatus) -> usize {
        match status {
            Queued => 0,
            Running => 1,
            WaitingApproval => 2,
            WaitingSubtasks => 3,
            Succeeded => 4,
            Failed => 5,
            Cancelled => 6,
        }
    }

    #[test]
    fn all_holds_every_status_once() {
        let numbers: Vec<usize> = TaskStatus::ALL.into_iter().map(number).collect();
        assert_eq!(numbers, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn labels_round_trip() {
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(TaskStatus::parse("done"), None);
    }

    #[test]
    fn an_ended_task_moves_only_by_retry() {
        for from in TaskStatus::ALL.into_iter().filter(|s| s.has_ended()) {
            for to in TaskStatus::ALL {
                let allowed = from.can_move_to(to);
                assert_eq!(allowed, from.can_retry() && to == Queued, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn only_a_running_task_parks_or_succeeds() {
        for from in TaskStatus::ALL {
            for to in [WaitingSubtasks, Succeeded] {
                if from.can_move_to(to) {
                    assert!(from == Running || (from == WaitingApproval && to == WaitingSubtasks));
                }
            }
        }
        assert!(
            !Queued.can_move_to(Succeeded),
            "a task succeeds only from a step"
        );
    }

    #[test]
    fn every_status_is_reachable_from_queued() {
        let mut reached = vec![Queued];
        let mut i = 0;
        while i < reached.len() {
            for to in TaskStatus::ALL {
                if reached[i].can_move_to(to) && !reached.contains(&to) {
                    reached.push(to);
                }
            }
            i += 1;
        }
        assert_eq!(reached.len(), TaskStatus::ALL.len());
    }

    #[test]
    fn sql_lists_are_in_enum_order() {
        assert_eq!(
            TaskStatus::sql_list(|s| !s.has_ended()),
            "'queued', 'running', 'waiting_approval', 'waiting_subtasks'"
        );
    }
}
