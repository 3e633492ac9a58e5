"""Accelerator readiness in one run: device, tests, benchmark, a short training.

  python benchmarks/gpu_check.py [--out=runs/gpu_check.json] [--quick]
      [--data_root=../shared/data/medmnist] [--train_config=configs/adrenal.py]
      [--epochs=3] [--stages=device,tests,...] [--limits=tests=300,...]

Stages, each in its own process with its own time limit (seconds, `--limits`); a
stage that fails or runs out of time is recorded in the JSON with the end of its
output, and the next stage runs:

  device     the backend, device kind and count
  tests      pytest on tests/test_models.py, test_train.py, test_parallel.py and
             test_lmttm_cached.py (`--tests`)
  bench_*    `benchmarks/bench.py` in float32 and bfloat16, LMTTM at the reference width
             on 28^3 (batch 32) and 64^3 (batch `--batch_size_64`), each also at the
             largest batch that fits (doubled until out of memory)
  train      `main.py` with `--train_config` (AdrenalMNIST3D) on the file in
             `--data_root` for `--epochs` epochs at the reference width: epoch
             seconds, compile lines, validation metrics

Every figure goes to one JSON (`--out`; default `$OUT/gpu_check.json` if `$OUT` is
set, else `runs/gpu_check.json`), rewritten after each stage. Without a GPU or TPU,
or with `--quick`, it runs a reduced check that fits a CPU: the `scale=tiny` model,
28^3 only, a few steps, no largest-batch search, one training epoch, and longer
limits (`QUICK_LIMITS`). The exit code is 1 if a stage failed or ran out of time.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
TESTS = [
    "tests/test_models.py",
    "tests/test_train.py",
    "tests/test_parallel.py",
    "tests/test_lmttm_cached.py",
]
# Seconds per stage on an accelerator: under 8 minutes together with the start-up.
LIMITS = {
    "device": 60,
    "tests": 150,
    "bench_float32_28": 60,
    "bench_bfloat16_28": 50,
    "bench_float32_64": 50,
    "bench_bfloat16_64": 40,
    "train": 60,
}
# Seconds per stage of the reduced check on a CPU.
QUICK_LIMITS = {name: 60 if name == "device" else 600 for name in LIMITS}
DEVICE_SCRIPT = """
import json, jax
d = jax.devices()
print(json.dumps({"backend": jax.default_backend(), "device_kind": d[0].device_kind,
                  "device_count": len(d), "jax": jax.__version__}))
"""

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "JSON to write (default $OUT/gpu_check.json or runs/).")
flags.DEFINE_bool("quick", None, "Reduced CPU check (default: when there is no GPU/TPU).")
flags.DEFINE_string("data_root", "../shared/data/medmnist", "Folder of the dataset file.")
flags.DEFINE_string("train_config", "configs/adrenal.py", "Config of the train stage.")
flags.DEFINE_integer("epochs", 3, "Epochs of the train stage (1 in quick mode).")
flags.DEFINE_integer("batch_size_64", 8, "Batch of the 64^3 benchmark on an accelerator.")
flags.DEFINE_list("tests", TESTS, "Test files (or node ids) of the tests stage.")
flags.DEFINE_list("stages", list(LIMITS), f"Stages to run, among {list(LIMITS)}.")
flags.DEFINE_list("limits", [], "Overrides of stage limits, e.g. tests=300,train=120.")


def out_path() -> Path:
    if FLAGS.out:
        return Path(FLAGS.out)
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"]) / "gpu_check.json"
    return REPO / "runs" / "gpu_check.json"


def run_stage(cmd: list[str], limit: float) -> dict[str, Any]:
    """Runs `cmd` from the repository root with a time limit: status, seconds and the
    end of its output."""
    start = time.perf_counter()
    record: dict[str, Any] = {"command": " ".join(cmd[1:]), "limit_s": limit}
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=limit, check=False
        )
        output = proc.stdout + proc.stderr
        record["status"] = "ok" if proc.returncode == 0 else "failed"
        record["returncode"] = proc.returncode
    except subprocess.TimeoutExpired as err:
        output = _text(err.stdout) + _text(err.stderr)
        record["status"] = "timeout"
    record["seconds"] = time.perf_counter() - start
    record["output_tail"] = output[-3000:]
    record["stdout"] = output
    return record


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def device_stage(limit: float) -> dict[str, Any]:
    record = run_stage([sys.executable, "-c", DEVICE_SCRIPT], limit)
    if record["status"] == "ok":
        record.update(json.loads(record["stdout"].strip().splitlines()[-1]))
    return record


def tests_stage(limit: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *FLAGS.tests]
    record = run_stage(cmd, limit)
    summary = [line for line in record["stdout"].splitlines() if " in " in line]
    record["summary"] = summary[-1] if summary else None
    return record


def bench_stage(dtype: str, size: int, quick: bool, limit: float) -> dict[str, Any]:
    """The benchmark in `dtype` at `size`^3; its JSON is kept even when time runs out
    (the benchmark writes it after each case and each batch of the search)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "bench.json"
        cmd = [sys.executable, "-m", "benchmarks.bench", f"--json={result}"]
        cmd += [f"--config=configs/adrenal.py{':scale=tiny' if quick else ''}"]
        cmd += [f"--config.train.compute_dtype={dtype}"]
        if quick:
            cmd += ["--cases=tiny", "--batch_size=4", "--steps=2", "--kernels=cpu"]
        else:
            cmd += ["--cases=" + ("lmttm" if size == 28 else "lmttm64"), "--steps=5"]
            cmd += ["--batch_size=32", f"--batch_size_64={FLAGS.batch_size_64}"]
            cmd += ["--largest_batch"]
        record = run_stage(cmd, limit)
        if result.exists():
            record["bench"] = json.loads(result.read_text())
    return record


def train_stage(quick: bool, limit: float) -> dict[str, Any]:
    """A short training run; epoch seconds and validation metrics from its files."""
    epochs = 1 if quick else FLAGS.epochs
    with tempfile.TemporaryDirectory() as workdir:
        cmd = [sys.executable, "main.py", f"--workdir={workdir}"]
        cmd += [f"--config={FLAGS.train_config}{':scale=tiny' if quick else ''}"]
        cmd += [f"--config.data.root={Path(FLAGS.data_root).absolute()}"]
        cmd += ["--config.data.download=False", f"--config.train.epochs={epochs}"]
        cmd += ["--config.train.warmup_epochs=0"]
        record = run_stage(cmd, limit)
        metrics = Path(workdir) / "metrics.jsonl"
        if metrics.exists():
            record["epochs"] = [json.loads(line) for line in metrics.read_text().splitlines()]
        results = Path(workdir) / "results.json"
        if results.exists():
            record["results"] = json.loads(results.read_text())
    record["compile_lines"] = [
        line for line in record["stdout"].splitlines() if "compil" in line or "loaded" in line
    ]
    return record


def stage_limits(quick: bool) -> dict[str, float]:
    limits = dict(QUICK_LIMITS if quick else LIMITS)
    for item in FLAGS.limits:
        name, _, value = item.partition("=")
        if name not in limits or not value:
            raise app.UsageError(f"--limits: {item!r}: expected STAGE=SECONDS, STAGE in {LIMITS}")
        limits[name] = float(value)
    return limits


def main(argv: list[str]) -> None:
    del argv
    unknown = sorted(set(FLAGS.stages) - set(LIMITS))
    if unknown:
        raise app.UsageError(f"--stages: unknown {unknown}; expected some of {list(LIMITS)}")
    path = out_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"stages": {}}
    start = time.perf_counter()

    def record(name: str, result: dict[str, Any]) -> None:
        result.pop("stdout", None)
        report["stages"][name] = result
        report["seconds"] = time.perf_counter() - start
        path.write_text(json.dumps(report, indent=1))
        print(f"{name}: {result['status']} in {result['seconds']:.0f} s", flush=True)

    device = device_stage(LIMITS["device"])
    accelerator = device.get("backend") in ("gpu", "cuda", "rocm", "tpu")
    quick = (not accelerator) if FLAGS.quick is None else FLAGS.quick
    limits = stage_limits(quick)
    report.update(quick=quick, device=device.get("device_kind"), backend=device.get("backend"))
    print(f"device: {device.get('device_kind')} x{device.get('device_count')} ", end="")
    print(f"({device.get('backend')}); {'quick' if quick else 'full'} check", flush=True)
    record("device", device)
    for name in FLAGS.stages:
        if name == "device":
            continue
        if name == "tests":
            result = tests_stage(limits[name])
        elif name.startswith("bench_"):
            _, dtype, size = name.split("_")
            if quick and size == "64":
                result = {"status": "skipped", "seconds": 0.0, "reason": "quick mode: 28^3 only"}
            else:
                result = bench_stage(dtype, int(size), quick, limits[name])
        else:
            result = train_stage(quick, limits[name])
        record(name, result)
    failed = [n for n, r in report["stages"].items() if r["status"] in ("failed", "timeout")]
    print(f"wrote {path}; {'failed: ' + ', '.join(failed) if failed else 'all stages ran'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    app.run(main)
