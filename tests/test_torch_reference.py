"""The PyTorch reference's timing script (`benchmarks/torch_reference.py`), without
torch: its sizes are those of our benchmark's cases, and it stops with one line when
torch, the seed checkout or our benchmark's JSON is missing."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import bench
from configs import adrenal

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "torch_reference.py"


def load_script():
    spec = importlib.util.spec_from_file_location("torch_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", ["lmttm", "lmttm128"])
def test_sizes_are_our_benchmark_cases(case):
    reference = load_script()
    model = bench.case_config(adrenal.get_config(), case).model
    sizes = reference.CASES[case]
    assert sizes == {field: model[field] for field in sizes}
    assert model.share_weights and model.processing == "transformer"
    assert model.read == model.write == "tl" and model.tokenizer == "patch"
    assert reference.size_differences(sizes) == []
    config = reference.seed_config(sizes, 32)["model"]
    assert config["memory_tokens_size"] == model.num_units * model.memory_tokens
    assert config["num_blocks"] == model.num_units
    assert config["summerize_num_tokens"] == model.read_tokens
    assert config["out_class_num"] == bench.NUM_CLASSES
    assert reference.INPUT_SIZE == bench.CASES[case][1]


def test_size_differences_name_what_the_seed_fixes():
    reference = load_script()
    sizes = {**reference.CASES["lmttm128"], "num_heads": 4, "mlp_dim": 256}
    assert reference.size_differences(sizes) == ["num_heads 8 (ours 4)", "mlp_dim 384 (ours 256)"]


def test_without_torch_it_stops_with_one_line(tmp_path):
    pytest.importorskip("numpy")
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed here")
    proc = run_script(str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "torch is not installed" in proc.stderr


def test_missing_or_wrong_json_of_ours_stops_with_one_line(tmp_path):
    ours = tmp_path / "bench.json"
    proc = run_script(str(tmp_path), f"--ours_json={ours}")
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "--ours_json" in proc.stderr and str(ours) in proc.stderr
    row = {"batch_size": 32, "input_size": 28}
    ours.write_text(json.dumps({"cases": {"lmttm": {"cpu": row, "flax": row}}}))
    proc = run_script(str(tmp_path), f"--ours_json={ours}")
    assert proc.returncode == 1 and "no case 'lmttm128'" in proc.stderr
    proc = run_script(str(tmp_path), f"--ours_json={ours}", "--cases=lmttm", "--batch_size=16")
    assert proc.returncode == 1 and "expected batch 16 at 28^3" in proc.stderr
