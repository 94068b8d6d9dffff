#!/usr/bin/env python3
"""Apus side by side with ONNX Runtime and PyTorch eager, in one run on this machine.

    python Benchmarks/compare/compare.py [--quick] [--models resnet18,resnet50,...]
        [--batches 1,8] [--threads 1,2] [--rounds 3] [--seconds 2] [--out Docs/benchmarks]

(run it with the project's venv python: scripts/setup-venv.sh prints the venv). It:

1. builds `apus` in release twice, each with the Swift runtime linked in
   (`--static-swift-stdlib`, as a deployment would: the process starts ~5 ms sooner): the default
   target (.build-bench) and `-target-cpu native` (.build-native); --quick builds only the
   default one;
2. gets the model fixtures (scripts/fixtures/models/cached.sh) and, in its own cache folder,
   everything else the peers need, made with make_models.py's own builder (imported, same seeds):
   a PyTorch state dict per model, and for batches > 1 a symbolic-batch ONNX export with a seeded
   input and PyTorch's output for it;
3. checks agreement first: every engine's output for the fixture input against the reference
   (PyTorch's output stored with the fixture), max |diff| / max |reference| <= 1e-4, and exits
   non-zero on any disagreement;
4. measures an OpenBLAS sgemm reference (a tiny C program, plain cblas_sgemm on OpenBLAS's own
   threads, with the core Apus runs) at 1024³ and at the GEMM shapes of ResNet-50's convolutions;
5. runs every engine in its own process, in rounds, with the engine order rotated each round so
   that machine noise hits all engines alike; each process loads, runs once (its cold start is
   timed from spawn to that first result), warms up and runs for --seconds; latencies of all
   rounds are pooled; peak RSS is the child's ru_maxrss (wait4);
6. profiles Apus on resnet50 and mobilenet_v2 (`apus bench --profile --json`) for the conv
   efficiency against sgemm and the top costs;
7. writes OUT/results.md, OUT/results.json and PNG plots.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIXTURE_SCRIPTS = ROOT / "scripts" / "fixtures" / "models"
RELATIVE_TOLERANCE = 1e-4
ALL_MODELS = ["resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0"]
PROFILE_MODELS = ["resnet50", "mobilenet_v2"]
# The GEMMs of ResNet-50's convolutions (M out channels, N = H×W, K = Cin·kh·kw) and a square one.
SGEMM_SHAPES = [
    (1024, 1024, 1024), (64, 12544, 147), (64, 3136, 64), (64, 3136, 576), (256, 3136, 64),
    (128, 784, 1152), (512, 784, 128), (256, 196, 2304), (1024, 196, 256), (512, 49, 4608),
    (2048, 49, 512),
]
PREP_VERSION = "1"


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, **kwargs)


# ---------------------------------------------------------------------------------------------
# Machine


def machine_info() -> dict:
    cpu = "unknown"
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16"]
    try:
        swift = subprocess.run(["swift", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        swift = "unknown"
    versions = {"swift": swift, "python": platform.python_version(), "numpy": np.__version__}
    # Package metadata only: this process stays small (no torch or onnxruntime imported here).
    from importlib import metadata
    for package in ["onnxruntime", "torch", "torchvision"]:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "cpu": cpu,
        "flags": [f for f in wanted if f in flags],
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory": mem,
        "kernel": platform.release(),
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_at_start": os.getloadavg(),
    }


def wait_for_quiet(limit: float, timeout: float) -> None:
    start = time.time()
    while os.getloadavg()[0] >= limit and time.time() - start < timeout:
        log(f"load average {os.getloadavg()[0]:.2f} >= {limit}: waiting for a quiet machine")
        time.sleep(20)
    if os.getloadavg()[0] >= limit:
        log(f"load average still {os.getloadavg()[0]:.2f} after {timeout / 60:.0f} min: measuring anyway")


# ---------------------------------------------------------------------------------------------
# Builds and fixtures


def scratch_path(native: bool) -> Path:
    """Where the benchmarked binary is built: apart from .build, which `swift test` links
    without --static-swift-stdlib (switching that flag rebuilds most modules)."""
    return ROOT / (".build-native" if native else ".build-bench")


def build_apus(native: bool) -> Path:
    scratch = scratch_path(native)
    cmd = ["swift", "build", "-c", "release", "--static-swift-stdlib", "--product", "apus", "--package-path", ROOT,
           "--scratch-path", scratch]
    if native:
        cmd += ["-Xswiftc", "-target-cpu", "-Xswiftc", "native"]
    run(cmd, stdout=sys.stderr)
    binary = scratch / "release" / "apus"
    if not binary.exists():
        raise SystemExit(f"build finished but {binary} is missing")
    return binary


def fixtures_dir(models: list[str]) -> Path:
    out = subprocess.run([FIXTURE_SCRIPTS / "cached.sh", *models], check=True, capture_output=False,
                         stdout=subprocess.PIPE, text=True).stdout.strip()
    return Path(out.splitlines()[-1])


def cache_root() -> Path:
    base = Path(os.environ.get("APUS_CACHE", Path.home() / ".cache" / "apus"))
    key_source = (FIXTURE_SCRIPTS / "make_models.py").read_bytes() + PREP_VERSION.encode()
    key = hashlib.sha256(key_source).hexdigest()[:12]
    path = base / f"compare-{key}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def prepare_peer_files(arch: str, batches: list[int], cache: Path) -> dict:
    """State dict for PyTorch; for batch > 1 a symbolic-batch ONNX model, input and output.
    Made in a child process, so that this one never imports torch (a large parent would slow
    every spawn)."""
    folder = cache / arch
    state_dict = folder / "state_dict.pt"
    dyn = folder / "dynbatch" / "model.onnx"
    needs_dyn = any(b > 1 for b in batches)
    missing_batches = [b for b in batches if b > 1 and not (folder / f"output_b{b}.npy").exists()]
    if not (state_dict.exists() and (not needs_dyn or dyn.exists()) and not missing_batches):
        run([sys.executable, __file__, "--prepare", arch, "--batches", ",".join(map(str, batches))],
            stdout=sys.stderr)
    return {"state_dict": state_dict, "dyn_onnx": dyn if needs_dyn else None, "folder": folder}


def make_peer_files(arch: str, batches: list[int], cache: Path) -> None:
    folder = cache / arch
    folder.mkdir(parents=True, exist_ok=True)
    state_dict = folder / "state_dict.pt"
    dyn = folder / "dynbatch" / "model.onnx"
    needs_dyn = any(b > 1 for b in batches)
    sys.path.insert(0, str(FIXTURE_SCRIPTS))
    import make_models  # the fixtures' own builder: same architecture, seeds and randomisation
    import torch

    torch.set_num_threads(2)
    log(f"preparing peer files for {arch} in {folder}")
    model = make_models.build_model(arch)
    if not state_dict.exists():
        tmp = state_dict.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, state_dict)
    for b in batches:
        if b == 1 or (folder / f"output_b{b}.npy").exists():
            continue
        gen = torch.Generator().manual_seed(make_models.stable_seed(f"{arch}-input-{b}"))
        x = torch.randn((b, *make_models.IMAGE_SHAPE), generator=gen, dtype=torch.float32)
        with torch.no_grad():
            y = model(x).numpy().astype(np.float32)
        np.save(folder / f"input_b{b}.npy", x.numpy())
        np.save(folder / f"output_b{b}.npy", y)
    if needs_dyn and not dyn.exists():
        work = folder / f".dyn-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        fx = make_models.Fixture(f"{arch}_dynbatch", arch, batch=2, dynamic_batch=True)
        gen = torch.Generator().manual_seed(make_models.stable_seed(f"{arch}-input-2"))
        example = torch.randn((2, *make_models.IMAGE_SHAPE), generator=gen, dtype=torch.float32)
        make_models.export(model, fx, example, str(work / "model.onnx"))
        shutil.rmtree(dyn.parent, ignore_errors=True)
        os.replace(work, dyn.parent)


# ---------------------------------------------------------------------------------------------
# Processes


def merged_env(extra: dict | None) -> dict:
    """os.environ with `extra` applied; the key "__clear__" lists variables to remove."""
    env = dict(os.environ)
    for key, value in (extra or {}).items():
        if key == "__clear__":
            for name in value:
                env.pop(name, None)
        else:
            env[key] = value
    return env


def spawn_timed(cmd: list, env: dict | None = None) -> dict:
    """Runs cmd; returns stdout, the time from spawn to its "first run" line on stderr, and
    the child's peak RSS."""
    full_env = merged_env(env)
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=full_env, text=True)
    cold = None
    err_lines = []
    assert proc.stderr is not None and proc.stdout is not None
    for line in proc.stderr:
        if cold is None and line.startswith("first run"):
            cold = time.perf_counter() - t0
            break
        err_lines.append(line)
    out = proc.stdout.read()
    err_lines.extend(proc.stderr.read().splitlines(keepends=True))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{''.join(err_lines)[-3000:]}")
    return {"stdout": out, "cold_s": cold, "peak_rss": usage.ru_maxrss * 1024}


class Engine:
    def __init__(self, name: str, label: str):
        self.name = name
        self.label = label

    def bench_cmd(self, cfg: dict, seconds: float, warmup: int) -> tuple[list, dict]:
        raise NotImplementedError

    def output_cmd(self, cfg: dict, out: Path) -> list:
        raise NotImplementedError

    def takes(self, cfg: dict) -> bool:
        """Whether this engine runs configuration `cfg` at all."""
        return True


class ApusEngine(Engine):
    # OPENBLAS_* variables the caller's environment had; removed from Apus's processes unless
    # --keep-openblas-env, so that Apus picks the OpenBLAS core itself as it does for a user who
    # set nothing (a preset OPENBLAS_CORETYPE wins over Apus's choice by design).
    clear_openblas = True

    def __init__(self, name: str, label: str, binary: Path, extra: list | None = None, batches_only: bool = False):
        super().__init__(name, label)
        self.binary = binary
        # Options added to `apus bench` and `apus run` (`--batch-tail`), and whether the engine
        # runs batches above 1 only (where those options change anything).
        self.extra = extra or []
        self.batches_only = batches_only

    def takes(self, cfg) -> bool:
        return not (self.batches_only and int(cfg["batch"]) == 1)

    def env(self) -> dict:
        return {"__clear__": [k for k in os.environ if k.startswith("OPENBLAS_")]} if self.clear_openblas else {}

    def bench_cmd(self, cfg, seconds, warmup):
        return ([self.binary, "bench", cfg["apus_model"], "--threads", cfg["threads"], "--batch", cfg["batch"],
                 "--input", f"{cfg['input_name']}={cfg['input']}", "--warmup", warmup, "--seconds", seconds,
                 "--json", *self.extra], self.env())

    def run_output(self, cfg, out_dir: Path) -> Path:
        run([self.binary, "run", cfg["apus_model"], "--threads", cfg["threads"], "--input",
             f"{cfg['input_name']}={cfg['input']}", "--output-dir", out_dir, *self.extra], stdout=subprocess.DEVNULL,
            env=merged_env(self.env()))
        safe = "".join(c if c.isalnum() or c in "_-." else "_" for c in cfg["output_name"])
        return out_dir / f"{safe}.npy"


class PeerEngine(Engine):
    def __init__(self, name: str, label: str, python: str):
        super().__init__(name, label)
        self.python = python

    def base(self, cfg) -> list:
        cmd = [self.python, HERE / "peer_runner.py", self.name, "--input", cfg["input"], "--threads", cfg["threads"]]
        if self.name == "ort":
            cmd += ["--onnx", cfg["onnx"]]
        else:
            cmd += ["--arch", cfg["arch"], "--state-dict", cfg["state_dict"]]
        return cmd

    def env(self, cfg) -> dict:
        n = str(cfg["threads"])
        return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}

    def bench_cmd(self, cfg, seconds, warmup):
        return self.base(cfg) + ["--warmup", warmup, "--seconds", seconds], self.env(cfg)

    def run_output(self, cfg, out_dir: Path) -> Path:
        out = out_dir / f"{self.name}.npy"
        run(self.base(cfg) + ["--save-output", out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, **self.env(cfg)})
        return out


def relative_diff(actual: np.ndarray, reference: np.ndarray) -> float:
    if actual.shape != reference.shape:
        return float("inf")
    scale = max(float(np.abs(reference).max()), 1e-12)
    return float(np.abs(actual.astype(np.float64) - reference.astype(np.float64)).max()) / scale


def stats(latencies_ms: list[float]) -> dict:
    a = np.sort(np.asarray(latencies_ms, dtype=np.float64))
    n = len(a)

    def pct(q):
        return float(a[min(n - 1, max(0, int(np.ceil(q * n)) - 1))])

    return {"runs": n, "median_ms": float(np.median(a)), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
            "min_ms": float(a[0]), "mean_ms": float(a.mean())}


# ---------------------------------------------------------------------------------------------
# Main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="resnet18, batch 1, 1 thread, default build only, few runs")
    parser.add_argument("--models", help=f"comma-separated (default: {','.join(ALL_MODELS)})")
    parser.add_argument("--batches", help="comma-separated (default 1,8)")
    parser.add_argument("--threads", help="comma-separated (default 1,2)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 2)")
    parser.add_argument("--seconds", type=float, help="timed seconds per process (default 2; quick 0.5)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--engines", default="apus,apus-native,apus-tail,ort,torch",
                        help="apus-tail: the default build with `--batch-tail`, batches above 1 only")
    parser.add_argument("--no-build", action="store_true", help="use the existing release binaries")
    parser.add_argument("--binary", type=Path,
                        help="the default build's apus binary to use instead of building one (the native "
                             "build is still built unless --no-build)")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--wait-quiet", type=float, default=0,
                        help="before measuring, wait until the 1-minute load average is below this")
    parser.add_argument("--wait-timeout", type=float, default=15, help="minutes --wait-quiet waits at most")
    parser.add_argument("--keep-openblas-env", action="store_true",
                        help="leave OPENBLAS_* variables of this environment in Apus's processes")
    parser.add_argument("--apus-format", choices=["apus", "onnx"], default="apus",
                        help="what Apus loads: the fixture converted by `apus convert` (default, its deployment "
                             "format) or the fixture's .onnx file")
    parser.add_argument("--out", default=str(ROOT / "Docs" / "benchmarks"))
    parser.add_argument("--prepare", help=argparse.SUPPRESS)
    args = parser.parse_args()
    ApusEngine.clear_openblas = not args.keep_openblas_env
    if args.prepare:
        make_peer_files(args.prepare, [int(b) for b in (args.batches or "1").split(",")], cache_root())
        return 0

    models = args.models.split(",") if args.models else (["resnet18"] if args.quick else ALL_MODELS)
    batches = [int(b) for b in args.batches.split(",")] if args.batches else ([1] if args.quick else [1, 8])
    threads = [int(t) for t in args.threads.split(",")] if args.threads else ([1] if args.quick else [1, 2])
    rounds = args.rounds or (2 if args.quick else 3)
    seconds = args.seconds or (0.5 if args.quick else 2.0)
    engines_wanted = args.engines.split(",")
    if args.quick:
        engines_wanted = [e for e in engines_wanted if e != "apus-native"]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    # Builds.
    engines: list[Engine] = []
    binaries: dict[bool, Path] = {}
    for name in engines_wanted:
        if name in ("apus", "apus-native", "apus-tail"):
            native = name == "apus-native"
            if native not in binaries:
                if args.binary and not native:
                    binaries[native] = args.binary
                elif args.no_build:
                    binaries[native] = scratch_path(native) / "release" / "apus"
                else:
                    binaries[native] = build_apus(native)
            binary = binaries[native]
            if name == "apus-tail":
                engines.append(ApusEngine(name, "Apus (batch tail)", binary, ["--batch-tail"], batches_only=True))
            else:
                engines.append(ApusEngine(name, "Apus (native)" if native else "Apus", binary))
        elif name == "ort":
            engines.append(PeerEngine("ort", "ONNX Runtime", sys.executable))
        elif name == "torch":
            engines.append(PeerEngine("torch", "PyTorch eager", sys.executable))
        else:
            parser.error(f"unknown engine {name}")
    apus_engines = [e for e in engines if isinstance(e, ApusEngine)]


    # Fixtures and peer files.
    fixtures = fixtures_dir(models)
    cache = cache_root()
    configs = []
    for model in models:
        meta = json.loads((fixtures / model / "meta.json").read_text())
        peer = prepare_peer_files(meta["arch"], batches, cache) if any(e.name == "torch" for e in engines) or \
            any(b > 1 for b in batches) else {"state_dict": None, "dyn_onnx": None, "folder": None}
        for batch in batches:
            if batch == 1:
                onnx_path = fixtures / model / "model.onnx"
                x = fixtures / model / "input_0.npy"
                ref = fixtures / model / "output_0.npy"
            else:
                onnx_path = peer["dyn_onnx"]
                x = peer["folder"] / f"input_b{batch}.npy"
                ref = peer["folder"] / f"output_b{batch}.npy"
            for t in threads:
                configs.append({"model": model, "arch": meta["arch"], "batch": batch, "threads": t,
                                "onnx": onnx_path, "input": x, "reference": ref,
                                "input_name": meta["input_name"], "output_name": meta["output_name"],
                                "state_dict": peer["state_dict"]})

    # What Apus loads: each ONNX file converted once to .apus (BatchNorm folded, activations fused,
    # weights mapped at load), unless --apus-format onnx.
    artifact_dir = Path(tempfile.mkdtemp(prefix="apus-compare-artifacts-"))
    atexit.register(shutil.rmtree, artifact_dir, ignore_errors=True)
    converted = {}
    for cfg in configs:
        if args.apus_format == "onnx" or not apus_engines:
            cfg["apus_model"] = cfg["onnx"]
            continue
        source = Path(cfg["onnx"])
        if source not in converted:
            target = artifact_dir / f"{len(converted)}-{cfg['model']}-b{cfg['batch']}.apus"
            run([apus_engines[0].binary, "convert", source, "-o", target, "--prepack-for", "host"],
                stdout=subprocess.DEVNULL,
                env=merged_env(apus_engines[0].env()))
            converted[source] = target
        cfg["apus_model"] = converted[source]

    machine = machine_info()
    machine["openblas_env"] = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}
    machine["openblas_env_cleared_for_apus"] = ApusEngine.clear_openblas
    machine["apus_format"] = args.apus_format

    # Agreement, before any timing: one run per engine, model and batch (threads: the first).
    agreement = []
    failures = []
    with tempfile.TemporaryDirectory(prefix="apus-compare-") as tmp:
        seen = set()
        for cfg in configs:
            key = (cfg["model"], cfg["batch"])
            if key in seen:
                continue
            seen.add(key)
            reference = np.load(cfg["reference"])
            for engine in engines:
                if not engine.takes(cfg):
                    continue
                out_dir_engine = Path(tmp) / f"{engine.name}-{cfg['model']}-{cfg['batch']}"
                out_dir_engine.mkdir()
                try:
                    path = engine.run_output(cfg, out_dir_engine)
                    rel = relative_diff(np.load(path), reference)
                    error = None
                except (subprocess.CalledProcessError, OSError, ValueError) as exc:
                    rel, error = float("inf"), str(exc)
                ok = rel <= RELATIVE_TOLERANCE
                agreement.append({"model": cfg["model"], "batch": cfg["batch"], "engine": engine.name,
                                  "relative_diff": rel, "ok": ok, "error": error})
                log(f"agreement {cfg['model']} b{cfg['batch']} {engine.name}: {rel:.2e} {'ok' if ok else 'FAIL'}")
                if not ok:
                    failures.append(f"{engine.label} on {cfg['model']} batch {cfg['batch']}: relative diff {rel:.3e}"
                                    + (f" ({error})" if error else ""))
    if failures:
        log("DISAGREEMENT beyond 1e-4 relative to the output scale:")
        for f in failures:
            log("  " + f)
        (out_dir / "agreement-failures.txt").write_text("\n".join(failures) + "\n")
        return 1

    if args.wait_quiet > 0:
        wait_for_quiet(args.wait_quiet, args.wait_timeout * 60)
        machine["load_average_at_start"] = os.getloadavg()

    # OpenBLAS sgemm reference, with the core Apus runs.
    sgemm = {}
    blas_core = None
    if apus_engines:
        probe = spawn_timed(*apus_engines[0].bench_cmd(configs[0], 0.05, 0))
        blas_core = json.loads(probe["stdout"]).get("openBLASCore")
    cc = shutil.which("cc") or shutil.which("clang") or shutil.which("gcc")
    if cc:
        sgemm_bin = cache / "sgemm_ref"
        run([cc, "-O2", "-o", sgemm_bin, HERE / "sgemm_ref.c", "-ldl"])
        shapes = [f"{m},{n},{k}" for m, n, k in (SGEMM_SHAPES[:2] if args.quick else SGEMM_SHAPES)]
        env = sgemm_env(blas_core)
        for t in sorted(set(threads) | {1}):
            result = subprocess.run([str(sgemm_bin), str(t), str(5 if args.quick else 15), *shapes], check=True,
                                    capture_output=True, text=True, env=env)
            sgemm[t] = json.loads(result.stdout)
            log(f"sgemm reference, {t} thread(s): " + ", ".join(
                f"{s['m']}x{s['n']}x{s['k']} {s['gflops_median']:.0f}" for s in sgemm[t]["shapes"]) + " GFLOP/s")

    # The cache-line round trip between the two CPUs, measured before every multi-thread process:
    # the host places the vCPUs near (about 100 ns) or far apart (about 400 ns), and two-thread
    # latencies follow it.
    core_latency_bin = None
    if cc and max(threads) > 1:
        core_latency_bin = cache / "core_latency"
        run([cc, "-O2", "-o", core_latency_bin, HERE / "core_latency.c", "-lpthread"])

    def core_round_trip() -> float:
        if core_latency_bin is None:
            return float("nan")
        result = subprocess.run([str(core_latency_bin)], capture_output=True, text=True)
        try:
            value = json.loads(result.stdout).get("round_trip_ns")
        except json.JSONDecodeError:
            value = None
        return float(value) if value is not None else float("nan")

    # Interleaved rounds.
    samples: dict[tuple, dict] = {}
    for ci, cfg in enumerate(configs):
        for r in range(rounds):
            taking = [e for e in engines if e.takes(cfg)]
            shift = (r + ci) % len(taking)
            order = taking[shift:] + taking[:shift]
            for engine in order:
                cmd, env = engine.bench_cmd(cfg, seconds, args.warmup)
                rtt = core_round_trip() if cfg["threads"] > 1 else float("nan")
                result = spawn_timed(cmd, env)
                data = json.loads(result["stdout"])
                key = (cfg["model"], cfg["batch"], cfg["threads"], engine.name)
                entry = samples.setdefault(
                    key, {"latencies": [], "cold": [], "rss": [], "load": [], "first": [], "rtt": []})
                entry["rtt"].append(rtt)
                entry["latencies"].extend(data["latenciesMilliseconds"])
                entry["cold"].append(result["cold_s"] * 1e3 if result["cold_s"] is not None else float("nan"))
                entry["rss"].append(data.get("peakRSSBytes") or result["peak_rss"])
                entry["load"].append(data.get("loadMilliseconds", float("nan")))
                entry["first"].append(data.get("firstRunMilliseconds", float("nan")))
                if "version" in data:
                    entry["version"] = data["version"]
                med = float(np.median(data["latenciesMilliseconds"]))
                entry.setdefault("process_medians", []).append(med)
                log(f"round {r + 1}/{rounds} {cfg['model']} b{cfg['batch']} t{cfg['threads']} {engine.name}: "
                    f"median {med:.2f} ms, cold {entry['cold'][-1]:.0f} ms"
                    + (f", core round trip {rtt:.0f} ns" if rtt == rtt else ""))

    rows = []
    for cfg in configs:
        for engine in engines:
            if not engine.takes(cfg):
                continue
            key = (cfg["model"], cfg["batch"], cfg["threads"], engine.name)
            entry = samples[key]
            s = stats(entry["latencies"])
            rows.append({
                "model": cfg["model"], "batch": cfg["batch"], "threads": cfg["threads"], "engine": engine.name,
                "label": engine.label, **s,
                "throughput": cfg["batch"] / (s["median_ms"] / 1e3),
                "cold_start_ms": float(np.nanmedian(entry["cold"])),
                "load_ms": float(np.nanmedian(entry["load"])),
                "first_run_ms": float(np.nanmedian(entry["first"])),
                "peak_rss_bytes": int(max(entry["rss"])),
                "core_round_trip_ns": [None if v != v else round(v, 1) for v in entry["rtt"]],
                "process_median_ms": entry["process_medians"],
            })

    machine["load_average_after_rounds"] = os.getloadavg()

    # Profiles.
    profiles = {}
    if not args.no_profile and apus_engines:
        apus = apus_engines[0]
        for cfg in configs:
            if cfg["model"] in PROFILE_MODELS and cfg["batch"] == 1:
                cmd = [apus.binary, "bench", cfg["apus_model"], "--threads", cfg["threads"], "--input",
                       f"{cfg['input_name']}={cfg['input']}", "--runs", 20, "--json", "--profile"]
                result = spawn_timed(cmd, apus.env())
                profiles[(cfg["model"], cfg["threads"])] = json.loads(result["stdout"])

    # Conv efficiency against sgemm at the same shapes.
    efficiency = conv_efficiency(profiles, cache, blas_core, cc)

    report = {"machine": machine, "blas_core": blas_core, "rows": rows, "agreement": agreement,
              "sgemm": {str(k): v for k, v in sgemm.items()}, "efficiency": efficiency,
              "profiles": {f"{m}@{t}": summarize_profile(p) for (m, t), p in profiles.items()},
              "settings": {"rounds": rounds, "seconds": seconds, "warmup": args.warmup, "quick": args.quick,
                           "engines": [e.name for e in engines]},
              "elapsed_s": time.time() - t_start}
    (out_dir / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    plots = make_plots(rows, engines, out_dir)
    write_markdown(report, engines, plots, out_dir)
    log(f"wrote {out_dir / 'results.md'} in {time.time() - t_start:.0f} s")
    print((out_dir / "results.md").read_text())
    return 0


def sgemm_env(blas_core) -> dict:
    """The reference program's environment: Apus's, with the OpenBLAS core Apus reported."""
    env = merged_env(ApusEngine("apus", "", Path()).env())
    if blas_core:
        env["OPENBLAS_CORETYPE"] = blas_core
    return env


def conv_efficiency(profiles: dict, cache: Path, blas_core, cc) -> list[dict]:
    """For each profile: Apus's dense convolutions (groups 1) against sgemm of the same GEMM shapes,
    timed by the reference program on 1 thread and on the profile's thread count."""
    out = []
    if not cc:
        return out
    sgemm_bin = cache / "sgemm_ref"
    env = sgemm_env(blas_core)
    for (model, threads), profile in sorted(profiles.items()):
        convs = [n for n in profile["profile"]["nodes"] if n.get("gemm") and n["gemm"]["groups"] == 1]
        if not convs:
            continue
        shapes = sorted({(n["gemm"]["m"], n["gemm"]["n"], n["gemm"]["k"]) for n in convs})
        ref = {}
        for t in sorted({1, threads}):
            result = subprocess.run([str(sgemm_bin), str(t), "9", *[f"{m},{n},{k}" for m, n, k in shapes]], check=True,
                                    capture_output=True, text=True, env=env)
            ref[t] = {(s["m"], s["n"], s["k"]): s["median_s"] * 1e3 for s in json.loads(result.stdout)["shapes"]}
        conv_ms = sum(n["milliseconds"] for n in convs)
        flops = sum(n["flops"] for n in convs)
        entry = {"model": model, "threads": threads, "conv_count": len(convs), "conv_ms": conv_ms,
                 "conv_gflops": flops / (conv_ms * 1e-3) / 1e9}
        for t, table in ref.items():
            sg_ms = sum(table[(n["gemm"]["m"], n["gemm"]["n"], n["gemm"]["k"])] for n in convs)
            entry[f"sgemm_{t}t_ms"] = sg_ms
            entry[f"sgemm_{t}t_gflops"] = flops / (sg_ms * 1e-3) / 1e9
            entry[f"efficiency_vs_{t}t"] = sg_ms / conv_ms
        out.append(entry)
    return out


def summarize_profile(p: dict) -> dict:
    prof = p["profile"]
    return {"median_ms": p["medianMilliseconds"], "profiled_ms": prof["wallMilliseconds"],
            "node_sum_ms": prof["nodeSumMilliseconds"],
            "op_types": prof["opTypes"][:8],
            "top_nodes": sorted(prof["nodes"], key=lambda n: -n["milliseconds"])[:5]}


# ---------------------------------------------------------------------------------------------
# Output


def make_plots(rows: list[dict], engines: list[Engine], out_dir: Path) -> list[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no plots")
        return []
    files = []
    batches = sorted({r["batch"] for r in rows})
    threads = sorted({r["threads"] for r in rows})
    models = list(dict.fromkeys(r["model"] for r in rows))
    colors = {"apus": "#1f77b4", "apus-native": "#6baed6", "apus-tail": "#2ca02c", "ort": "#ff7f0e",
              "torch": "#d62728"}
    for batch in batches:
        shown = [e for e in engines if any(r["engine"] == e.name and r["batch"] == batch for r in rows)]
        fig, axes = plt.subplots(1, len(threads), figsize=(5.5 * len(threads), 4.2), squeeze=False)
        for ax, t in zip(axes[0], threads):
            width = 0.8 / len(shown)
            for i, engine in enumerate(shown):
                meds, errs = [], []
                for m in models:
                    row = next((r for r in rows if r["model"] == m and r["batch"] == batch and r["threads"] == t
                                and r["engine"] == engine.name), None)
                    meds.append(row["median_ms"] if row else 0)
                    errs.append((row["p99_ms"] - row["median_ms"]) if row else 0)
                xs = [j + (i - (len(shown) - 1) / 2) * width for j in range(len(models))]
                ax.bar(xs, meds, width, yerr=[[0] * len(errs), errs], label=engine.label,
                       color=colors.get(engine.name), capsize=2)
            ax.set_xticks(range(len(models)))
            ax.set_xticklabels(models, rotation=15)
            ax.set_ylabel("latency, ms (bar: median, whisker: p99)")
            ax.set_title(f"batch {batch}, {t} thread{'s' if t > 1 else ''}")
            ax.grid(axis="y", alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        name = f"latency-batch{batch}.png"
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        files.append(name)
    return files


def fmt_bytes(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


# Core round trips below this count as the near vCPU placement (about 100 ns; far is about 400 ns).
NEAR_ROUND_TRIP_NS = 250


def rtt_cell(row: dict) -> str:
    values = [v for v in row.get("core_round_trip_ns") or [] if v is not None]
    return " / ".join(f"{v:.0f}" for v in values)


def write_markdown(report: dict, engines: list[Engine], plots: list[str], out_dir: Path) -> None:
    m = report["machine"]
    rows = report["rows"]
    lines = ["# Apus vs ONNX Runtime vs PyTorch", ""]
    lines.append(f"Measured {m['date']} by `Benchmarks/compare/compare.py"
                 f"{' --quick' if report['settings']['quick'] else ''}` in one run "
                 f"({report['elapsed_s'] / 60:.0f} min). Compare speeds only within one run: machines differ "
                 f"between sessions.")
    la0 = m["load_average_at_start"][0]
    if la0 >= 1.0:
        lines += ["", f"**Warning: measured while the machine was busy with other work (1-minute load average "
                  f"{la0:.1f} at the start on {m['usable_cpus']} CPUs). Latencies are inflated and ratios noisy, "
                  "the 2-thread PyTorch rows most of all (its OpenMP threads spin against the other load); the "
                  "per-node profiles below ran last, when the machine was quieter. Re-run with `--wait-quiet 0.5` "
                  "on a quiet machine for numbers to quote.**"]
    lines += ["", "## Machine", ""]
    lines.append(f"- CPU: {m['cpu']}, {m['usable_cpus']} usable of {m['logical_cpus']} logical CPUs, {m['memory']}")
    lines.append(f"- flags: {' '.join(m['flags'])}")
    lines.append(f"- OpenBLAS core used by Apus: {report['blas_core']}")
    if m.get("openblas_env"):
        preset = ", ".join(f"{k}={v}" for k, v in m["openblas_env"].items())
        what = "removed for Apus's processes (Apus chose the core)" if m.get("openblas_env_cleared_for_apus") \
            else "kept for Apus's processes"
        lines.append(f"- this environment presets {preset}: {what}")
    lines.append(f"- kernel {m['kernel']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    la = m["load_average_at_start"]
    lines.append(f"- load average (1, 5, 15 min) when measuring started: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}")
    if m.get("load_average_after_rounds"):
        lb = m["load_average_after_rounds"]
        lines.append(f"- load average after the timed rounds: {lb[0]:.2f} {lb[1]:.2f} {lb[2]:.2f} (this run itself "
                     "keeps about 1–2 busy; more means other work shared the machine)")
    s = report["settings"]
    lines += ["", "## Method", "",
              f"Every engine runs in its own process; {s['rounds']} rounds with the engine order rotated each "
              f"round; each process loads the model, runs once (cold start = process spawn → that first result), "
              f"warms up {s['warmup']} runs, then runs for {s['seconds']} s. Median and p99 are over the pooled "
              "runs of all rounds; cold start is the median over rounds; peak RSS is the largest VmHWM of the "
              "engine's processes (for the Python peers this includes the interpreter and the framework). "
              "Apus = `apus bench` of the release build (`--static-swift-stdlib`: the Swift runtime linked into "
              "the binary, as for deployment) with the default target (x86-64 baseline, SSE2) and "
              "\"Apus (native)\" = built with `-Xswiftc -target-cpu -Xswiftc native`; \"Apus (batch tail)\" = the "
              "default build with `--batch-tail` (batches above 1 only: the late layers on the whole batch, "
              "opt-in because samples then equal their runs alone within rounding, not bitwise). "
              "ONNX Runtime: default graph "
              "optimizations, intra_op_num_threads = threads, inter 1, sequential. PyTorch: eager, "
              "torch.set_num_threads(threads), no_grad, the torchvision module with the fixture's weights. "
              "Batch 1 uses the fixture's static ONNX file; larger batches a symbolic-batch export of the same "
              "model (same exporter and weights). "
              + ("Apus loads that file converted by `apus convert` into its `.apus` artifact (its deployment "
                 "format: optimized graph, weights memory-mapped); ONNX Runtime and PyTorch load the ONNX file and "
                 "the weights. " if m.get("apus_format", "onnx") == "apus" else "Apus loads the ONNX file itself. ")
              + "Ratios are Apus median ÷ peer median (below 1: Apus faster). "
              "\"core RTT\" (multi-thread rows): the round trip of a cache line between the two CPUs "
              "(`core_latency.c`), measured just before each of the row's processes, one value per round. On "
              "these VMs it is about 100 ns or about 400 ns, depending on where the host places the vCPUs at the "
              "time, and two-thread latencies are about 25 % higher in the 400 ns placement "
              "(Docs/performance.md): compare two-thread rows measured in the same placement.", ""]

    for batch in sorted({r["batch"] for r in rows}):
        lines += [f"## Batch {batch}", ""]
        lines.append("| model | threads | engine | median ms | p99 ms | inferences/s | cold start ms | peak RSS "
                     "| vs ORT | vs PyTorch | core RTT ns |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            if r["batch"] != batch:
                continue
            ratios = ["", ""]
            if r["engine"].startswith("apus"):
                for i, peer in enumerate(["ort", "torch"]):
                    p = next((x for x in rows if x["model"] == r["model"] and x["batch"] == batch
                              and x["threads"] == r["threads"] and x["engine"] == peer), None)
                    if p:
                        ratios[i] = f"{r['median_ms'] / p['median_ms']:.2f}× (p99 {r['p99_ms'] / p['p99_ms']:.2f}×)"
            lines.append(f"| {r['model']} | {r['threads']} | {r['label']} | {r['median_ms']:.2f} | {r['p99_ms']:.2f} "
                         f"| {r['throughput']:.1f} | {r['cold_start_ms']:.0f} | {fmt_bytes(r['peak_rss_bytes'])} "
                         f"| {ratios[0]} | {ratios[1]} | {rtt_cell(r)} |")
        lines.append("")
    for p in plots:
        lines.append(f"![{p}]({p})")
    lines.append("")

    placed = [r for r in rows if r["threads"] > 1 and any(v is not None for v in r.get("core_round_trip_ns") or [])]
    if placed:
        lines += ["## Two threads by vCPU placement", "",
                  f"Each process's median, grouped by the core round trip measured just before it (near: below "
                  f"{NEAR_ROUND_TRIP_NS} ns); the median of those medians, and how many processes.", "",
                  "| model | batch | engine | near ms (processes) | far ms (processes) |", "|---|---|---|---|---|"]
        for r in placed:
            groups = {"near": [], "far": []}
            for rtt, med in zip(r["core_round_trip_ns"], r["process_median_ms"]):
                if rtt is not None:
                    groups["near" if rtt < NEAR_ROUND_TRIP_NS else "far"].append(med)
            cells = [f"{np.median(g):.2f} ({len(g)})" if g else "—" for g in (groups["near"], groups["far"])]
            lines.append(f"| {r['model']} | {r['batch']} | {r['label']} | {cells[0]} | {cells[1]} |")
        lines.append("")

    lines += ["## Cold start in detail (batch 1, ms, medians)", "",
              "| model | threads | engine | load | first run | process start → first result |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r["batch"] == 1:
            lines.append(f"| {r['model']} | {r['threads']} | {r['label']} | {r['load_ms']:.1f} | {r['first_run_ms']:.1f} "
                         f"| {r['cold_start_ms']:.0f} |")
    lines.append("")

    lines += ["## Agreement", "", "Max |output − PyTorch reference| ÷ max |reference| on the fixture input "
              f"(limit {RELATIVE_TOLERANCE:g}).", "", "| model | batch | engine | relative diff |", "|---|---|---|---|"]
    for a in report["agreement"]:
        lines.append(f"| {a['model']} | {a['batch']} | {a['engine']} | {a['relative_diff']:.1e} |")
    lines.append("")

    if report["sgemm"]:
        lines += ["## OpenBLAS sgemm reference", "",
                  "Plain `cblas_sgemm` (row-major, C = A·B) on OpenBLAS's own threads with the core Apus uses; "
                  "median of repeated calls, GFLOP/s.", ""]
        ts = sorted(report["sgemm"], key=int)
        lines.append("| M×N×K | " + " | ".join(f"{t} thread{'s' if int(t) > 1 else ''}" for t in ts) + " |")
        lines.append("|---|" + "---|" * len(ts))
        first = report["sgemm"][ts[0]]["shapes"]
        for i, sh in enumerate(first):
            cells = [f"{report['sgemm'][t]['shapes'][i]['gflops_median']:.0f}" for t in ts]
            lines.append(f"| {sh['m']}×{sh['n']}×{sh['k']} | " + " | ".join(cells) + " |")
        lines.append("")

    if report["efficiency"]:
        lines += ["## Convolutions against sgemm", "",
                  "Dense convolutions (groups = 1) of `apus bench --profile`, against the reference sgemm at each "
                  "layer's GEMM shape (M = output channels, N = output positions, K = Cin·kh·kw): "
                  "efficiency = sgemm time ÷ Apus conv time for the same FLOPs (the target is above 0.7).", "",
                  "| model | threads | convs | Apus conv ms | GFLOP/s | sgemm 1 thread ms | eff. vs 1 thread "
                  "| sgemm N threads ms | eff. vs N threads |", "|---|---|---|---|---|---|---|---|---|"]
        for e in report["efficiency"]:
            t = e["threads"]
            lines.append(f"| {e['model']} | {t} | {e['conv_count']} | {e['conv_ms']:.2f} | {e['conv_gflops']:.0f} "
                         f"| {e['sgemm_1t_ms']:.2f} | {e['efficiency_vs_1t']:.2f} "
                         f"| {e.get(f'sgemm_{t}t_ms', float('nan')):.2f} | {e.get(f'efficiency_vs_{t}t', float('nan')):.2f} |")
        lines.append("")

    if report["profiles"]:
        lines += ["## Where Apus spends its time (batch 1, `apus bench --profile`)", ""]
        for key, p in sorted(report["profiles"].items()):
            model, threads = key.split("@")
            lines.append(f"**{model}, {threads} thread(s)**: median {p['median_ms']:.2f} ms unprofiled; "
                         f"profiled runs {p['profiled_ms']:.2f} ms (mean), of which {p['node_sum_ms']:.2f} ms "
                         "inside operators.")
            lines.append("")
            lines.append("| op type | count | ms | share | GFLOP/s |")
            lines.append("|---|---|---|---|---|")
            for t in p["op_types"][:5]:
                g = f"{t['gflopsPerSecond']:.0f}" if t.get("gflopsPerSecond") else ""
                lines.append(f"| {t['opType']} | {t['count']} | {t['milliseconds']:.2f} | {t['share'] * 100:.0f}% | {g} |")
            lines.append("")
            lines.append("| slowest nodes | op | output | ms | GFLOP/s | GEMM M×N×K |")
            lines.append("|---|---|---|---|---|---|")
            for n in p["top_nodes"][:3]:
                g = f"{n['gflopsPerSecond']:.0f}" if n.get("gflopsPerSecond") else ""
                gemm = n.get("gemm")
                gs = f"{gemm['m']}×{gemm['n']}×{gemm['k']}" + (f" g{gemm['groups']}" if gemm and gemm["groups"] > 1 else "") if gemm else ""
                lines.append(f"| {n['node']} | {n['opType']} | {'×'.join(map(str, n['outputShape']))} "
                             f"| {n['milliseconds']:.2f} | {g} | {gs} |")
            lines.append("")
    (out_dir / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
