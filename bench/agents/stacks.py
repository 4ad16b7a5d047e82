#!/usr/bin/env python3
"""The agent stacks a user would otherwise pick, running agent_loop's 3-step benchmark task.

The task is the same everywhere: the benchmark's scripted model (bench/model, OpenAI Chat
Completions) answers two turns with a call of the tool `noop(x)` and the third with an answer;
the tool runs `SELECT $1` on PostgreSQL; every step is recorded durably in PostgreSQL by the
stack's own persistence.

- langgraph: a LangGraph StateGraph (model node, tool node, a conditional edge) compiled with
  its PostgreSQL checkpointer (langgraph-checkpoint-postgres, AsyncPostgresSaver), a thread per
  task, the default durability ("async": a checkpoint per super-step, written while the next
  step runs). PROCS processes, each running CONCURRENCY tasks at once on asyncio.
- dbos: a DBOS workflow (DBOS Transact, PostgreSQL system database) whose model call and tool
  call are steps (each recorded before the workflow goes on). PROCS processes, each running
  CONCURRENCY workflows at once on threads.

Usage: stacks.py langgraph|dbos TASKS PROCS CONCURRENCY
Environment: MODEL_URL (the scripted model's base URL), DATABASE_URL (the stack's database).
Prints one JSON line: {"stack", "tasks", "seconds", "tasks_per_s", "machine_cpu_ms_per_task",
"wal_bytes_per_task", ...} for the timed part (all processes ready to the last task's end);
every task's answer is checked.
"""

import json
import multiprocessing
import os
import sys
import time

SCRIPT = json.dumps([{"calls": [{"name": "noop", "arguments": {"x": 1}}]},
                     {"calls": [{"name": "noop", "arguments": {"x": 2}}]},
                     {"answer": "done"}])
TOOLS = [{"type": "function", "function": {
    "name": "noop", "description": "Returns its argument",
    "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}}]


def goal(i):
    return f"task {i} SCRIPT: {SCRIPT}"


def request(messages):
    return {"model": "scripted", "messages": messages, "tools": TOOLS}


def tool_message(call, value):
    return {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(value)}


# ---------------------------------------------------------------------------------------------
def langgraph_setup():
    import asyncio
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async def setup():
        async with AsyncPostgresSaver.from_conn_string(os.environ["DATABASE_URL"]) as saver:
            await saver.setup()
    asyncio.run(setup())


def langgraph_run(first, count, concurrency, ready):
    import asyncio
    import operator
    from typing import Annotated, TypedDict

    import httpx
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.graph import END, START, StateGraph
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    class State(TypedDict):
        messages: Annotated[list, operator.add]

    async def main():
        url = os.environ["DATABASE_URL"]
        kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
        async with AsyncConnectionPool(url, min_size=concurrency, max_size=concurrency, kwargs=kwargs,
                                       open=False) as pool, \
                httpx.AsyncClient(base_url=os.environ["MODEL_URL"], timeout=60,
                                  limits=httpx.Limits(max_connections=concurrency)) as http:
            await pool.open(wait=True)

            async def model(state):
                reply = await http.post("/chat/completions", json=request(state["messages"]))
                reply.raise_for_status()
                return {"messages": [reply.json()["choices"][0]["message"]]}

            async def tools(state):
                out = []
                async with pool.connection() as conn:
                    for call in state["messages"][-1]["tool_calls"]:
                        x = json.loads(call["function"]["arguments"])["x"]
                        row = await (await conn.execute("SELECT %s::int AS x", (x,))).fetchone()
                        out.append(tool_message(call, row["x"]))
                return {"messages": out}

            def route(state):
                return "tools" if state["messages"][-1].get("tool_calls") else END

            graph = StateGraph(State)
            graph.add_node("model", model)
            graph.add_node("tools", tools)
            graph.add_edge(START, "model")
            graph.add_conditional_edges("model", route, ["tools", END])
            graph.add_edge("tools", "model")
            app = graph.compile(checkpointer=AsyncPostgresSaver(pool))

            queue = asyncio.Queue()
            for i in range(first, first + count):
                queue.put_nowait(i)
            await asyncio.to_thread(ready.wait)

            async def runner():
                while not queue.empty():
                    i = queue.get_nowait()
                    final = await app.ainvoke({"messages": [{"role": "user", "content": goal(i)}]},
                                              {"configurable": {"thread_id": f"task-{i}"}})
                    assert final["messages"][-1]["content"] == "done", final["messages"][-1]
            await asyncio.gather(*(runner() for _ in range(concurrency)))
    asyncio.run(main())


# ---------------------------------------------------------------------------------------------
def dbos_app():
    import httpx
    import psycopg
    from dbos import DBOS

    DBOS(config={"name": "agent-bench", "system_database_url": os.environ["DATABASE_URL"],
                 "log_level": "WARNING"})
    http = httpx.Client(base_url=os.environ["MODEL_URL"], timeout=60,
                        limits=httpx.Limits(max_connections=64))
    local = __import__("threading").local()

    def connection():
        if not hasattr(local, "conn"):
            local.conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
        return local.conn

    @DBOS.step()
    def call_model(messages):
        reply = http.post("/chat/completions", json=request(messages))
        reply.raise_for_status()
        return reply.json()["choices"][0]["message"]

    @DBOS.step()
    def noop(x):
        return connection().execute("SELECT %s::int", (x,)).fetchone()[0]

    @DBOS.workflow()
    def agent(text):
        messages = [{"role": "user", "content": text}]
        while True:
            message = call_model(messages)
            messages.append(message)
            if not message.get("tool_calls"):
                return message["content"]
            for call in message["tool_calls"]:
                x = json.loads(call["function"]["arguments"])["x"]
                messages.append(tool_message(call, noop(x)))

    return DBOS, agent


def dbos_setup():
    dbos, _ = dbos_app()
    dbos.launch()
    dbos.destroy()


def dbos_run(first, count, concurrency, ready):
    from concurrent.futures import ThreadPoolExecutor
    dbos, agent = dbos_app()
    dbos.launch()

    def one(i):
        assert agent(goal(i)) == "done"
    ready.wait()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(first, first + count)))
    dbos.destroy()


STACKS = {"langgraph": (langgraph_setup, langgraph_run), "dbos": (dbos_setup, dbos_run)}


def main():
    stack, tasks, procs, concurrency = sys.argv[1], *map(int, sys.argv[2:5])
    setup, run = STACKS[stack]
    setup()  # tables and migrations, not timed
    share = -(-tasks // procs)
    ctx = multiprocessing.get_context("spawn")
    # Timed from the moment every process has imported, connected and launched.
    ready = ctx.Barrier(procs + 1)
    workers = [ctx.Process(target=run, args=(p * share, min(share, tasks - p * share), concurrency, ready))
               for p in range(procs)]
    for w in workers:
        w.start()
    ready.wait()
    t0, cpu0, wal0 = time.time(), machine_cpu(), wal_position()
    for w in workers:
        w.join()
    seconds = time.time() - t0
    cpu, wal = machine_cpu() - cpu0, wal_position() - wal0
    if any(w.exitcode for w in workers):
        raise SystemExit(f"{stack}: a process failed")
    print(json.dumps({"stack": stack, "tasks": tasks, "procs": procs, "concurrency": concurrency,
                      "seconds": seconds, "tasks_per_s": tasks / seconds,
                      "machine_cpu_ms_per_task": cpu / tasks * 1e3, "wal_bytes_per_task": wal / tasks}))


def machine_cpu():
    """Busy CPU seconds of the whole machine, all cores."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def wal_position():
    import psycopg
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        return int(conn.execute("SELECT pg_current_wal_lsn() - '0/0'").fetchone()[0])


if __name__ == "__main__":
    main()
