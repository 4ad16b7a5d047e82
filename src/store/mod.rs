//! Every statement the worker runs. Each is prepared on first use and kept (`SPI_keepplan`),
//! so the plan cache serves every later step; all names are schema-qualified.

mod sql;
mod step;

use std::collections::HashMap;

use agent_loop_core::accounting::Prices;
use agent_loop_core::items::{Item, Memory};
use agent_loop_core::lifecycle::TaskStatus;
use agent_loop_core::recall::{self, Candidate};
use agent_loop_core::task::{Limits, Progress};
use agent_loop_core::tools::{SqlArg, SqlFunction};
use agent_loop_core::vocab::Usage;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult, SpiTupleTable};
use pgrx::JsonB;
use serde_json::Value;

use crate::pg::txn::with_local_settings;

pub use sql::Sql;

/// The prepared statements of one worker.
#[derive(Default)]
pub struct Store {
    plans: HashMap<&'static str, OwnedPreparedStatement>,
}

/// A task as claimed from `tasks`.
pub struct ClaimedTask {
    pub id: i64,
    pub owner: pg_sys::Oid,
    pub goal: String,
    pub model: String,
    pub tools: Vec<String>,
    pub limits: Limits,
    pub attempt: i32,
    pub progress: Progress,
    /// As text: it is parsed when the task is prepared, so that one that cannot be read fails
    /// its own task, not the claim of every task with it.
    pub output_schema: Option<String>,
    pub accept_if: Option<String>,
    /// `require_tool_use`, resolved: true when NULL and the task has tools.
    pub needs_data: bool,
    pub guidance_pending: bool,
    /// Whether it has a log to resume from (a fresh task has none to load).
    pub has_log: bool,
}

/// The task row, locked for a step.
#[derive(Clone, Copy)]
pub struct LockedTask {
    pub cancel_requested: bool,
    pub guidance_pending: bool,
}

/// A model endpoint from `models`.
#[derive(Clone)]
pub struct ModelRow {
    pub name: String,
    pub provider: String,
    pub base_url: String,
    pub model: String,
    pub api_key_env: Option<String>,
    pub timeout_ms: f64,
    pub max_concurrency: i32,
    pub options: Value,
    pub context_window: Option<i32>,
    /// The model writes compaction summaries itself (`models.writes_summaries`).
    pub writes_summaries: bool,
    /// `None`: the model has no prices, and its steps no cost.
    pub prices: Option<Prices>,
}

/// A tool from `tools`: `function` is `None` for the built-in sql_query.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct ToolRow {
    pub name: String,
    pub description: String,
    pub parameters: Value,
    pub function: Option<SqlFunction>,
    pub needs_approval: bool,
}

/// A human's decision on a call of a needs_approval tool.
pub struct Decision {
    pub call_id: String,
    pub approved: bool,
    pub decided_by: String,
    pub reason: Option<String>,
    /// The tool is still what was approved: same function and definition, still needing
    /// approval.
    pub tool_unchanged: bool,
}

/// What a model call used and cost, recorded on the first step row of its answer.
#[derive(Clone, Copy)]
pub struct Metered<'a> {
    pub usage: &'a Usage,
    pub cost: Option<f64>,
}

/// A step row to insert.
pub struct NewStep<'a> {
    pub n: i32,
    pub turn: i32,
    pub item: &'a Item,
    pub metered: Option<Metered<'a>>,
    pub latency_ms: Option<i32>,
}

/// The final state written for a task.
pub struct Ending<'a> {
    pub status: TaskStatus,
    pub result: Option<Value>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub progress: &'a Progress,
}

impl Store {
    fn run<'conn>(
        &mut self,
        client: &mut SpiClient<'conn>,
        sql: &'static Sql,
        args: &[DatumWithOid<'_>],
    ) -> SpiResult<SpiTupleTable<'conn>> {
        if !self.plans.contains_key(sql.text) {
            let plan = client.prepare_mut(sql.text, sql.types)?.keep();
            self.plans.insert(sql.text, plan);
        }
        let plan = &self.plans[sql.text];
        let listed = |list: &[&Sql]| list.iter().any(|s| std::ptr::eq(*s, sql));
        // Prepared as mutating, a plan runs read-write through select() too; update() would
        // first give the transaction an ID, so a claim that finds nothing would commit a record
        // and wait for a WAL flush (see txn::execute).
        // Plans are made while executing (the generic one at the sixth call), so the settings
        // that shape them are set around the execution.
        if listed(&sql::INDEX_WALKS) {
            let index_only = [(c"enable_bitmapscan", c"off"), (c"enable_seqscan", c"off")];
            with_local_settings(&index_only, || client.select(plan, None, args))
        } else if listed(&sql::GENERIC_PLANS) {
            let generic = [(c"plan_cache_mode", c"force_generic_plan")];
            with_local_settings(&generic, || client.select(plan, None, args))
        } else {
            client.select(plan, None, args)
        }
    }

    /// Runs a statement for its effect alone, in a connection of its own.
    fn exec(&mut self, sql: &'static Sql, args: &[DatumWithOid<'_>]) -> SpiResult<()> {
        Spi::connect_mut(|c| self.run(c, sql, args).map(drop))
    }

    /// Cancels queued tasks whose cancel was requested; returns their ids, and the ids of
    /// running tasks with a pending cancel.
    pub fn cancellations(&mut self) -> SpiResult<(Vec<i64>, Vec<i64>)> {
        Spi::connect_mut(|c| {
            let ended = self
                .run(c, &sql::CANCEL_QUEUED, &[])?
                .map(|row| row.get::<i64>(1))
                .collect::<SpiResult<Vec<_>>>()?;
            let running = self
                .run(c, &sql::CANCEL_REQUESTED_RUNNING, &[])?
                .map(|row| row.get::<i64>(1))
                .collect::<SpiResult<Vec<_>>>()?;
            Ok((
                ended.into_iter().flatten().collect(),
                running.into_iter().flatten().collect(),
            ))
        })
    }

    /// Puts tasks whose lease expired (their worker died) back in the queue.
    pub fn requeue_expired(&mut self) -> SpiResult<usize> {
        Spi::connect_mut(|c| Ok(self.run(c, &sql::REQUEUE_EXPIRED, &[])?.len()))
    }

    /// Deletes up to `limit` tasks that ended more than `age_seconds` ago, with their steps.
    pub fn prune_ended(&mut self, age_seconds: i32, limit: i32) -> SpiResult<usize> {
        Spi::connect_mut(|c| {
            Ok(self
                .run(c, &sql::PRUNE_ENDED, &[age_seconds.into(), limit.into()])?
                .len())
        })
    }

    /// Re-queues running tasks whose worker is not among `live_workers`.
    pub fn requeue_orphans(&mut self, live_workers: Vec<i32>) -> SpiResult<usize> {
        Spi::connect_mut(|c| {
            Ok(self
                .run(c, &sql::REQUEUE_ORPHANS, &[live_workers.into()])?
                .len())
        })
    }

    /// Loads the hot relations (the task rows and the indexes of tasks, steps and lessons)
    /// into shared buffers with `pg_prewarm`, when that extension is installed in the database
    /// and they fit in half of shared_buffers. Returns the blocks read, `None` when skipped.
    /// Run once, at the worker's start: not prepared.
    pub fn prewarm(&mut self) -> SpiResult<Option<i64>> {
        Spi::connect_mut(|c| {
            let found = c.select(sql::PREWARM_FUNCTION, Some(1), &[])?;
            if found.is_empty() {
                return Ok(None);
            }
            let function = found.first().get::<String>(1)?;
            let Some(function) = function else {
                return Ok(None);
            };
            let statement = sql::PREWARM.replace("{pg_prewarm}", &function);
            c.update(&statement, Some(1), &[])?.first().get::<i64>(1)
        })
    }

    /// Claims up to `limit` queued tasks, in turn across owners; `in_flight` is how many tasks
    /// this worker drives per owner, and no owner gets more than `per_owner` (0: no cap).
    pub fn claim(
        &mut self,
        limit: i32,
        worker_pid: i32,
        lease_seconds: i32,
        in_flight: &[(pg_sys::Oid, i32)],
        per_owner: i32,
    ) -> SpiResult<Vec<ClaimedTask>> {
        let owners: Vec<pg_sys::Oid> = in_flight.iter().map(|(o, _)| *o).collect();
        let counts: Vec<i32> = in_flight.iter().map(|(_, n)| *n).collect();
        Spi::connect_mut(|c| {
            let rows = self.run(
                c,
                &sql::CLAIM,
                &[
                    limit.into(),
                    worker_pid.into(),
                    lease_seconds.into(),
                    owners.into(),
                    counts.into(),
                    per_owner.into(),
                ],
            )?;
            let mut tasks = Vec::new();
            for row in rows {
                tasks.push(ClaimedTask {
                    id: row.get_by_name("id")?.unwrap_or_default(),
                    owner: row.get_by_name("owner")?.unwrap_or(pg_sys::InvalidOid),
                    goal: row.get_by_name("goal")?.unwrap_or_default(),
                    model: row.get_by_name("model")?.unwrap_or_default(),
                    tools: row.get::<Vec<String>>(5)?.unwrap_or_default(),
                    limits: Limits {
                        max_steps: row.get_by_name("max_steps")?.unwrap_or(1),
                        token_budget: row.get_by_name("token_budget")?,
                        deadline_epoch: row.get_by_name("deadline_epoch")?,
                    },
                    attempt: row.get_by_name("attempts")?.unwrap_or(1),
                    progress: Progress {
                        steps_done: row.get_by_name("steps_done")?.unwrap_or(0),
                        usage: Usage {
                            input_tokens: row.get_by_name("input_tokens")?.unwrap_or(0),
                            cached_tokens: row.get_by_name("cached_tokens")?.unwrap_or(0),
                            output_tokens: row.get_by_name("output_tokens")?.unwrap_or(0),
                            reasoning_tokens: row.get_by_name("reasoning_tokens")?.unwrap_or(0),
                        },
                        cost: row.get_by_name("cost")?.unwrap_or(0.0),
                    },
                    output_schema: row.get_by_name("output_schema")?,
                    accept_if: row.get_by_name("accept_if")?,
                    needs_data: row.get_by_name("needs_data")?.unwrap_or(false),
                    guidance_pending: row.get_by_name("guidance_pending")?.unwrap_or(false),
                    has_log: row.get_by_name("has_log")?.unwrap_or(true),
                });
            }
            Ok(tasks)
        })
    }

    pub fn renew_leases(
        &mut self,
        ids: Vec<i64>,
        worker_pid: i32,
        lease_seconds: i32,
    ) -> SpiResult<()> {
        let args = [ids.into(), worker_pid.into(), lease_seconds.into()];
        self.exec(&sql::RENEW_LEASES, &args)
    }

    /// Hands some of this worker's running tasks back to the queue.
    pub fn release_tasks(&mut self, ids: Vec<i64>, worker_pid: i32) -> SpiResult<()> {
        self.exec(&sql::RELEASE_TASKS, &[ids.into(), worker_pid.into()])
    }

    /// Hands this worker's running tasks back to the queue (clean shutdown).
    pub fn release_leases(&mut self, worker_pid: i32) -> SpiResult<()> {
        self.exec(&sql::RELEASE_LEASES, &[worker_pid.into()])
    }

    pub fn model(&mut self, name: &str) -> SpiResult<Option<ModelRow>> {
        Spi::connect_mut(|c| {
            let rows = self.run(c, &sql::MODEL, &[name.into()])?;
            if rows.is_empty() {
                return Ok(None);
            }
            let row = rows.first();
            Ok(Some(ModelRow {
                name: row.get_by_name("name")?.unwrap_or_default(),
                provider: row.get_by_name("provider")?.unwrap_or_default(),
                base_url: row.get_by_name("base_url")?.unwrap_or_default(),
                model: row.get_by_name("model")?.unwrap_or_default(),
                api_key_env: row.get_by_name("api_key_env")?,
                timeout_ms: row.get_by_name("timeout_ms")?.unwrap_or(60_000.0),
                max_concurrency: row.get_by_name("max_concurrency")?.unwrap_or(1),
                options: row
                    .get_by_name::<JsonB, _>("options")?
                    .map(|j| j.0)
                    .unwrap_or(Value::Null),
                context_window: row.get_by_name("context_window")?,
                writes_summaries: row.get_by_name("writes_summaries")?.unwrap_or(false),
                prices: match (
                    row.get_by_name::<f64, _>("input_price")?,
                    row.get_by_name::<f64, _>("output_price")?,
                ) {
                    (Some(input), Some(output)) => Some(Prices {
                        input,
                        cached_input: row.get_by_name("cached_input_price")?.unwrap_or(input),
                        output,
                    }),
                    _ => None,
                },
            }))
        })
    }

    pub fn tools(&mut self, names: Vec<String>) -> SpiResult<Vec<ToolRow>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        Spi::connect_mut(|c| {
            let mut tools = Vec::new();
            for row in self.run(c, &sql::TOOLS, &[names.into()])? {
                let target: Option<String> = row.get_by_name("target")?;
                let signature = row
                    .get_by_name::<JsonB, _>("signature")?
                    .map(|j| j.0)
                    .unwrap_or(Value::Null);
                let returns_set = row.get_by_name::<bool, _>("returns_set")?.unwrap_or(false);
                let returns_void = row.get_by_name::<bool, _>("returns_void")?.unwrap_or(false);
                tools.push(ToolRow {
                    name: row.get_by_name("name")?.unwrap_or_default(),
                    description: row.get_by_name("description")?.unwrap_or_default(),
                    parameters: row
                        .get_by_name::<JsonB, _>("parameters")?
                        .map(|j| j.0)
                        .unwrap_or(Value::Null),
                    function: target.map(|target| SqlFunction {
                        target,
                        // register_tool wrote it; a row edited by hand into something else
                        // leaves the tool without arguments, and its calls fail to bind.
                        args: SqlArg::from_signature(&signature).unwrap_or_default(),
                        returns_set,
                        returns_void,
                    }),
                    needs_approval: row.get_by_name("needs_approval")?.unwrap_or(false),
                });
            }
            Ok(tools)
        })
    }

    /// Lessons of `owner` most relevant to each of `goals`, best first: one list per goal.
    pub fn recall(
        &mut self,
        owner: pg_sys::Oid,
        goals: Vec<String>,
        limit: i32,
        window: i32,
    ) -> SpiResult<Vec<Vec<Memory>>> {
        if limit <= 0 || goals.is_empty() {
            return Ok(vec![Vec::new(); goals.len()]);
        }
        Spi::connect_mut(|c| {
            let mut goal_lexemes = Vec::with_capacity(goals.len());
            for row in self.run(c, &sql::GOAL_LEXEMES, &[goals.into()])? {
                goal_lexemes.push(row.get::<Vec<String>>(1)?.unwrap_or_default());
            }
            let (mut candidates, mut lessons) = (Vec::new(), Vec::new());
            for row in self.run(c, &sql::LATEST_LESSONS, &[owner.into(), window.into()])? {
                candidates.push(Candidate {
                    task_id: row.get(1)?.unwrap_or_default(),
                    id: row.get(2)?.unwrap_or_default(),
                    lexemes: row.get::<Vec<String>>(4)?.unwrap_or_default(),
                });
                lessons.push(row.get::<String>(3)?.unwrap_or_default());
            }
            let recalled = goal_lexemes.iter().map(|goal| {
                let best = recall::rank(goal, &candidates, limit as usize);
                (best.into_iter())
                    .map(|i| Memory {
                        task_id: candidates[i].task_id,
                        id: candidates[i].id,
                        lesson: lessons[i].clone(),
                    })
                    .collect()
            });
            Ok(recalled.collect())
        })
    }

    /// The task's log, for resuming it; empty for a task that never ran. `goal` is the
    /// task's, which its perceive row does not repeat.
    pub fn load_items(&mut self, task_id: i64, goal: &str) -> SpiResult<Result<Vec<Item>, String>> {
        Spi::connect_mut(|c| {
            let mut items = Vec::new();
            for row in self.run(c, &sql::LOAD_STEPS, &[task_id.into()])? {
                let phase: String = row.get_by_name("phase")?.unwrap_or_default();
                let kind: String = row.get_by_name("kind")?.unwrap_or_default();
                let content = row
                    .get_by_name::<JsonB, _>("content")?
                    .map(|j| j.0)
                    .unwrap_or(Value::Null);
                match Item::from_row(&phase, &kind, &content, goal) {
                    Ok(item) => items.push(item),
                    Err(e) => return Ok(Err(e.to_string())),
                }
            }
            Ok(Ok(items))
        })
    }
}
