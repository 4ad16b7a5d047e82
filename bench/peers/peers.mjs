// Drains no-op jobs with a peer job queue on the benchmark's cluster and prints one JSON line
// (jobs/s and the machine's CPU per job over the drain, pickup latency):
//   node peers.mjs pg-boss|graphile-worker JOBS ['{"option": value}']
// Each peer runs in its fastest documented configuration (FASTEST below; the optional JSON
// overrides it, for sweeps). Jobs are inserted first (not timed), in batches; then workers
// start and the drain is timed from their start to the last job's handler. Pickup latency:
// with the workers idle, single jobs are sent one at a time and timed from the send to their
// handler.
// Connection: the usual PGHOST, PGPORT, PGUSER, PGDATABASE variables.
import { readFileSync } from "node:fs";
import pg from "pg";
import { PgBoss } from "pg-boss";
import { Logger, run, runMigrations } from "graphile-worker";

// What each peer's documentation gives for throughput, the values picked by a sweep on this
// machine kind (bench/HISTORY.md):
// - pg-boss (https://pgboss.io): batch fetch (`batchSize`, one fetch and one completion per
//   batch), fetching again at once while batches come back full (`burstWhenBatchFull`),
//   several fetch loops per process (`localConcurrency`), LISTEN/NOTIFY for idle pickup.
// - graphile-worker (https://worker.graphile.org/docs/performance): jobs fetched in batches
//   into a local queue (`localQueue.size`), completions batched (`completeJobBatchDelay`),
//   `concurrency` jobs at once; LISTEN/NOTIFY is built in.
const FASTEST = {
  "pg-boss": { batchSize: 1000, localConcurrency: 4, burstWhenBatchFull: true, pool: 8 },
  "graphile-worker": { concurrency: 200, localQueueSize: 2000, completeJobBatchDelay: 0, pool: 20 },
};

const [peer, jobsArg, overrides] = process.argv.slice(2);
const jobs = Number(jobsArg || 2000);
const PICKUPS = 30;
const connectionString = `postgres:///${process.env.PGDATABASE}?host=${process.env.PGHOST}&port=${process.env.PGPORT}&user=${process.env.PGUSER}`;

// Busy CPU seconds of the whole machine (all cores), from /proc/stat.
function machineCpu() {
  const ticks = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return (ticks.reduce((a, b) => a + b, 0) - ticks[3] - ticks[4]) / 100; // USER_HZ
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil(xs.length * p) - 1)];

// Resolves once `n` handler calls were counted; `sentAt` gives pickup timings.
function counter() {
  let done = 0, target = Infinity, resolve;
  const pickups = [];
  const state = {
    sentAt: null,
    expect(n) { done = 0; target = n; return new Promise((r) => { resolve = r; }); },
    hit(n = 1) {
      if (state.sentAt !== null) { pickups.push(performance.now() - state.sentAt); state.sentAt = null; }
      done += n;
      if (done >= target) { target = Infinity; resolve(); }
    },
    pickups,
  };
  return state;
}

async function pgBoss(config) {
  const boss = new PgBoss({ connectionString, max: config.pool, useListenNotify: true });
  boss.on("error", (e) => console.error(e));
  await boss.start();
  await boss.createQueue("noop", { notify: true });
  for (let i = 0; i < jobs; i += 1000) {
    await boss.insert("noop", Array.from({ length: Math.min(1000, jobs - i) }, () => ({ data: {} })));
  }
  const c = counter();
  const drained = c.expect(jobs);
  const t0 = performance.now(), cpu0 = machineCpu();
  await boss.work("noop", {
    batchSize: config.batchSize, localConcurrency: config.localConcurrency,
    burstWhenBatchFull: config.burstWhenBatchFull, pollingIntervalSeconds: 0.5,
  }, async (batch) => c.hit(batch.length));
  await drained;
  const seconds = (performance.now() - t0) / 1000, cpu = machineCpu() - cpu0;
  for (let i = 0; i < PICKUPS; i++) {
    const one = c.expect(1);
    c.sentAt = performance.now();
    await boss.send("noop", {});
    await one;
    await sleep(20);
  }
  await boss.stop({ graceful: false, timeout: 1000 });
  return { seconds, cpu, pickups: c.pickups };
}

async function graphileWorker(config) {
  await runMigrations({ connectionString });
  const client = new pg.Client({ connectionString });
  await client.connect();
  await client.query("SELECT graphile_worker.add_job('noop', '{}') FROM generate_series(1, $1)", [jobs]);
  const c = counter();
  const drained = c.expect(jobs);
  const t0 = performance.now(), cpu0 = machineCpu();
  const runner = await run({
    connectionString, concurrency: config.concurrency, maxPoolSize: config.pool,
    noHandleSignals: true, pollInterval: 1000,
    preset: {
      worker: {
        localQueue: { size: config.localQueueSize },
        completeJobBatchDelay: config.completeJobBatchDelay,
      },
    },
    taskList: { noop: async () => c.hit() },
    logger: new Logger(() => () => {}),
  });
  await drained;
  const seconds = (performance.now() - t0) / 1000, cpu = machineCpu() - cpu0;
  for (let i = 0; i < PICKUPS; i++) {
    const one = c.expect(1);
    c.sentAt = performance.now();
    await client.query("SELECT graphile_worker.add_job('noop', '{}')");
    await one;
    await sleep(20);
  }
  await runner.stop();
  await client.end();
  return { seconds, cpu, pickups: c.pickups };
}

const drainers = { "pg-boss": pgBoss, "graphile-worker": graphileWorker };
if (!drainers[peer]) { console.error(`unknown peer ${peer}`); process.exit(2); }
const config = { ...FASTEST[peer], ...JSON.parse(overrides || "{}") };
const result = await drainers[peer](config);
console.log(JSON.stringify({
  peer, jobs, config, seconds: result.seconds, jobs_per_s: jobs / result.seconds,
  machine_cpu_us_per_job: result.cpu / jobs * 1e6,
  pickup_p50_ms: pct(result.pickups, 0.5), pickup_p99_ms: pct(result.pickups, 0.99),
}));
process.exit(0);
