# Throwaway PostgreSQL 15 clusters with agent_loop preloaded, and the scripted model server.
# Sourced by pg_test/run, scripts/demo.sh and bench. Clusters run as the postgres user (initdb
# refuses root) in a temporary directory, on a Unix socket only.

PG_BIN=/usr/lib/postgresql/15/bin
PG_LIB=/usr/lib/postgresql/15/lib
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else sudo -u postgres -E "$@"; fi
}

# cluster_start DIR [extra postgresql.conf lines...]: initdb and start; sets PGHOST, PGPORT, PGUSER.
cluster_start() {
    local dir=$1; shift
    mkdir -p "$dir"
    chown postgres: "$dir" 2>/dev/null || true
    as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
    export PGHOST=$dir PGPORT=${PGPORT:-$(free_port)} PGUSER=postgres
    {
        echo "shared_preload_libraries = 'agent_loop'"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$dir'"
        echo "port = $PGPORT"
        echo "max_worker_processes = 32"
        for line in "$@"; do echo "$line"; done
    } | as_postgres tee -a "$dir/data/postgresql.conf" >/dev/null
    as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
}

cluster_stop() {
    local dir=$1
    [ -f "$dir/data/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
    return 0
}

# model_server_start DIR [args...]: starts the scripted model server; sets MODEL_PORT, MODEL_PID.
model_server_start() {
    local dir=$1; shift
    rm -f "$dir/model.port"
    python3 "$REPO_ROOT/pg_test/model_server.py" --port-file "$dir/model.port" "$@" >"$dir/model_server.log" 2>&1 &
    MODEL_PID=$!
    model_port_wait "$dir"
}

# bench_model_start DIR [args...]: the benchmark's model server instead (bench/model: the echo
# and scripted models over Chat Completions, a fraction of the CPU); built first if needed.
bench_model_start() {
    local dir=$1; shift
    (cd "$REPO_ROOT" && cargo build --release --quiet -p agent_loop_bench_model)
    rm -f "$dir/model.port"
    "$REPO_ROOT/target/release/bench_model" --port-file "$dir/model.port" "$@" >"$dir/model_server.log" 2>&1 &
    MODEL_PID=$!
    model_port_wait "$dir"
}

model_port_wait() {
    for _ in $(seq 100); do [ -s "$1/model.port" ] && break; sleep 0.05; done
    MODEL_PORT=$(cat "$1/model.port")
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# probe_cluster_start NAME [extra postgresql.conf lines...]: for the quick benchmark probes. A
# throwaway cluster and model server, removed at exit (sets work), with database "bench"
# holding the extension, the models echo and scripted (instant) and the tool noop(int).
probe_cluster_start() {
    local name=$1; shift
    work=$(mktemp -d "/tmp/agent_loop_$name.XXXXXX"); chmod 755 "$work"
    trap 'cluster_stop "$work"; kill "${MODEL_PID:-}" 2>/dev/null; rm -rf "$work"' EXIT
    bench_model_start "$work"
    cluster_start "$work" "$@"
    as_postgres "$PG_BIN/createdb" -h "$PGHOST" -p "$PGPORT" bench
    psql -X -qAt -d bench -v ON_ERROR_STOP=1 -v url="http://127.0.0.1:$MODEL_PORT/v1" <<'SQL'
CREATE EXTENSION agent_loop;
SELECT agent_loop.add_model('echo', :'url', 'echo', max_concurrency => 64) \g /dev/null
SELECT agent_loop.add_model('scripted', :'url', 'scripted', max_concurrency => 64) \g /dev/null
CREATE FUNCTION noop(x int) RETURNS int LANGUAGE sql AS 'SELECT x';
SELECT agent_loop.register_tool('noop(int)', 'Returns its argument') \g /dev/null
SQL
}
