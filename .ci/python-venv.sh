#!/usr/bin/env bash
# Makes a Python virtual environment at $1 and installs the pinned requirements that follow into it:
#   bash .ci/python-venv.sh target/ci-venv 'openapi-spec-validator==0.9.0'
#
# `python3 -m venv` installs pip through ensurepip and, when that fails, prints only "returned
# non-zero exit status 1": the reason (a full disk, a missing wheel) is swallowed. This script
# checks the disk first, shows ensurepip's own output when it fails, and then falls back to a venv
# without pip into which the machine's own pip installs, so that one broken ensurepip does not fail
# CI on its own.
set -euo pipefail
venv=$1
shift
parent=$(dirname "$venv")
mkdir -p "$parent"

# pip and the tools need about 100 MiB; say so plainly instead of failing half-way through.
free_kib=$(df -Pk "$parent" | awk 'NR == 2 { print $4 }')
if [ "${free_kib:-0}" -lt 262144 ]; then
  echo "python-venv.sh: only $((free_kib / 1024)) MiB free under $parent; free some disk (cargo clean, old target directories) and run again" >&2
  df -h "$parent" >&2
  exit 1
fi

rm -rf "$venv"
if ! python3 -m venv "$venv" 2>/dev/null; then
  echo "python-venv.sh: \`python3 -m venv $venv\` failed; ensurepip said:" >&2
  rm -rf "$venv"
  python3 -m venv --without-pip "$venv"
  "$venv/bin/python3" -m ensurepip --upgrade --default-pip >&2 || true
  df -h "$parent" >&2
  if ! "$venv/bin/python3" -m pip --version >/dev/null 2>&1; then
    echo "python-venv.sh: installing into $venv with the machine's own pip instead" >&2
    python3 -m pip --python "$venv/bin/python3" install --quiet --disable-pip-version-check "$@"
    exit 0
  fi
fi
"$venv/bin/python3" -m pip install --quiet --disable-pip-version-check "$@"
