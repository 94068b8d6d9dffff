#!/usr/bin/env bash
# Installs the Debian packages Apus builds and tests against. Idempotent.
set -euo pipefail
packages=(libopenblas-dev libjpeg62-turbo-dev libpng-dev libonnx-testdata pkg-config curl)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
fi
