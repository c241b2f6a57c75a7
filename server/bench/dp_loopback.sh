#!/usr/bin/env bash
# vLLM multi-node data parallelism with two "nodes" on loopback, on the CPU stack: rank 0 with the API server, rank 1
# headless (`vllm serve --headless`), and a gateway attached to rank 0 as one engine. Prints when rank 0 is ready,
# the status of 8 requests through the gateway, and how the ranks split them (vLLM's own counters). Logs: in a new
# temporary folder. docs/deploy.md quotes a run.
set -u
PY=${PY:-.venv/bin/python}
MODEL=${MODEL:-$HOME/.cache/mistral-local/tiny-mistral-small-3.1}
SERVED=mistralai/mistral-small-3.1-24b-instruct
COMMON=(--tokenizer-mode mistral --config-format mistral --load-format mistral --served-model-name $SERVED
  --max-model-len 4096 --enable-prefix-caching --enforce-eager
  --data-parallel-size 2 --data-parallel-size-local 1 --data-parallel-address 127.0.0.1 --data-parallel-rpc-port 13345)
export VLLM_CPU_KVCACHE_SPACE=1 VLLM_NO_USAGE_STATS=1 HF_HUB_OFFLINE=1
# `--headless` is in the `vllm serve` CLI only, which asks importlib.metadata for the distribution "vllm" while
# building its parser; the CPU build is installed as "vllm-cpu". vLLM's own platform check reads "vllm-cpu" + "+cpu"
# in that case (vllm/platforms/__init__.py); the CLI is given the same answer. The `vllm` package needs none of this.
CLI='import importlib.metadata as m, sys
real = m.version
m.version = lambda name: real("vllm-cpu") + "+cpu" if name == "vllm" else real(name)
sys.argv[0] = "vllm"
from vllm.entrypoints.cli.main import main
main()'
LOGS=$(mktemp -d); echo "logs: $LOGS"
# Each rank in a session of its own: its engine core, workers and DP coordinator rename themselves (VLLM::...), so
# they are ended by session, not by command line.
trap 'pkill -KILL -s "$RANK0"; pkill -KILL -s "$RANK1"; kill "$GATEWAY" 2>/dev/null' EXIT
GATEWAY=""
VLLM_CPU_OMP_THREADS_BIND=0 setsid $PY -m vllm.entrypoints.openai.api_server --model "$MODEL" "${COMMON[@]}" \
  --host 127.0.0.1 --port 8200 > "$LOGS/rank0.log" 2>&1 &
RANK0=$!
VLLM_CPU_OMP_THREADS_BIND=1 setsid $PY -c "$CLI" serve "$MODEL" "${COMMON[@]}" --headless --data-parallel-start-rank 1 \
  > "$LOGS/rank1.log" 2>&1 &
RANK1=$!
for i in $(seq 1 300); do
  if curl -sf localhost:8200/health >/dev/null; then echo "rank 0 ready after $i s"; break; fi
  sleep 1
done
$PY -m server serve --engine-url http://127.0.0.1:8200 --port 8300 > "$LOGS/gateway.log" 2>&1 &
GATEWAY=$!
for i in $(seq 1 120); do
  if curl -sf localhost:8300/health/ready >/dev/null; then echo "gateway ready after $i s"; break; fi
  sleep 1
done
for i in $(seq 1 8); do
  curl -s localhost:8300/api/v1/chat/completions -H 'content-type: application/json' -o /dev/null -w "%{http_code} " \
    -d '{"messages":[{"role":"user","content":"hello '$i'"}],"max_tokens":4}'
done
echo
curl -s localhost:8200/metrics | grep -E '^vllm:request_success_total\{engine="[01]",finished_reason="length"'
