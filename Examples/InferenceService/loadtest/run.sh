#!/usr/bin/env bash
# Load test of apus-serve on loopback (release build), resnet18 classification of a 224×224 JPEG:
#   phase 1: 50 requests/s for DURATION (default 60 s): zero errors and p99 < 50 ms required;
#   phase 2: closed-loop capacity (CAPACITY_SECONDS, default 20 s, 2 workers);
#   phase 3: 3 × capacity for DURATION: accepted requests keep a bounded p99 (< 3 × the phase-1
#            bound plus one request deadline's worth of queueing is NOT allowed: we require
#            p99(200) < OVERLOAD_P99_MS, default 250), the rest are 503 answered fast
#            (p99(503) < 20 ms), and RSS after is within 10 % of RSS before.
# Needs `hey` (apt-get install hey). Traffic goes to 127.0.0.1 only; every phase is time-bounded.
# Prints a summary; exits non-zero when a requirement fails. RESULTS=file also writes it there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
service="$here/.."
root="$(cd "$service/../.." && pwd)"
duration="${DURATION:-60}"
capacity_seconds="${CAPACITY_SECONDS:-20}"
overload_p99_ms="${OVERLOAD_P99_MS:-250}"
command -v hey >/dev/null || { echo "hey is missing: apt-get install hey"; exit 1; }
venv="$(bash "$root/scripts/setup-venv.sh")"
python="$venv/bin/python"

cd "$service"
swift build -c release --product apus-serve 2>&1 | grep -E "error|omplete" | tail -3 || true
binary="$(swift build -c release --show-bin-path)/apus-serve"

work="$(mktemp -d)"
artifacts="$(bash "$root/scripts/fixtures/artifacts/cached.sh")"
photos="$(bash "$root/scripts/fetch-demo-assets.sh")/photos"
mkdir "$work/models"
cp "$artifacts/resnet18.apus" "$work/models/"
photo="$(ls "$photos"/*.jpg | head -1)"
"$python" - "$photo" "$work/image.jpg" <<'PY'
import sys
from PIL import Image
image = Image.open(sys.argv[1]).convert("RGB")
side = min(image.size)
left, top = (image.width - side) // 2, (image.height - side) // 2
image.crop((left, top, left + side, top + side)).resize((224, 224), Image.BICUBIC).save(sys.argv[2], quality=90)
PY

"$binary" --model-dir "$work/models" --port 0 --max-concurrency "${MAX_CONCURRENCY:-2}" \
    --threads-per-inference "${THREADS:-1}" --queue-length "${QUEUE_LENGTH:-4}" --request-deadline 5 2>"$work/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
port=""
for _ in $(seq 1 600); do
    port="$(grep -oE 'port=[0-9]+' "$work/server.log" | head -1 | cut -d= -f2 || true)"
    [[ -n "$port" ]] && curl -fs "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break
    sleep 0.2
done
url="http://127.0.0.1:$port/v1/models/resnet18:classify?top=5"
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
# Warm-up: plans, arenas and page cache.
hey -n 40 -c 2 -m POST -T image/jpeg -D "$work/image.jpg" "$url" >/dev/null

summarize() {  # csv file → "count_200 count_503 other p50_200 p99_200 p99_503 rate"
    "$python" - "$1" "$2" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
seconds = float(sys.argv[2])
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1000 if values else float("nan")
ok = [float(r["response-time"]) for r in rows if r["status-code"] == "200"]
shed = [float(r["response-time"]) for r in rows if r["status-code"] == "503"]
other = len(rows) - len(ok) - len(shed)
print(len(ok), len(shed), other, f"{pct(ok, 50):.1f}", f"{pct(ok, 99):.1f}", f"{pct(shed, 99):.1f}", f"{len(rows) / seconds:.1f}")
PY
}

failures=0
report() { echo "$1"; [[ -n "${RESULTS:-}" ]] && echo "$1" >> "$RESULTS"; true; }

# Phase 1: 50 requests/s, one every 20 ms (paced.py: open loop, evenly spaced arrivals, latency
# counted from each request's scheduled start).
phase1="$("$python" "$here/paced.py" "$url" "$work/image.jpg" --rate 50 --seconds "$duration")"
read -r ok shed other p50 p99 < <("$python" -c "import json,sys; d=json.loads(sys.argv[1]); print(d['ok'], d['shed_503'], d['other'], d['p50_ms'], d['p99_ms'])" "$phase1")
report "phase 1 (50 req/s evenly spaced, ${duration} s): $ok ok, $shed 503, $other other; p50 ${p50} ms, p99 ${p99} ms"
if [[ "$shed" != 0 || "$other" != 0 ]] || ! "$python" -c "import sys; sys.exit(0 if float('$p99') < 50 else 1)"; then
    report "  FAIL: phase 1 needs zero errors and p99 < 50 ms"
    failures=$((failures + 1))
fi
# For comparison, hey at the same average rate: its -q is per worker and the 5 workers tick together,
# so this offers bursts of 5 simultaneous requests every 100 ms (reported, not judged).
hey -z "${duration}s" -q 10 -c 5 -m POST -T image/jpeg -D "$work/image.jpg" -o csv "$url" > "$work/phase1.csv"
read -r ok shed other p50 p99 _ rate < <(summarize "$work/phase1.csv" "$duration")
report "phase 1b (hey -c 5 -q 10: 50 req/s in bursts of 5, ${duration} s): $ok ok, $shed 503, $other other; p50 ${p50} ms, p99 ${p99} ms"

# Phase 2: capacity, closed loop with as many workers as inference threads.
hey -z "${capacity_seconds}s" -c "${MAX_CONCURRENCY:-2}" -m POST -T image/jpeg -D "$work/image.jpg" -o csv "$url" > "$work/phase2.csv"
read -r ok shed other p50 p99 _ capacity < <(summarize "$work/phase2.csv" "$capacity_seconds")
report "phase 2 (capacity, closed loop, ${capacity_seconds} s): ${capacity} req/s; p50 ${p50} ms, p99 ${p99} ms"

# Phase 3: three times the capacity, open loop (40 workers, each at its share of the rate).
target="$("$python" -c "print(round(3 * float('$capacity')))")"
workers=40
per_worker="$("$python" -c "print(max(1, round($target / $workers)))")"
before="$(rss)"
hey -z "${duration}s" -q "$per_worker" -c "$workers" -m POST -T image/jpeg -D "$work/image.jpg" -o csv "$url" > "$work/phase3.csv"
sleep 2
after="$(rss)"
read -r ok shed other p50 p99 p99shed rate < <(summarize "$work/phase3.csv" "$duration")
report "phase 3 (3 × capacity = $((per_worker * workers)) req/s offered, ${duration} s): $ok ok ($(
    "$python" -c "print(f'{$ok / $duration:.1f}')") req/s), $shed fast 503, $other other; p50(200) ${p50} ms, p99(200) ${p99} ms, p99(503) ${p99shed} ms"
report "RSS before ${before} kB, after ${after} kB"
if [[ "$other" != 0 ]] || ! "$python" - "$p99" "$p99shed" "$before" "$after" "$overload_p99_ms" <<'PY'
import sys
p99, p99shed, before, after, bound = map(float, sys.argv[1:])
ok = p99 < bound and p99shed < 20 and abs(after - before) <= 0.10 * before
sys.exit(0 if ok else 1)
PY
then
    report "  FAIL: phase 3 needs no errors but 503, p99(200) < ${overload_p99_ms} ms, p99(503) < 20 ms, RSS within 10 %"
    failures=$((failures + 1))
fi
kill -TERM "$server"
wait "$server" && report "SIGTERM: exit 0" || { report "  FAIL: exit status $? after SIGTERM"; failures=$((failures + 1)); }
echo "load test: $((3 - failures)) passed, $failures failed"
[[ "$failures" == 0 ]]
