#!/usr/bin/env bash
# Install this mistral-local offline bundle on a machine with no package index.
#
#   bash install.sh [--python PYTHON] [--prefix DIR]
#
# DIR (default /opt/mistral-local) gets the project and the unpacked wheels. PYTHON is the interpreter whose
# environment gets the packages; by default a new virtual environment in DIR/venv that also sees the system's own
# packages (a GPU image's CUDA torch). Only the parts SHA256SUMS names are read, in its order, each once: copied into
# a private directory and checked there, then unpacked from that copy (a part not named is refused). Every wheel is
# checked against the hash the resolver accepted; pip never looks for an index.
#
# The hashes catch damage, not tampering: whoever can change the parts can change SHA256SUMS too. Compare the digest
# of SHA256SUMS this script prints with the one the builder printed, over a channel you trust.
set -euo pipefail
umask 022
here=$(cd "$(dirname "$0")" && pwd)
python=""
prefix=/opt/mistral-local
while (($#)); do
  case $1 in
    --python) python=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    *) echo "usage: bash install.sh [--python PYTHON] [--prefix DIR]" >&2; exit 2 ;;
  esac
done
want_python=@PYTHON@

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/SHA256SUMS" "$work/SHA256SUMS"
echo "install: SHA256SUMS digest $(sha256sum <"$work/SHA256SUMS" | cut -d' ' -f1) (compare it with the builder's)"
damaged() { echo "install: a part is damaged or missing${1:+ ($1)}" >&2; exit 1; }
names=()
while read -r digest name; do
  [[ $digest =~ ^[0-9a-f]{64}$ && $name =~ ^bundle\.tar\.part-[0-9]{3}$ ]] || damaged "SHA256SUMS: $name"
  names+=("$name")
done <"$work/SHA256SUMS"
((${#names[@]})) || damaged "SHA256SUMS names no part"
for part in "$here"/bundle.tar.part-*; do
  [[ " ${names[*]} " == *" $(basename "$part") "* ]] || damaged "$(basename "$part") is not in SHA256SUMS"
done
for name in "${names[@]}"; do
  cp "$here/$name" "$work/$name" || damaged "$name"
done
(cd "$work" && sha256sum --check --quiet --strict SHA256SUMS) || damaged
mkdir -p "$prefix"
rm -rf "$prefix/bundle"
mkdir "$prefix/bundle"
(cd "$work" && cat "${names[@]}") | tar -x --no-same-owner --no-same-permissions -C "$prefix/bundle"
rm -rf "$work"

if [[ -z $python ]]; then
  python3 -m venv --system-site-packages "$prefix/venv"
  python=$prefix/venv/bin/python
fi
have_python=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [[ $have_python != "$want_python" ]]; then
  echo "install: this bundle is for Python $want_python; $python is $have_python" >&2
  exit 1
fi
# What the bundle left out, the target must have (at the version it was built for; local labels such as +cu130 aside).
"$python" - "$prefix/bundle/have.txt" <<'PY'
import sys
from importlib import metadata
missing = []
for line in open(sys.argv[1]).read().split():
    name, version = line.split("==")
    try:
        found = metadata.version(name)
    except metadata.PackageNotFoundError:
        found = None
    if found is None or found.split("+")[0] != version.split("+")[0]:
        missing.append(f"{line} (found: {found or 'nothing'})")
if missing:
    sys.exit("install: this bundle counts on the target having " + ", ".join(missing))
PY
# The requirements are the whole resolved set, each pinned to its hash: pip installs them as they are (--no-deps),
# since a resolver may not know that the target's own torch stands in for the one vLLM names.
pip=("$python" -m pip install --isolated --no-index --disable-pip-version-check --no-deps)
"${pip[@]}" --find-links "$prefix/bundle/wheels" --require-hashes -r "$prefix/bundle/requirements.txt"
"${pip[@]}" --no-build-isolation -e "$prefix/bundle/mistral-local"
echo "install: done. Serve with: $(dirname "$python")/mistral-local serve --model DIR"
