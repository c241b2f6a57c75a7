#!/usr/bin/env bash
# The browser the playground tests drive: Debian's chromium (Playwright's own browser download cannot run here).
# Idempotent: does nothing when /usr/bin/chromium exists.
set -euo pipefail
[[ -x /usr/bin/chromium ]] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser: install Chromium at /usr/bin/chromium (Debian/Ubuntu: apt-get install chromium)" >&2
  exit 1
fi
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "browser: installing Debian's chromium for the playground tests"
$sudo apt-get update -qq || true
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
[[ -x /usr/bin/chromium ]] || { echo "browser: apt-get installed no /usr/bin/chromium" >&2; exit 1; }
