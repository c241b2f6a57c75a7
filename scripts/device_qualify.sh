#!/usr/bin/env bash
# On a GPU machine with no package index: install an offline bundle whose parts were copied into PARTS, then
# qualify the profile, writing everything under OUT. One command, under 10 minutes on one H200:
#
#   bash scripts/device_qualify.sh PARTS [PROFILE] [OUT]        # PROFILE: h200-x1 by default; auto works too
#
# Build the bundle first, on a machine with an index, from the target's own `pip freeze` (docs/deploy.md,
# "Air-gapped servers"), e.g. for a CUDA 13 image with Python 3.12 and torch 2.11.0:
#   mistral-local bundle --out parts --python 3.12 --vllm 0.22.1 --have-file device-freeze.txt --part-size 60M
set -euo pipefail
parts=${1:?usage: bash scripts/device_qualify.sh PARTS [PROFILE] [OUT]}
profile=${2:-h200-x1}
out=${3:-qualify-report}
prefix=${PREFIX:-/tmp/mistral-local}
started=$(date +%s)
mkdir -p "$out"
{ nvidia-smi || true; } >"$out/nvidia-smi.txt" 2>&1
bash "$parts/install.sh" --prefix "$prefix" >"$out/install.log" 2>&1 || { tail -20 "$out/install.log"; exit 1; }
echo "installed in $(($(date +%s) - started)) s"
"$prefix/venv/bin/python" -m pip freeze --isolated >"$out/installed-freeze.txt"
timeout "${QUALIFY_TIMEOUT_S:-570}" "$prefix/venv/bin/mistral-local" qualify --profile "$profile" \
  --out "$out/qualify-$profile"
echo "done in $(($(date +%s) - started)) s: $out/qualify-$profile/report.md"
