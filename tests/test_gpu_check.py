"""The accelerator check's reduced CPU mode: every stage recorded in one JSON, and a
failed stage recorded without stopping the others."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmttm_jax.data import write_synthetic

REPO = Path(__file__).resolve().parents[1]


def check(out: Path, *flags: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "benchmarks/gpu_check.py", "--quick", f"--out={out}", *flags]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_quick_check_runs_every_stage_and_records_failures(tmp_path):
    root = tmp_path / "data"
    write_synthetic(
        root / "synthetic3d.npz", seed=0, size=28, n_samples={"train": 32, "val": 16, "test": 16}
    )
    out = tmp_path / "check.json"
    proc = check(
        out,
        f"--data_root={root}",
        "--train_config=configs/synthetic.py",
        "--tests=tests/test_bench.py::test_while_loop_is_refused",
        "--stages=device,tests,bench_float32_28,bench_float32_64,train",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    stages = report["stages"]
    assert report["quick"] and stages["device"]["backend"] == "cpu"
    assert "1 passed" in stages["tests"]["summary"]
    tiny = stages["bench_float32_28"]["bench"]["cases"]["tiny"]["cpu"]
    assert tiny["compute_dtype"] == "float32" and tiny["compile_cache_hit"]
    assert tiny["train_samples_per_s"] > 0 and tiny["adrenal_epoch_s"] > 0
    assert stages["bench_float32_64"]["status"] == "skipped"
    train = stages["train"]
    assert train["status"] == "ok" and len(train["epochs"]) == 1
    assert any(line.endswith(" compiling the train step...") for line in train["compile_lines"])
    assert train["results"]["val"]["samples_per_second"] > 0

    # No dataset file: the train stage fails, is recorded, and the check says so.
    failed = check(out, f"--data_root={tmp_path / 'empty'}", "--stages=device,train")
    assert failed.returncode == 1 and "failed: train" in failed.stdout
    stages = json.loads(out.read_text())["stages"]
    assert stages["device"]["status"] == "ok" and stages["train"]["status"] == "failed"
    assert "adrenalmnist3d" in stages["train"]["output_tail"]
