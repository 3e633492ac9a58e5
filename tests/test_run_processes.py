"""Runs trained side by side in single-threaded child processes: the sweep's `--jobs`
and `train.ensemble_jobs`; reproducibility, resuming, a failing run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmttm_jax import config as config_lib
from lmttm_jax import parallel, train
from lmttm_jax.errors import RunsFailed
from lmttm_jax.experiments import ensemble, pool, search, train_run
from lmttm_jax.workdir import Workdir, WorkdirError
from tests.tiny import tiny_config, write_small_synthetic

TIMED = ("seconds", "train_samples_per_second", "compile_seconds")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_small_synthetic(tmp_path_factory.mktemp("data"))


def numbers(workdir: Path) -> list[dict]:
    """metrics.jsonl without its timings."""
    rows = Workdir(workdir).read_metrics()
    assert rows
    return [{k: v for k, v in row.items() if k not in TIMED} for row in rows]


def snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_child_environment_keeps_the_users_xla_flags_and_preallocation(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    flags = pool.child_environment(2)["XLA_FLAGS"]
    assert flags.startswith("--xla_force_host_platform_device_count=2 ")
    assert flags.endswith(parallel.ONE_THREAD_PER_DEVICE)
    monkeypatch.setenv("XLA_FLAGS", parallel.ONE_THREAD_PER_DEVICE)
    assert pool.child_environment(2)["XLA_FLAGS"] == parallel.ONE_THREAD_PER_DEVICE
    monkeypatch.delenv("XLA_PYTHON_CLIENT_MEM_FRACTION", raising=False)
    assert pool.child_environment(4)["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.212"
    monkeypatch.setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.5")  # the user's choice wins
    assert pool.child_environment(4)["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.5"
    with pytest.raises(ValueError, match="jobs=0"):
        pool.train_runs([], 0, train.train_and_evaluate)
    config = tiny_config(Path("unused"))
    config.train.ensemble_jobs = 0
    with pytest.raises(config_lib.ConfigError, match="train.ensemble_jobs=0 is invalid"):
        config_lib.validate_config(config)


def test_an_ensemble_parent_opens_the_device_without_preallocation(tmp_path, monkeypatch):
    name = "XLA_PYTHON_CLIENT_PREALLOCATE"
    monkeypatch.setenv(name, "true")  # restored after the test
    monkeypatch.delenv(name)
    seen = []

    def first_use_of_the_device() -> bool:
        seen.append(os.environ.get(name))
        raise RuntimeError("stopped at the first use of the device")

    monkeypatch.setattr(parallel, "is_main_process", first_use_of_the_device)
    config = tiny_config(tmp_path)
    config.train.ensemble, config.train.ensemble_jobs = 2, 1  # members in this process
    with pytest.raises(RuntimeError, match="first use"):
        ensemble.train_ensemble(config, tmp_path / "run")
    config.train.ensemble_jobs = 2  # members in children beside this process
    with pytest.raises(RuntimeError, match="first use"):
        ensemble.train_ensemble(config, tmp_path / "run")
    assert seen == [None, "false"]
    monkeypatch.setenv(name, "true")  # the user's choice wins
    with pytest.raises(RuntimeError, match="first use"):
        ensemble.train_ensemble(config, tmp_path / "run")
    assert seen[-1] == "true"


PINNED = """
import os, sys
from lmttm_jax.experiments import child
child.pin_to_core(int(sys.argv[1]))
print(sorted(os.sched_getaffinity(0)))
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_a_child_keeps_itself_to_its_core():
    def pinned(core: int) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", PINNED, str(core)], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.splitlines()

    cores = pool.usable_cores()
    assert pinned(cores[-1]) == [f"training on core {cores[-1]}", f"[{cores[-1]}]"]
    missing = 4096  # no such core: it trains where it was, and says so
    said, kept = pinned(missing)
    assert said.startswith(f"training on the cores it was given: could not keep to core {missing}")
    assert kept == str(cores)


@pytest.fixture(scope="module")
def searched(root, tmp_path_factory) -> tuple[Path, list[dict], str]:
    """A sweep with --jobs=2 of two folds of two points, one of which cannot train:
    (its workdir, the table's rows, the failure's message)."""
    workdir = tmp_path_factory.mktemp("sweep")
    bad = {"train.batch_size": 64}  # more than the 24 training samples of a fold
    with pytest.raises(RunsFailed) as err:
        search.sweep(search_config(root), [{}, bad], 2, workdir, jobs=2)
    rows = json.loads((workdir / "table.json").read_text())["rows"]
    return workdir, rows, str(err.value)


def search_config(root: Path):
    return tiny_config(root, epochs=1, eval_batch_size=16)


@pytest.mark.slow
def test_a_failing_run_is_reported_and_the_others_finish(searched):
    workdir, rows, message = searched
    log = workdir / "train.batch_size=64" / "fold1" / "train.log"
    assert message.count("failed (exit 1): error: config.train.batch_size=64 exceeds") == 2
    assert message.endswith(f"; log: {log}") and "\n" not in message
    assert [(r["point"], r["folds_done"]) for r in rows] == [("base", 2)]
    text = (workdir / "base" / "fold0" / "train.log").read_text()
    assert "epoch 1/1" in text and "it/s" not in text  # no progress bar in the log


def test_runs_side_by_side_get_a_core_each(searched):
    workdir, *_ = searched
    cores = pool.usable_cores()
    if not cores:
        pytest.skip("no CPU affinity here: children run unpinned")
    firsts = [
        (workdir / "base" / f"fold{i}" / "train.log").read_text().splitlines()[0] for i in range(2)
    ]  # the first two runs started together, in the first two places
    assert firsts == [f"training on core {cores[0]}", f"training on core {cores[1 % len(cores)]}"]


def test_sweep_with_jobs_resumes_without_retraining_finished_runs(searched, root):
    workdir, rows, _ = searched
    fold0, fold1 = workdir / "base" / "fold0", workdir / "base" / "fold1"
    kept, trained = snapshot(fold0), snapshot(fold1 / "checkpoints")
    (fold1 / "results.json").unlink()  # fold 1 stopped after its last checkpoint
    again = search.sweep(search_config(root), [{}], 2, workdir, jobs=2)
    assert snapshot(fold0) == kept  # not one file of the finished run rewritten
    assert snapshot(fold1 / "checkpoints") == trained  # resumed: no epoch trained again
    assert again == rows


def test_ensemble_jobs_reproduce_the_same_runs_trained_side_by_side(searched, root, tmp_path):
    workdir, *_ = searched
    config = search_config(root)  # folds members: the sweep's runs of the base point
    config.train.ensemble, config.train.ensemble_mode, config.train.ensemble_jobs = 2, "folds", 2
    results = train_run(config_lib.validate_config(config), tmp_path)
    for i in range(2):
        assert numbers(Workdir(tmp_path).member(i).path) == numbers(workdir / "base" / f"fold{i}")
    assert [m["fold"] for m in results["members"]] == [0, 1]
    config.train.ensemble_jobs = 1  # members trained on one thread: the value stays
    with pytest.raises(WorkdirError, match="train.ensemble_jobs 2 -> 1"):
        train_run(config_lib.validate_config(config), tmp_path)
