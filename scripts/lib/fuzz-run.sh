# Shared by scripts/fuzz-*.sh: runs a built libFuzzer target and reports. Sourced, not run.
# Expects: binary, package, work, jobs, seconds, max_len. Usage: fuzz_run DICTIONARY
fuzz_run() {
    local dictionary="$1" status crashes
    echo "== fuzzing for ${seconds}s ($jobs job(s)); corpus $work/corpus"
    local log="$work/fuzz.log"
    local parallel=""
    if [ "$jobs" -gt 1 ]; then
        # libFuzzer's -jobs mode writes fuzz-<n>.log into the current folder.
        parallel="-jobs=$jobs -workers=$jobs"
        cd "$work"
        rm -f "$work"/fuzz-*.log
    fi
    set +e
    # shellcheck disable=SC2086
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}" \
    "$binary" "$work/corpus" "$work/seeds" \
        -dict="$dictionary" \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -artifact_prefix="$work/crashes/" -print_final_stats=1 \
        $parallel ${APUS_FUZZ_ARGS:-} >"$log" 2>&1
    status=$?
    set -e
    if [ "$jobs" -gt 1 ]; then cat "$work"/fuzz-*.log >>"$log" 2>/dev/null || true; fi

    grep -E "^(#[0-9]+.*(DONE|pulse)|stat::|Done [0-9]+ runs)" "$log" | tail -12
    crashes=$(find "$work/crashes" -type f | wc -l)
    if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        echo "== FAILED (exit $status, $crashes crashing input(s) in $work/crashes); log: $log" >&2
        grep -E "ERROR|SUMMARY|==[0-9]+==|Fatal|abort|does not survive|not stable" "$log" | head -20 >&2
        exit 1
    fi
    echo "== no crashes; log: $log"
}
