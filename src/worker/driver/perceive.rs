//! Perceive: the next model call of a task. Its prompt is built once from the log; one grown
//! near the model's context window first gets a compaction row — the structured summary
//! written at once, or, for a model that `writes_summaries`, first a short request for the
//! model's own summary (answered in [`Worker::summary_written`]).

use std::panic::AssertUnwindSafe;

use agent_loop_core::compaction;
use agent_loop_core::items::Item;
use agent_loop_core::model::pool::{ModelOutcome, Purpose};
use agent_loop_core::vocab::Prompt;
use pgrx::prelude::*;

use super::{instructions, Worker};
use crate::pg::txn::in_transaction;
use crate::store::{Metered, ModelRow};

impl Worker {
    /// What to ask the model next for task `id`: its next decide, or the summary its
    /// compaction waits for.
    pub(super) fn next_call(&mut self, id: i64, model: &ModelRow) -> (Purpose, Prompt) {
        let instructions = instructions();
        let task = self.tasks.get_mut(&id).expect("a ready task is held");
        let prompt = task.prompt(&instructions);
        let Some(window) = model.context_window else {
            return (Purpose::Decide, prompt);
        };
        let estimate = compaction::estimate_tokens(&prompt);
        let Some(item) = compaction::plan(&task.items, estimate, window.max(1) as usize) else {
            return (Purpose::Decide, prompt);
        };
        if model.writes_summaries {
            if let Some(request) = compaction::summary_prompt(&task.goal, &item) {
                task.compacting = Some(item);
                return (Purpose::Summary, request);
            }
        }
        if self.append_compaction(id, item, None) {
            let task = self.tasks.get_mut(&id).expect("still held");
            return (Purpose::Decide, task.prompt(&instructions));
        }
        (Purpose::Decide, prompt)
    }

    /// The model's summary for a compaction is in (or its request failed): the compaction row
    /// is written with it, or with the structured summary, and the task decides next.
    pub(super) fn summary_written(&mut self, answer: ModelOutcome) {
        let id = answer.task_id;
        let Some(mut task) = self.tasks.remove(&id) else {
            return;
        };
        if task.attempt as i64 != answer.ticket {
            self.tasks.insert(id, task);
            return;
        }
        self.forget_call(&mut task);
        let structured = task.compacting.take();
        let prices = self.models.get(&task.model).and_then(|m| m.prices);
        self.tasks.insert(id, task);
        if let Some(structured) = structured {
            let reply = answer.call.result.as_ref().ok();
            let item = compaction::model_written(structured, reply.and_then(|r| r.text.as_deref()));
            let metered = reply.map(|r| {
                let cost = prices.map(|p| p.cost(&r.usage));
                let latency = answer.call.latency.as_millis().min(i32::MAX as u128) as i32;
                (r.usage.clone(), cost, latency)
            });
            self.append_compaction(id, item, metered);
        }
        self.ready.push_back(id);
    }

    /// Appends the compaction row in its own small transaction, with the usage, cost and
    /// latency of the summary request that wrote it (which the task's totals then include).
    fn append_compaction(
        &mut self,
        id: i64,
        item: Item,
        metered: Option<(agent_loop_core::vocab::Usage, Option<f64>, i32)>,
    ) -> bool {
        let task = self.tasks.get_mut(&id).expect("a held task");
        let (store, logged, turn) = (&mut self.store, task.items.len(), task.progress.steps_done);
        let written = in_transaction(AssertUnwindSafe(|| {
            let (usage, latency) = match &metered {
                Some((usage, cost, latency)) => {
                    (Some(Metered { usage, cost: *cost }), Some(*latency))
                }
                None => (None, None),
            };
            task.append(store, turn, item, usage, latency)
        }));
        match written {
            Ok(()) => {
                if let Some((usage, cost, _)) = &metered {
                    task.progress.add(usage, cost.unwrap_or(0.0));
                }
                true
            }
            Err(e) => {
                warning!("agent_loop: compacting task {id}'s log: {e}");
                task.items.truncate(logged);
                false
            }
        }
    }
}
