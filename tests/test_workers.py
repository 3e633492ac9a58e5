"""The protocol's runs as jobs: several workers share one output folder, a killed worker's
run resumes from its checkpoint, `--list` and `--collect` (`experiments.jobs`)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmttm_jax.experiments import jobs, pool
from lmttm_jax.workdir import Workdir
from tests.tiny import TINY_MODEL, write_small_synthetic

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 600
# 2 models x 2 seeds of the tiny synthetic setup, 2 epochs each.
FIELDS = {f"model.{k}": v for k, v in TINY_MODEL.items()} | {
    "train.epochs": 2,
    "train.batch_size": 16,
    "train.eval_batch_size": 16,
    "train.warmup_epochs": 0,
    "train.learning_rate": 3e-3,
}
# Each training (a run whose lock was taken and that was not finished) prints
# `training <workdir>` and records when it starts and ends in `<workdir>.spans`.
TRACED = """
import runpy, sys, time
from pathlib import Path
from lmttm_jax import train
begin, train_one, mine = train.begin_run, train.train_and_evaluate, set()
def span(workdir, what):
    with open(str(workdir) + ".spans", "a") as f:
        f.write(f"{what} {time.time()}\\n")
def traced_begin(run, config):
    finished = begin(run, config)
    if finished is None:
        print("training", run.path, flush=True)
        mine.add(str(run.path))
        span(run.path, "start")
    return finished
def traced_train(config, workdir):
    try:
        return train_one(config, workdir)
    finally:
        if str(workdir) in mine:
            span(workdir, "end")
train.begin_run, train.train_and_evaluate = traced_begin, traced_train
sys.argv = ["reproduce", *sys.argv[1:]]
runpy.run_module("lmttm_jax.reproduce", run_name="__main__", alter_sys=True)
"""


def command(out: Path, root: Path, *extra: str) -> list[str]:
    args = ["--datasets=synthetic3d", "--models=lmttm,ttm", "--seeds=2", f"--out={out}"]
    args += [f"--data_root={root}", *(f"--config.{k}={v}" for k, v in FIELDS.items())]
    return [sys.executable, "-c", TRACED, *args, *extra]


def start(out: Path, root: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        command(out, root, *extra),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(*procs: subprocess.Popen) -> list[str]:
    deadline, outs = time.monotonic() + TIMEOUT, []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=max(1, deadline - time.monotonic()))
            outs.append(out)
    finally:
        for proc in procs:
            proc.kill()
    for proc, out in zip(procs, outs, strict=True):
        assert proc.returncode == 0, out[-3000:]
    return outs


def metrics(out: Path) -> dict:
    """table.json's figures, without timings."""
    table = json.loads((out / "table.json").read_text())
    for rows in table["ours"].values():
        for row in rows.values():
            row.pop("seconds_per_run", None), row.pop("epoch_seconds_median", None)
    return {k: table[k] for k in ("ours", "paired", "partial", "missing")}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_small_synthetic(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def one_worker(root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one")
    finish(start(out, root))
    return out


@pytest.mark.slow
def test_three_workers_give_the_table_of_one_and_never_share_a_run(one_worker, root, tmp_path):
    out = tmp_path / "three"
    outs = finish(*(start(out, root, f"--worker={i}", "--workers=3") for i in range(3)))
    assert metrics(out) == metrics(one_worker)
    assert not metrics(out)["partial"]
    runs = sorted((out / "runs").iterdir())
    spans = {}
    for spans_file in sorted((out / "runs").glob("*.spans")):
        times = [float(line.split()[1]) for line in spans_file.read_text().splitlines()]
        assert len(times) == 2, f"{spans_file.name} trained {len(times) // 2} times"
        spans[spans_file.name] = times
    assert len(spans) == len([r for r in runs if r.is_dir()]) == 4  # each run trained once
    trained = [line for text in outs for line in text.splitlines() if line.startswith("training")]
    assert len(trained) == 4, trained  # never by two workers
    assert sum(bool(o.count("training")) for o in outs) >= 2  # the work was shared


@pytest.mark.slow
def test_a_killed_worker_is_resumed_by_the_rerun(root, tmp_path):
    out = tmp_path / "killed"
    proc = start(out, root)
    first = out / "runs" / "synthetic3d-lmttm-seed0"
    deadline = time.monotonic() + TIMEOUT
    while not (first / "checkpoints" / "latest" / "1").is_dir():
        assert proc.poll() is None and time.monotonic() < deadline, "no epoch was saved"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # after epoch 1 of 2: mid-run
    proc.wait()
    assert Workdir(first).checkpoints(read_only=True).last_epoch() == 1
    listed = subprocess.run(command(out, root, "--list", "--workers=2"), cwd=REPO,
                            capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "4 runs, 0 finished" in listed.stdout and "worker 1" in listed.stdout
    (rerun,) = finish(start(out, root))
    assert f"resuming from {first / 'checkpoints' / 'latest' / '1'} after epoch 1" in rerun
    rows = Workdir(first).read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2]  # epoch 1 not trained again
    assert not metrics(out)["partial"]


def test_list_and_collect_on_a_fresh_folder_and_bad_worker_flags(root, tmp_path):
    out = tmp_path / "fresh"
    collected = subprocess.run(command(out, root, "--collect"), cwd=REPO,
                               capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
    assert collected.returncode == 0, collected.stderr
    assert "0 of 4 runs finished; missing:" in collected.stdout
    table = json.loads((out / "table.json").read_text())
    assert table["partial"] and len(table["missing"]) == 4
    assert (out / "table.md").read_text().startswith("Partial: 4 of 4 runs not finished")
    for flags, message in (
        (["--workers=0"], "--workers=0"),
        (["--worker=3", "--workers=3"], "--worker=3"),
    ):
        proc = subprocess.run(command(out, root, *flags), cwd=REPO, capture_output=True,
                              text=True, timeout=TIMEOUT)  # fmt: skip
        assert proc.returncode == 2 and f"error: {message}" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_worker_index_from_a_slurm_array():
    env = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert jobs.worker_index(None, None, env) == (2, 4)
    assert jobs.worker_index(1, 3, env) == (1, 3)  # the flags win
    assert jobs.worker_index(None, None, {}) == (0, 1)
    runs = [pool.Run(str(i), None, Path(str(i))) for i in range(5)]
    assert [r.name for r in jobs.worker_order(runs, 1, 2)] == ["1", "3", "0", "2", "4"]
