#!/usr/bin/env bash
# Cold start of one model from several artifacts (or switches), alternated process by process:
# each round runs `apus load-bench` once per variant and prints its load, first run (plans + first
# inference) and second run, and the whole process's wall time.
# Usage: scripts/perf/cold-start.sh THREADS ROUNDS VARIANT...
#   VARIANT is FILE.apus or ENV=VALUE:FILE.apus, e.g.
#   scripts/perf/cold-start.sh 2 5 APUS_BLAS_PACKED=0:/tmp/pp/resnet50.apus /tmp/pp/resnet50.apus /tmp/pa/resnet50.apus
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=$1 rounds=$2
shift 2
for _ in $(seq "$rounds"); do
    for variant in "$@"; do
        setting="" file="$variant"
        if [[ "$variant" == *=*:* ]]; then setting="${variant%%:*}" file="${variant#*:}"; fi
        start=$(date +%s%N)
        out=$(env ${setting:+"$setting"} .build/release/apus load-bench "$file" --threads "$threads" 2>&1)
        end=$(date +%s%N)
        fields=$(awk '/^(load_ms|first_run_ms|second_run_ms) /{printf "%s %s ", $1, $2}' <<<"$out")
        echo "$variant ${fields}wall_ms $(((end - start) / 1000000))"
    done
done
