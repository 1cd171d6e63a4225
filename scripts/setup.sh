#!/usr/bin/env bash
# Set up hybrid-nas on a fresh machine: the embedded dataset (Debian's dataset-fashion-mnist), tcmalloc
# (libtcmalloc-minimal4: the `nas` command runs on it where it is there, nas/malloc.py), a virtual
# environment in .venv with the CPU build of torch first (a plain `torch` requirement could pull a
# multi-GB CUDA build), then the package. `--test` also installs the test extras and Chromium (for the
# dashboard's browser test). Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

pkgs=(dataset-fashion-mnist libtcmalloc-minimal4)
[ $want_test = 1 ] && pkgs+=(chromium)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q torch==2.13.0
if [ $want_test = 1 ]; then
  .venv/bin/pip install -q -e ".[test,export]"
else
  .venv/bin/pip install -q -e ".[export,png]"
fi
echo "setup: ready (.venv/bin/nas)"
