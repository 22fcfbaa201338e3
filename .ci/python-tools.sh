#!/usr/bin/env bash
# Installs CI's Python tools, pinned, into target/ci-venv (kept between runs on one machine).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/ci-venv
if [ ! -x "$venv/bin/openapi-spec-validator" ]; then
  bash .ci/python-venv.sh "$venv" 'openapi-spec-validator==0.9.0'
fi
