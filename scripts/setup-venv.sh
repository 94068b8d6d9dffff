#!/usr/bin/env bash
# Creates (once) the cached Python environment used by fixtures, tests and benchmarks, and
# prints its path. Keyed by the content of requirements-dev.txt, so editing it makes a new one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
key="$(sha256sum "$here/requirements-dev.txt" | cut -c1-12)"
venv="${APUS_CACHE:-$HOME/.cache/apus}/venv-$key"
if [[ ! -x "$venv/bin/python" || ! -f "$venv/.complete" ]]; then
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --upgrade pip >&2
    "$venv/bin/pip" install -q -r "$here/requirements-dev.txt" >&2
    touch "$venv/.complete"
fi
echo "$venv"
