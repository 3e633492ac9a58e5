"""Scale-out on CPU: virtual devices and two local processes give the results of one.

Each run is a subprocess (device counts are fixed when JAX starts); all are bounded
by timeouts so a dead process cannot hang the suite.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from lmttm_jax import train
from lmttm_jax.data import write_synthetic

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "parallel_worker.py"
TIMEOUT = 300


def env_with(devices: int) -> dict[str, str]:
    env = dict(os.environ)
    flags = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    env["XLA_FLAGS"] = flags.strip()  # the suite's flags (tests/conftest.py) and the count
    env["PYTHONPATH"] = str(REPO)
    return env


def run_worker(devices, workdir, root, epochs=1, batch=16, dist=()):
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            str(workdir),
            str(root),
            str(epochs),
            str(batch),
            *map(str, dist),
        ],
        env=env_with(devices),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def finish(*procs) -> list[dict]:
    """Waits for every process (killing all on timeout); returns their RESULTS."""
    deadline, outs = time.monotonic() + TIMEOUT, []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=max(1, deadline - time.monotonic()))
            assert proc.returncode == 0, err[-3000:]
            outs.append(out)
    finally:
        for proc in procs:
            proc.kill()
    return [
        json.loads(line[8:])
        for out in outs
        for line in out.splitlines()
        if line.startswith("RESULTS ")
    ]


def latest_params(workdir: Path) -> dict:
    """The params of the latest checkpoint as numpy arrays, whatever wrote them."""
    step = ocp.CheckpointManager(workdir / "checkpoints" / "latest").latest_step()
    path = workdir / "checkpoints" / "latest" / str(step) / "state"
    checkpointer = ocp.PyTreeCheckpointer()
    tree = checkpointer.metadata(path).item_metadata.tree
    as_numpy = jax.tree.map(
        lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
        tree,
        is_leaf=lambda x: not isinstance(x, dict | list | tuple),
    )
    return checkpointer.restore(path, restore_args=as_numpy)["params"]


def assert_trees_close(a, b, atol=1e-3):
    """Gradients summed in another order differ in the last bits; Adam's normalised
    update magnifies that for near-zero gradients, so the bound is a fraction of one
    step's update size (lr 3e-3), not float epsilon."""
    flat_a = {k: np.asarray(v) for k, v in _flatten(a)}
    flat_b = {k: np.asarray(v) for k, v in _flatten(b)}
    assert flat_a.keys() == flat_b.keys()
    worst = max(np.abs(flat_a[k] - flat_b[k]).max() for k in flat_a)
    assert worst < atol, worst


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _flatten(value, f"{prefix}/{key}")
    else:
        yield prefix, tree


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_synthetic(
        root / "synthetic3d.npz", seed=0, size=28, n_samples={"train": 96, "val": 40, "test": 24}
    )
    return root


@pytest.fixture(scope="module")
def four_devices(data_root, tmp_path_factory) -> tuple[Path, dict]:
    workdir = tmp_path_factory.mktemp("four")
    (results,) = finish(run_worker(4, workdir, data_root))
    return workdir, results


@pytest.mark.slow
def test_four_devices_match_one_device(four_devices, data_root, tmp_path):
    workdir4, results4 = four_devices
    (results1,) = finish(run_worker(1, tmp_path, data_root))
    assert_trees_close(latest_params(tmp_path), latest_params(workdir4))
    for key in ("acc", "auc"):
        assert results1["val"][key] == pytest.approx(results4["val"][key], abs=1e-6)


@pytest.mark.slow
def test_two_processes_match_one_process_and_restore_elsewhere(four_devices, data_root, tmp_path):
    workdir4, results4 = four_devices
    coordinator = f"127.0.0.1:{free_port()}"
    procs = [run_worker(2, tmp_path, data_root, dist=(coordinator, 2, pid)) for pid in (0, 1)]
    results = finish(*procs)
    assert len(results) == 2
    assert_trees_close(latest_params(tmp_path), latest_params(workdir4))
    for res in results:
        for key in ("acc", "auc"):
            assert res["val"][key] == pytest.approx(results4["val"][key], abs=1e-6)
    # The checkpoint of 2 processes x 2 devices restores in this one process.
    again = train.evaluate_workdir(tmp_path, "val")
    for key in ("acc", "auc"):
        assert again[key] == pytest.approx(results4["val"][key], abs=1e-6)


def test_batch_not_divisible_by_devices_fails_at_start(data_root, tmp_path):
    proc = run_worker(4, tmp_path, data_root, batch=6)
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode != 0
    assert "config.train.batch_size=6 is not divisible by the number of devices (4)" in err
