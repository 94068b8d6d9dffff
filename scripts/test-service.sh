#!/usr/bin/env bash
# Tests the example inference service (Examples/InferenceService):
#   1. swift test in the service package: the real server over real HTTP on loopback, every
#      endpoint and error, load shedding, deadlines, slow clients, SIGTERM draining;
#   2. a client nobody here wrote: tritonclient.http checks liveness, readiness, metadata and
#      infers every fixture artifact's golden examples against the stored PyTorch outputs;
#   3. a real photo classified through /v1/models/{name}:classify with curl;
#   4. the deploy/ YAML parses.
# The load test is separate and slower: Examples/InferenceService/loadtest/run.sh.
# Exits non-zero on any failure. Build output stays in Examples/InferenceService/.build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
service="$root/Examples/InferenceService"
venv="$(bash "$root/scripts/setup-venv.sh")"
python="$venv/bin/python"

echo "== deploy/ manifests parse"
"$python" -c "import yaml" 2>/dev/null || "$venv/bin/pip" install -q pyyaml >&2
"$python" - "$root"/deploy/kubernetes/*.yaml <<'PY'
import sys, yaml
for path in sys.argv[1:]:
    documents = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    assert documents, f"{path}: empty"
    for d in documents:
        assert "apiVersion" in d and "kind" in d, f"{path}: not a Kubernetes object"
    print(f"{path}: {', '.join(d['kind'] for d in documents)}")
PY

echo "== swift test (service package)"
cd "$service"
swift build --build-tests 2>&1 | grep -E "error|warning: unre" || true
swift build --build-tests >/dev/null
swift test --skip-build 2>&1 | tail -n 40 | tee /tmp/apus-service-swift-test.log
grep -qE "Test run with [0-9]+ tests? (in [0-9]+ suites? )?passed" /tmp/apus-service-swift-test.log

echo "== tritonclient against the fixture artifacts"
if ! "$python" -c "import tritonclient.http" 2>/dev/null; then
    "$venv/bin/pip" install -q 'tritonclient[http]' >&2
fi
artifacts="$(bash "$root/scripts/fixtures/artifacts/cached.sh")"
photos="$(bash "$root/scripts/fetch-demo-assets.sh")/photos"
models="$(mktemp -d)"
log="$(mktemp)"
cp "$artifacts"/*.apus "$models/"
binary="$(swift build --show-bin-path)/apus-serve"
"$binary" --model-dir "$models" --port 0 --host 127.0.0.1 2>"$log" &
server=$!
cleanup() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$models" "$log"
}
trap cleanup EXIT
port=""
for _ in $(seq 1 600); do
    port="$(grep -oE 'port=[0-9]+' "$log" | head -1 | cut -d= -f2 || true)"
    [[ -n "$port" ]] && curl -fs "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$log"; echo "server exited"; exit 1; }
    sleep 0.5
done
curl -fs "http://127.0.0.1:$port/v2/health/ready" >/dev/null || { cat "$log"; echo "server never became ready"; exit 1; }
"$python" "$service/clients/triton_check.py" "127.0.0.1:$port" "$models"/*.apus

echo "== classify a real photo"
photo="$(ls "$photos"/*.jpg | head -1)"
reply="$(curl -fsS -X POST -H 'Content-Type: image/jpeg' --data-binary "@$photo" \
    "http://127.0.0.1:$port/v1/models/resnet18:classify?top=3")"
echo "$reply"
"$python" -c 'import json,sys; r=json.loads(sys.argv[1]); assert len(r["predictions"])==3 and r["predictions"][0]["probability"]>0, r' "$reply"
status="$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary 'not an image' -H 'Content-Type: image/jpeg' \
    "http://127.0.0.1:$port/v1/models/resnet18:classify")"
[[ "$status" == 400 ]] || { echo "undecodable image gave $status, not 400"; exit 1; }

echo "== SIGTERM: exit status 0"
kill -TERM "$server"
set +e
wait "$server"
code=$?
set -e
[[ "$code" == 0 ]] || { echo "apus-serve exited $code after SIGTERM"; tail -5 "$log"; exit 1; }
echo "service tests: all passed"
