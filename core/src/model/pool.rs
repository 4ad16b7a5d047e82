//! The helper threads that make model calls for a worker.
//!
//! The worker's main thread owns SPI and must never block on the network. It hands
//! [`ModelJob`]s to this pool and collects [`ModelOutcome`]s; a helper thread calls the `wake`
//! callback after each outcome so the main thread leaves its latch wait at once. Helper threads
//! never call PostgreSQL, start with every signal blocked (PostgreSQL's handlers must run on the
//! main thread only), and turn their own panics into an error outcome.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::http::{call_with_retries, new_agent, send, CallSettings};
use super::retry::Jitter;
use super::sanitize;
use super::wire::{HttpRequest, ParseFn};
use crate::sys::with_signals_blocked;
use crate::vocab::{CallOutcome, ErrorClass, ModelError};

/// What a model call is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// The task's next step.
    Decide,
    /// A summary of the task's older steps, for its compaction (perceive).
    Summary,
}

/// A model call to make.
pub struct ModelJob {
    pub task_id: i64,
    /// Identifies the claim of the task that asked, so a late answer for an earlier claim is
    /// recognised and dropped.
    pub ticket: i64,
    pub purpose: Purpose,
    pub request: HttpRequest,
    pub settings: CallSettings,
    pub parse: ParseFn,
}

/// The answer to a [`ModelJob`].
pub struct ModelOutcome {
    pub task_id: i64,
    pub ticket: i64,
    pub purpose: Purpose,
    pub call: CallOutcome,
}

type Waker = Arc<dyn Fn() + Send + Sync>;

pub struct ModelPool {
    jobs: Sender<ModelJob>,
    queue: Arc<Mutex<Receiver<ModelJob>>>,
    outcomes_tx: Sender<ModelOutcome>,
    outcomes: Receiver<ModelOutcome>,
    agent: ureq::Agent,
    wake: Waker,
    /// Helpers waiting for a job.
    idle: Arc<AtomicUsize>,
    /// Jobs sent that no helper has taken yet.
    queued: Arc<AtomicUsize>,
    threads: usize,
    max_threads: usize,
    in_flight: usize,
}

impl ModelPool {
    /// A pool that grows on demand to `max_threads` helper threads.
    pub fn new(max_threads: usize, wake: Waker) -> Self {
        let (jobs, queue) = channel();
        let (outcomes_tx, outcomes) = channel();
        ModelPool {
            jobs,
            queue: Arc::new(Mutex::new(queue)),
            outcomes_tx,
            outcomes,
            agent: new_agent(),
            wake,
            idle: Arc::new(AtomicUsize::new(0)),
            queued: Arc::new(AtomicUsize::new(0)),
            threads: 0,
            max_threads: max_threads.max(1),
            in_flight: 0,
        }
    }

    /// Jobs handed over whose outcome has not been collected yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    pub fn submit(&mut self, job: ModelJob) {
        self.in_flight += 1;
        // An idle helper is free for this job only if it is not already due to take one that
        // waits. Testing `idle == 0` alone queued a burst behind the few helpers left idle
        // (they count as idle until they wake and take a job): a burst of 12 one-second calls
        // ran in waves of the idle helpers' number, one second each.
        let waiting = self.queued.load(Ordering::Acquire);
        if self.idle.load(Ordering::Acquire) <= waiting && self.threads < self.max_threads {
            self.spawn();
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        // The receiving end lives in `self.queue`, so sending cannot fail.
        let _ = self.jobs.send(job);
    }

    /// The next finished call, if any. Never blocks.
    pub fn try_next(&mut self) -> Option<ModelOutcome> {
        let outcome = self.outcomes.try_recv().ok()?;
        self.in_flight -= 1;
        Some(outcome)
    }

    fn spawn(&mut self) {
        let queue = Arc::clone(&self.queue);
        let outcomes = self.outcomes_tx.clone();
        let agent = self.agent.clone();
        let wake = Arc::clone(&self.wake);
        let idle = Arc::clone(&self.idle);
        let queued = Arc::clone(&self.queued);
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ ((self.threads as u64 + 1) << 32);
        let spawned = with_signals_blocked(|| {
            std::thread::Builder::new()
                .name("agent_loop http".into())
                .stack_size(256 * 1024)
                .spawn(move || helper_main(queue, outcomes, agent, wake, idle, queued, seed))
        });
        if spawned.is_ok() {
            self.threads += 1;
        }
    }
}

fn helper_main(
    queue: Arc<Mutex<Receiver<ModelJob>>>,
    outcomes: Sender<ModelOutcome>,
    agent: ureq::Agent,
    wake: Waker,
    idle: Arc<AtomicUsize>,
    queued: Arc<AtomicUsize>,
    seed: u64,
) {
    let mut jitter = Jitter::seeded(seed);
    loop {
        idle.fetch_add(1, Ordering::AcqRel);
        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
        // Idle first: in between, a submit sees one helper too few and spawns one too many,
        // never the other way round.
        idle.fetch_sub(1, Ordering::AcqRel);
        let Ok(job) = job else { return }; // the pool is gone
        queued.fetch_sub(1, Ordering::AcqRel);
        let call = catch_unwind(AssertUnwindSafe(|| {
            call_with_retries(
                || send(&agent, &job.request, &job.settings),
                job.parse,
                &job.settings.retry,
                &mut jitter,
                std::thread::sleep,
            )
        }))
        .unwrap_or_else(|panic| CallOutcome {
            result: Err(ModelError::new(
                ErrorClass::Internal,
                format!("model call panicked: {}", panic_message(&panic)),
            )),
            failed_attempts: Vec::new(),
            latency: Duration::ZERO,
        });
        let mut call = call;
        sanitize::clean_outcome(&mut call, &sanitize::secrets_of(&job.request));
        let outcome = ModelOutcome {
            task_id: job.task_id,
            ticket: job.ticket,
            purpose: job.purpose,
            call,
        };
        if outcomes.send(outcome).is_err() {
            return;
        }
        wake();
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::openai_chat::parse_response;
    use crate::model::retry::RetryPolicy;
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    /// A call to `port` that fails: at once as a transport error where nothing listens, after
    /// the 300 ms timeout where a listener never answers.
    fn failing_call(task_id: i64, port: u16) -> ModelJob {
        ModelJob {
            purpose: Purpose::Decide,
            task_id,
            ticket: task_id * 10,
            request: HttpRequest {
                url: format!("http://127.0.0.1:{port}/v1/chat/completions"),
                headers: vec![],
                body: "{}".into(),
            },
            settings: CallSettings {
                timeout: Duration::from_millis(300),
                max_body_bytes: 1024,
                retry: RetryPolicy {
                    max_retries: 0,
                    ..RetryPolicy::default()
                },
            },
            parse: parse_response,
        }
    }

    fn unused_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    /// Collects `n` outcomes (or fewer, after 10 s): their task ids and error classes, sorted.
    fn collect(pool: &mut ModelPool, n: usize) -> Vec<(i64, ErrorClass)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while seen.len() < n && Instant::now() < deadline {
            match pool.try_next() {
                Some(o) => {
                    assert_eq!(o.ticket, o.task_id * 10);
                    seen.push((o.task_id, o.call.result.unwrap_err().class));
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        seen.sort_by_key(|(task_id, _)| *task_id);
        seen
    }

    #[test]
    fn a_burst_gets_a_helper_per_call_even_when_some_are_idle() {
        let mut pool = ModelPool::new(8, Arc::new(|| {}));
        let refused = unused_port();
        for task_id in 0..2 {
            pool.submit(failing_call(task_id, refused));
        }
        assert_eq!(collect(&mut pool, 2).len(), 2);
        // Two helpers idle now. Six calls that each take a while, sent at once, need four
        // more helpers, whether or not the idle ones have woken to take theirs yet.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        for task_id in 2..8 {
            pool.submit(failing_call(task_id, port));
        }
        assert!(pool.threads() >= 6, "{} helpers", pool.threads());
        assert!(pool.threads() <= 8);
        let outcomes = collect(&mut pool, 6);
        assert_eq!(outcomes.len(), 6);
        assert!(outcomes
            .iter()
            .all(|(_, class)| *class == ErrorClass::Timeout));
    }

    #[test]
    fn outcomes_come_back_with_their_ticket_and_wake_the_owner() {
        let woken = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&woken);
        let mut pool = ModelPool::new(4, Arc::new(move || flag.store(true, Ordering::SeqCst)));
        let port = unused_port();
        for task_id in 0..3 {
            pool.submit(failing_call(task_id, port));
        }
        assert_eq!(pool.in_flight(), 3);
        let transport = ErrorClass::Transport;
        let expected = vec![(0, transport), (1, transport), (2, transport)];
        assert_eq!(collect(&mut pool, 3), expected);
        assert_eq!(pool.in_flight(), 0);
        assert!(woken.load(Ordering::SeqCst));
        assert!(pool.threads() <= 4);
    }
}
