"""Runs trained side by side in single-threaded child processes: the sweep's `--jobs`
and `train.ensemble_jobs`; reproducibility, resuming, a failing run."""

import json
from pathlib import Path

import pytest

from lmttm_jax import config_check, ensemble, parallel, run_processes, sweep, train
from lmttm_jax.data import write_synthetic
from lmttm_jax.workdir import Workdir, WorkdirError
from tests.tiny import tiny_config

TIMED = ("seconds", "train_samples_per_second", "compile_seconds")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    n = {"train": 32, "val": 16, "test": 16}
    write_synthetic(root / "synthetic3d.npz", seed=0, size=28, n_samples=n)
    return root


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


def test_child_environment_keeps_the_users_xla_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    flags = run_processes.child_environment()["XLA_FLAGS"]
    assert flags.startswith("--xla_force_host_platform_device_count=2 ")
    assert flags.endswith(parallel.ONE_THREAD_PER_DEVICE)
    monkeypatch.setenv("XLA_FLAGS", parallel.ONE_THREAD_PER_DEVICE)
    assert run_processes.child_environment()["XLA_FLAGS"] == parallel.ONE_THREAD_PER_DEVICE
    with pytest.raises(ValueError, match="jobs=0"):
        run_processes.train_runs([], 0, train.train_and_evaluate)
    config = tiny_config(Path("unused"))
    config.train.ensemble_jobs = 0
    with pytest.raises(config_check.ConfigError, match="train.ensemble_jobs=0 is invalid"):
        config_check.validate_config(config)


def test_a_parallel_run_is_reproduced_by_an_ensemble_member_and_a_failure_is_reported(
    root, tmp_path, capsys
):
    config = tiny_config(root, epochs=1, eval_batch_size=16)
    config.train.ensemble, config.train.ensemble_jobs = 2, 2
    members = [ensemble.member_config(config, i) for i in range(2)]
    broken = tiny_config(root, epochs=1, batch_size=64)  # more than the 32 training samples
    runs = [
        run_processes.Run("a", members[0], tmp_path / "a"),
        run_processes.Run("broken", broken, tmp_path / "broken"),
    ]
    finished = []
    with pytest.raises(run_processes.RunsFailed) as err:
        run_processes.train_runs(runs, 2, train.train_and_evaluate, lambda r, _: finished.append(r))
    log = tmp_path / "broken" / "train.log"
    assert str(err.value).startswith("run broken failed (exit 1): error: config.train.batch_size")
    assert str(err.value).endswith(f"; log: {log}") and "\n" not in str(err.value)
    assert [r.name for r in finished] == ["a"]  # the other run finished
    out = capsys.readouterr().out
    assert "[a] " in out and "[broken] error: run broken failed" in out
    a_log = (tmp_path / "a" / "train.log").read_text()
    assert "epoch 1/1" in a_log and "it/s" not in a_log  # no progress bar in the log

    workdir = tmp_path / "ensemble"  # run a again, as member 0 beside member 1
    results = train.train_and_evaluate(config, workdir)
    assert numbers(Workdir(workdir).member(0).path) == numbers(tmp_path / "a")
    assert numbers(Workdir(workdir).member(1).path) != numbers(tmp_path / "a")
    assert [m["seed"] for m in results["members"]] == [0, 1]
    config.train.ensemble_jobs = 1  # single-threaded members: the value cannot change
    with pytest.raises(WorkdirError, match="train.ensemble_jobs 2 -> 1"):
        train.train_and_evaluate(config, workdir)


def test_sweep_with_jobs_resumes_without_retraining_finished_runs(root, tmp_path):
    config = tiny_config(root, epochs=1, eval_batch_size=16)
    rows = sweep.sweep(config, [{}], 2, tmp_path, jobs=2)
    assert rows[0]["folds_done"] == 2
    fold0, fold1 = tmp_path / "base" / "fold0", tmp_path / "base" / "fold1"
    kept, trained = snapshot(fold0), snapshot(fold1 / "checkpoints")
    (fold1 / "results.json").unlink()  # fold 1 stopped after its last checkpoint
    again = sweep.sweep(config, [{}], 2, tmp_path, jobs=2)
    assert snapshot(fold0) == kept  # not one file of the finished run rewritten
    assert snapshot(fold1 / "checkpoints") == trained  # resumed: no epoch trained again
    assert again == rows
    assert json.loads((tmp_path / "table.json").read_text())["rows"][0]["folds_done"] == 2
