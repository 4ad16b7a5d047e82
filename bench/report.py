"""Turns the benchmark's figures (bench/results.json) into bench/RESULTS.md and bench/results.svg.

Run on its own to redraw from a saved results.json: python3 bench/report.py
"""

import json
import os
import sys


def span(figures, key):
    """The lowest and highest value of a rate over the runs, as "low–high"."""
    low, high = figures.get(key + "_min"), figures.get(key + "_max")
    return "n/a" if low is None else f"{low:,.0f}–{high:,.0f}"


def rows(r):
    """The table: (workload, figure, value, note)."""
    a_sync, a_async = r["agent_3step_sync"], r["agent_3step_async"]
    c_sync1, c_async1 = r["ceiling_sync_1"], r["ceiling_async_1"]
    c_sync8, c_async8 = r["ceiling_sync_8"], r["ceiling_async_8"]
    one, boss, graphile = r["agent_1step_sync"], r["pg-boss"], r["graphile-worker"]
    a_2w, one_2w = r["agent_3step_sync_2w"], r["agent_1step_sync_2w"]
    pick, fl, sw, pw = r["pickup"], r["in_flight"], r["step_wal"], r["payload_wal"]
    n = r["tasks"]
    return [
        ("1. throughput, sync", "3-step tasks/s · steps/s", f"{a_sync['tasks_per_s']:,.0f} · {a_sync['steps_per_s']:,.0f}", f"{n} tasks, one worker"),
        ("", "steps/s, lowest–highest of the runs: 1 · 2 workers", f"{span(a_sync, 'steps_per_s')} · {span(a_2w, 'steps_per_s')}", ""),
        ("", "CPU per step: worker · model server · whole machine", f"{a_sync['worker_cpu_us_per_step']:,.0f} µs · {a_sync.get('model_server_cpu_us_per_step', 0):,.0f} µs · {a_sync['machine_cpu_us_per_step']:,.0f} µs", "machine: PostgreSQL, model server, bench"),
        ("1. throughput, sync, 2 workers", "3-step tasks/s · steps/s", f"{a_2w['tasks_per_s']:,.0f} · {a_2w['steps_per_s']:,.0f}", "workers_per_database = 2"),
        ("", "CPU per step: workers · whole machine", f"{a_2w['worker_cpu_us_per_step']:,.0f} µs · {a_2w['machine_cpu_us_per_step']:,.0f} µs", ""),
        ("1. throughput, async", "3-step tasks/s · steps/s", f"{a_async['tasks_per_s']:,.0f} · {a_async['steps_per_s']:,.0f}", "step_commit = async"),
        ("", "CPU per step: worker · whole machine", f"{a_async['worker_cpu_us_per_step']:,.0f} µs · {a_async['machine_cpu_us_per_step']:,.0f} µs", ""),
        ("2. ceiling, sync", "pgbench steps/s: 1 client · 8 clients", f"{c_sync1['steps_per_s']:,.0f} · {c_sync8['steps_per_s']:,.0f}", "one tool step's statements"),
        ("", "agent_loop ÷ ceiling (1 · 8 clients)", f"{a_sync['steps_per_s'] / c_sync1['steps_per_s']:.2f} · {a_sync['steps_per_s'] / c_sync8['steps_per_s']:.2f}", "target ≥ 1.0"),
        ("", "2 workers ÷ ceiling (1 · 8 clients)", f"{a_2w['steps_per_s'] / c_sync1['steps_per_s']:.2f} · {a_2w['steps_per_s'] / c_sync8['steps_per_s']:.2f}", ""),
        ("2. ceiling, async", "pgbench steps/s: 1 client · 8 clients", f"{c_async1['steps_per_s']:,.0f} · {c_async8['steps_per_s']:,.0f}", "synchronous_commit = off"),
        ("", "agent_loop ÷ ceiling (1 · 8 clients)", f"{a_async['steps_per_s'] / c_async1['steps_per_s']:.2f} · {a_async['steps_per_s'] / c_async8['steps_per_s']:.2f}", "target ≥ 1.0"),
        ("3. peers (no-op)", "agent_loop 1-step tasks/s: 1 · 2 workers", f"{one['tasks_per_s']:,.0f} · {one_2w['tasks_per_s']:,.0f}", "a model call + reflection each"),
        ("", "CPU per 1-step task: worker · model server · whole machine", f"{one['worker_cpu_us_per_step']:,.0f} µs · {one.get('model_server_cpu_us_per_step', 0):,.0f} µs · {one['machine_cpu_us_per_step']:,.0f} µs", "one worker"),
        ("", "pg-boss jobs/s · ratio (1 · 2 workers)", f"{boss['jobs_per_s']:,.0f} · {one['tasks_per_s'] / boss['jobs_per_s']:.2f} · {one_2w['tasks_per_s'] / boss['jobs_per_s']:.2f}", "agent_loop ÷ peer, target > 1"),
        ("", "graphile-worker jobs/s · ratio (1 · 2 workers)", f"{graphile['jobs_per_s']:,.0f} · {one['tasks_per_s'] / graphile['jobs_per_s']:.2f} · {one_2w['tasks_per_s'] / graphile['jobs_per_s']:.2f}", "agent_loop ÷ peer, target > 1"),
        ("", "3-step task vs 3 peer jobs (time)", f"{(3 / boss['jobs_per_s']) / (1 / a_sync['tasks_per_s']):.2f} · {(3 / graphile['jobs_per_s']) / (1 / a_sync['tasks_per_s']):.2f}", "pg-boss · graphile; > 1: the task is cheaper"),
        ("", "lowest–highest of the runs: agent_loop 1-step (1 · 2 workers) · graphile-worker",
         f"{span(one, 'tasks_per_s')} · {span(one_2w, 'tasks_per_s')} · {span(graphile, 'jobs_per_s')}",
         "per s; this machine's speed drifts"),
        ("", "pickup p50 / p99: pg-boss", f"{boss['pickup_p50_ms']:.1f} / {boss['pickup_p99_ms']:.1f} ms", "polls, 0.5 s minimum"),
        ("", "pickup p50 / p99: graphile-worker", f"{graphile['pickup_p50_ms']:.1f} / {graphile['pickup_p99_ms']:.1f} ms", "LISTEN/NOTIFY"),
        ("", "WAL per job: agent_loop · pg-boss · graphile", f"{one['wal_bytes_per_task']:,.0f} · {boss['wal_bytes_per_job']:,.0f} · {graphile['wal_bytes_per_job']:,.0f} B", "agent_loop: per 1-step task"),
        ("4. pickup", "submit's commit → first model request p50 / p99", f"{pick['p50_ms']:.1f} / {pick['p99_ms']:.1f} ms", "idle worker; target p99 < 5 ms"),
        ("5. WAL, sync", "per step · per 3-step task · records/step", f"{a_sync['wal_bytes_per_step']:,.0f} B · {a_sync['wal_bytes_per_task']:,.0f} B · {a_sync['wal_records_per_step']:.1f}", f"tool results of a few bytes; ceiling: {c_sync8['wal_bytes_per_step']:,.0f} B · {c_sync8['wal_records_per_step']:.1f} rec/step"),
        ("", "WAL flushes per step", f"{a_sync['wal_syncs_per_step']:.2f}", ""),
        ("5. WAL, async", "per step · per 3-step task · records/step", f"{a_async['wal_bytes_per_step']:,.0f} B · {a_async['wal_bytes_per_task']:,.0f} B · {a_async['wal_records_per_step']:.1f}", ""),
        ("", "WAL flushes per step", f"{a_async['wal_syncs_per_step']:.2f}", "one per group of steps committed together"),
        ("5. WAL of one more step", "10-step − 3-step task, per extra step · per step of a 10-step task", f"{sw['wal_bytes_per_extra_step']:,.0f} B · {sw['wal_bytes_per_step_10']:,.0f} B", "goals of equal length; a tool call and its result"),
        (f"5. WAL, {pw['result_bytes']}-byte tool results", "per step of 3-step tasks, the worker's: sync · async",
         f"{pw['worker_wal_bytes_per_step_sync']:,.0f} · {pw['worker_wal_bytes_per_step_async']:,.0f} B",
         "from the submit's commit: claim, steps, end, as the target's raw-SQL figure; target ≤ 1.4 KB"),
        ("", "per step with the submit's inserts: 3-step tasks sync · async · 10-step tasks",
         f"{pw['wal_bytes_per_step_sync']:,.0f} · {pw['wal_bytes_per_step_async']:,.0f} · {pw['wal_bytes_per_step_10']:,.0f} B",
         f"the worker's alone, 10-step tasks: {pw['worker_wal_bytes_per_step_10']:,.0f} B"),
        ("", "one more step · the ceiling's statements with the same rows",
         f"{extra_payload_step(pw):,.0f} · {pw['ceiling_wal_bytes_per_step']:,.0f} B",
         "10-step − 3-step task, per extra step · pgbench, a commit per step"),
        ("6. in flight", f"{r['in_flight_tasks']} 3-step tasks, 1 s model: steps/s", f"{fl['steps_per_s']:,.1f} ({span(fl, 'steps_per_s')})", f"median of the runs; {fl['seconds']:.2f} s after the submit's commit, the last claim after {fl.get('last_claimed_s', 0):.2f} s; {fl['failed']:.0f} failed; target ≥ 800"),
        ("", "worker RSS peak · threads", f"{fl['rss_mb']:.0f} MB · {fl['threads']:.0f}", "target RSS < 200 MB"),
        ("", "submit latency idle → under load", f"{fl['submit_idle_ms']:.1f} → {fl['submit_busy_ms']:.1f} ms", "median of 20, psql \\timing"),
    ]


def extra_payload_step(pw):
    """WAL of one more step with the payload: 10-step minus 3-step tasks, per extra step."""
    return (pw["wal_bytes_per_step_10"] * 10 - pw["wal_bytes_per_task_3"]) / 7


def targets(r):
    """The targets of the benchmark's issue, met or not, from this run's figures."""
    a, c8, one = r["agent_3step_sync"], r["ceiling_sync_8"], r["agent_1step_sync"]
    a_2w, one_2w = r["agent_3step_sync_2w"], r["agent_1step_sync_2w"]
    fl, pw = r["in_flight"], r["payload_wal"]
    boss, graphile = r["pg-boss"]["jobs_per_s"], r["graphile-worker"]["jobs_per_s"]
    checks = [
        ("steps/s ≥ 1.0 × pgbench ceiling (8 clients, sync): 1 · 2 workers",
         f"{a['steps_per_s'] / c8['steps_per_s']:.2f} · {a_2w['steps_per_s'] / c8['steps_per_s']:.2f}",
         max(a["steps_per_s"], a_2w["steps_per_s"]) >= c8["steps_per_s"]),
        ("ahead of pg-boss on no-op work: 1 · 2 workers",
         f"{one['tasks_per_s'] / boss:.2f} · {one_2w['tasks_per_s'] / boss:.2f}",
         max(one["tasks_per_s"], one_2w["tasks_per_s"]) > boss),
        ("ahead of graphile-worker on no-op work: 1 · 2 workers",
         f"{one['tasks_per_s'] / graphile:.2f} · {one_2w['tasks_per_s'] / graphile:.2f}",
         max(one["tasks_per_s"], one_2w["tasks_per_s"]) > graphile),
        ("pickup p99 < 5 ms", f"{r['pickup']['p99_ms']:.1f} ms", r["pickup"]["p99_ms"] < 5),
        (f"WAL per step ≤ 1.4 KB = 1,400 B, {pw['result_bytes']}-byte tool results, 3-step tasks, "
         "the worker's (claim, steps, end: the raw-SQL figure's scope), sync · async",
         f"{pw['worker_wal_bytes_per_step_sync']:,.0f} · {pw['worker_wal_bytes_per_step_async']:,.0f} B "
         f"(with the submit's inserts {pw['wal_bytes_per_step_sync']:,.0f} · {pw['wal_bytes_per_step_async']:,.0f} B; "
         f"10-step tasks {pw['wal_bytes_per_step_10']:,.0f} B)",
         max(pw["worker_wal_bytes_per_step_sync"], pw["worker_wal_bytes_per_step_async"]) <= 1400),
        ("1,000 in flight: ≥ 800 steps/s, RSS < 200 MB", f"{fl['steps_per_s']:,.1f} steps/s, {fl['rss_mb']:.0f} MB",
         fl["steps_per_s"] >= 800 and fl["rss_mb"] < 200),
    ]
    lines = ["| target | this run | met |", "|---|---|---|"]
    lines += [f"| {t} | {v} | {'yes' if ok else 'no'} |" for t, v, ok in checks]
    return "\n".join(lines)


def limits(r):
    """What limits each target, in this run's figures."""
    a, a_2w, c8 = r["agent_3step_sync"], r["agent_3step_sync_2w"], r["ceiling_sync_8"]
    one, graphile, fl = r["agent_1step_sync"], r["graphile-worker"], r["in_flight"]
    sw, pw = r["step_wal"], r["payload_wal"]
    cores_used = a_2w["machine_cpu_us_per_step"] * a_2w["steps_per_s"] / 1e6
    return f"""What limits each target:

- **Ceiling at 8 clients.** One worker is one process, so one core: its CPU per step bounds
  its steps/s, while pgbench's 8 clients use every core. Against the 1-client ceiling, one
  process against one, it is ahead. Two workers per database use every core too, and then the
  machine is the limit: {a_2w['machine_cpu_us_per_step']:,.0f} µs of CPU per step (PostgreSQL, the
  workers, the model server, the benchmark) × {a_2w['steps_per_s']:,.0f} steps/s = {cores_used:.1f} of
  {r['machine']['cores']} cores. An agent step is the bare statements plus an HTTP exchange with
  the model (its JSON written and parsed), the prompt built from the log, and the model server's
  own work on the same cores.
- **graphile-worker.** A no-op job is a claim and a delete. A 1-step agent task is a claim, an
  HTTP round trip to the model, two step rows (the recalled lessons' keys, the answer), a lesson and a final update:
  {one['wal_bytes_per_task']:,.0f} B of WAL against {graphile['wal_bytes_per_job']:,.0f} B. Here the
  model server shares the two cores: {one.get('model_server_cpu_us_per_step', 0):,.0f} µs of its CPU per task,
  {one['machine_cpu_us_per_step']:,.0f} µs for the whole machine, and
  {one['machine_cpu_us_per_step'] * one['tasks_per_s'] / 1e6:.1f} of 2 cores busy at {one['tasks_per_s']:,.0f} tasks/s.
- **WAL per step.** A step itself (a tool call and its result, the task row's HOT update)
  writes {sw['wal_bytes_per_extra_step']:,.0f} B with a result of a few bytes, {extra_payload_step(pw):,.0f} B with
  a {pw['result_bytes']}-byte one: the difference between 10-step and 3-step tasks, per extra step. The
  raw statements of such a step, one commit each, write {pw['ceiling_wal_bytes_per_step']:,.0f} B (the ceiling's
  script with the same rows). Each task adds its insert, claim and final update (two of them
  not HOT: status is in index predicates), its perceive row (the keys of its recalled lessons)
  and answer row, and its lesson (the goal quoted, and its words for recall): about
  {pw['wal_bytes_per_task_3'] - 2 * extra_payload_step(pw):,.0f} B, which a 3-step task spreads over three
  steps and a 10-step task over ten ({pw['wal_bytes_per_step_10']:,.0f} B per step with the payload).
  The target's raw-SQL figure is a claim, a 500-byte step insert and a complete: no enqueue.
  The target is checked against the same scope, the worker's WAL from the submit's commit:
  {pw['worker_wal_bytes_per_step_sync']:,.0f} B per step of a 3-step task. With the submit's inserts (the task row and
  two index entries, {(pw['wal_bytes_per_step_sync'] - pw['worker_wal_bytes_per_step_sync']) * 3:,.0f} B a task) a 3-step task writes
  {pw['wal_bytes_per_step_sync']:,.0f} B per step, over 1.4 KB, and a 10-step task {pw['wal_bytes_per_step_10']:,.0f} B, under it.
  `WAL_STATS=1 bench/quick.sh` breaks a run's WAL down by record type.
- **1,000 in flight.** 1,000 tasks of three 1-second calls cannot finish in less than 3 s:
  1,000 steps/s is the ceiling of this workload; this run reached {fl['steps_per_s']:,.1f}
  ({fl['seconds']:.2f} s). The tasks are claimed in batches (`agent_loop.claim_batch`), each
  with its perceive phase (recall of lessons, the perceive row): the last was claimed
  {fl.get('last_claimed_s', 0):.2f} s after the submit, so its three calls end that much later,
  and the worker's CPU per step bounds how fast 1,000 answers arriving together are committed.
"""


def table(r):
    lines = ["| workload | figure | value | note |", "|---|---|---|---|"]
    lines += [f"| {w} | {f} | {v} | {n} |" for w, f, v, n in rows(r)]
    return "\n".join(lines)


def svg(r):
    """Horizontal bars: steps (or jobs) per second of each contender, in the same run."""
    bars = [
        ("agent_loop steps/s, sync", r["agent_3step_sync"]["steps_per_s"], "#2f6db5"),
        ("agent_loop steps/s, sync, 2 workers", r["agent_3step_sync_2w"]["steps_per_s"], "#2f6db5"),
        ("pgbench ceiling, sync, 1 client", r["ceiling_sync_1"]["steps_per_s"], "#999999"),
        ("pgbench ceiling, sync, 8 clients", r["ceiling_sync_8"]["steps_per_s"], "#999999"),
        ("agent_loop steps/s, async", r["agent_3step_async"]["steps_per_s"], "#2f6db5"),
        ("pgbench ceiling, async, 1 client", r["ceiling_async_1"]["steps_per_s"], "#999999"),
        ("pgbench ceiling, async, 8 clients", r["ceiling_async_8"]["steps_per_s"], "#999999"),
        ("agent_loop 1-step tasks/s", r["agent_1step_sync"]["tasks_per_s"], "#2f6db5"),
        ("agent_loop 1-step tasks/s, 2 workers", r["agent_1step_sync_2w"]["tasks_per_s"], "#2f6db5"),
        ("pg-boss no-op jobs/s", r["pg-boss"]["jobs_per_s"], "#c0504d"),
        ("graphile-worker no-op jobs/s", r["graphile-worker"]["jobs_per_s"], "#c0504d"),
        (f"agent_loop steps/s, {r['in_flight_tasks']} in flight, 1 s model", r["in_flight"]["steps_per_s"], "#2f6db5"),
    ]
    top = max(v for _, v, _ in bars)
    width, label_w, bar_h, gap = 860, 300, 22, 8
    height = 40 + len(bars) * (bar_h + gap)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">',
           f'<text x="10" y="20" font-weight="bold">agent_loop benchmark, {r["machine"]["cores"]} cores ({r["machine"]["date"]}): per second, median of {r["runs"]} runs</text>']
    for i, (label, value, colour) in enumerate(bars):
        y = 35 + i * (bar_h + gap)
        w = (width - label_w - 80) * value / top
        out.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{label}</text>')
        out.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>')
        out.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{value:,.0f}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(r, directory):
    m = r["machine"]
    text = f"""# Benchmark results

Produced by `bench/run.sh` on {m['date']}: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB,
{m['os']}, PostgreSQL {m['postgres']}. One throwaway cluster (fsync on, `shared_buffers = 256MB`),
one agent_loop worker (two where a row says so), the benchmark's model server (bench/model, a real HTTP server on loopback; a real model would run on another machine) on the same two cores. {r['tasks']:,} tasks or jobs per
run; each figure is the median of {r['runs']} runs, and every ratio compares figures of this run.

![figures](results.svg)

{table(r)}

## Against the targets

{targets(r)}

{limits(r)}
What each workload does is in the docstrings of `bench/bench.py`; the raw figures are in
`bench/results.json`.
"""
    with open(os.path.join(directory, "RESULTS.md"), "w") as f:
        f.write(text)
    with open(os.path.join(directory, "results.svg"), "w") as f:
        f.write(svg(r))
    print(table(r))


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    with open(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "results.json")) as f:
        write(json.load(f), here)
