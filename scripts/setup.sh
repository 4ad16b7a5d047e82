#!/usr/bin/env bash
# Installs what agent_loop needs to build, test and run, then builds and installs the extension
# into the local PostgreSQL 15. Idempotent: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PGRX_VERSION=0.18.1
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo

missing=()
for pkg in postgresql-15 postgresql-server-dev-15 libclang-dev clang sudo python3 curl g++; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$(cargo pgrx --version 2>/dev/null)" != "cargo-pgrx $PGRX_VERSION" ]; then
    echo "setup: installing cargo-pgrx $PGRX_VERSION (takes a few minutes)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi
if ! grep -qs '^pg15' "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
fi

echo "setup: building and installing the extension"
cargo pgrx install --release --pg-config "$PG_CONFIG" 2>&1 | grep -v '^\s*$' | tail -n 3
