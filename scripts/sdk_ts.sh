#!/usr/bin/env bash
# OpenRouter's TypeScript SDK for the tests (tests/api/test_openrouter_sdk_ts.py), exactly as
# tests/sdk_ts/package-lock.json pins it, from the npm registry. Needs Node.js and npm (Debian: apt-get install
# nodejs npm). Idempotent: does nothing when the lock is unchanged since the last install.
set -euo pipefail
cd "$(dirname "$0")/../tests/sdk_ts"
stamp=node_modules/.sdk-stamp
want=$(sha256sum package-lock.json | cut -d' ' -f1)
[[ -f $stamp && $(cat "$stamp") == "$want" ]] && exit 0
command -v npm >/dev/null 2>&1 || { echo "sdk-ts: Node.js and npm are needed for the SDK tests" >&2; exit 1; }
echo "sdk-ts: installing OpenRouter's TypeScript SDK for the tests"
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
echo "$want" >"$stamp"
