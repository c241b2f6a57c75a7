#!/usr/bin/env bash
# Install this mistral-local offline bundle on a machine with no package index.
#
#   bash install.sh [--python PYTHON] [--prefix DIR]
#
# DIR (default /opt/mistral-local) gets the project and the unpacked wheels. PYTHON is the interpreter whose
# environment gets the packages; by default a new virtual environment in DIR/venv that also sees the system's own
# packages (a GPU image's CUDA torch). Every part is checked against SHA256SUMS and every wheel against the hash the
# resolver accepted; pip never looks for an index.
set -euo pipefail
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

(cd "$here" && sha256sum --check --quiet SHA256SUMS) || { echo "install: a part is damaged or missing" >&2; exit 1; }
mkdir -p "$prefix"
rm -rf "$prefix/bundle"
mkdir "$prefix/bundle"
cat "$here"/bundle.tar.part-* | tar -x -C "$prefix/bundle"

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
