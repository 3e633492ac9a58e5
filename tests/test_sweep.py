"""The search runner: grid files, overrides, resume and the ranked CV table."""

import importlib
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lmttm_jax import train
from lmttm_jax.experiments import search
from tests.tiny import tiny_config


def fake_train(calls):
    def run(config, workdir):
        calls.append((config.train.learning_rate, config.data.folds, config.data.fold))
        auc = 0.6 + config.train.learning_rate * 100 + 0.01 * config.data.fold
        res = {"val": {"acc": 0.5 + 0.01 * config.data.fold, "auc": auc, "loss": 1.0}}
        res["test"] = None
        workdir.mkdir(parents=True)
        (workdir / "results.json").write_text(json.dumps(res))
        (workdir / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "seconds": 60.0}) + "\n")
        return res

    return run


def test_sweep_ranks_points_and_trains_each_fold_once(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(train, "train_and_evaluate", fake_train(calls))
    config = tiny_config(tmp_path / "data", learning_rate=1e-3)
    points = [{}, {"train.learning_rate": 3e-3}]
    rows = search.sweep(config, points, 3, tmp_path / "s")
    assert sorted(calls) == sorted((lr, 3, f) for lr in (1e-3, 3e-3) for f in range(3))
    assert [r["point"] for r in rows] == ["train.learning_rate=0.003", "base"]
    assert rows[0]["auc"]["mean"] == pytest.approx(0.9 + 0.01)
    assert rows[0]["auc"]["std"] == pytest.approx(0.0081650, abs=1e-6)
    assert rows[1]["minutes_per_run"] == pytest.approx(1.0)
    assert (tmp_path / "s" / "base" / "fold2" / "results.json").exists()
    search.sweep(config, points, 3, tmp_path / "s")  # everything finished: nothing retrains
    assert len(calls) == 6
    md = (tmp_path / "s" / "table.md").read_text()
    assert md.index("`train.learning_rate=0.003`") < md.index("`base`")
    assert json.loads((tmp_path / "s" / "table.json").read_text())["rows"][0]["folds_done"] == 3


def test_unknown_field_and_bad_grid_are_errors(tmp_path):
    config = tiny_config(tmp_path)
    with pytest.raises(ValueError, match="no field 'train.learning_rat'"):
        search.apply_point(config, {"train.learning_rat": 1.0})
    with pytest.raises(ValueError, match="at least 2 folds"):
        search.sweep(config, [{}], 1, tmp_path)
    grid = tmp_path / "grid.py"
    grid.write_text("POINTS = {'a': 1}\n")
    with pytest.raises(ValueError, match="a list of dicts"):
        search.load_grid(grid)
    with pytest.raises(FileNotFoundError, match="no such file"):
        search.load_grid(tmp_path / "missing.py")
    assert search.apply_point(config, {"model.dim": 16}).model.dim == 16
    assert config.model.dim != 16  # the base config is not changed


def sweep_cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m lmttm_jax.sweep --config=configs/synthetic.py ARGS`, output captured."""
    command = [sys.executable, "-m", "lmttm_jax.sweep", "--config=configs/synthetic.py"]
    return subprocess.run([*command, *args], capture_output=True, text=True)


def test_cli_reports_a_bad_grid_in_one_line(tmp_path):
    grid = tmp_path / "grid.py"
    grid.write_text("POINTS = [{'train.nope': 1}]\n")
    proc = sweep_cli(f"--grid={grid}", f"--workdir={tmp_path / 's'}")
    assert proc.returncode == 1
    assert "no field 'train.nope'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "s").exists()


def test_runs_held_by_another_live_process_are_skipped(tmp_path):
    """A worker leaves a run whose lock a live process holds to that process and goes
    on; the table says what is missing."""
    grid = tmp_path / "grid.py"
    grid.write_text("POINTS = [{}]\n")
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}
    for fold in range(2):
        run = tmp_path / "s" / "base" / f"fold{fold}"
        run.mkdir(parents=True)
        (run / "lock").write_text(json.dumps(holder) + "\n")  # this process: alive
    proc = sweep_cli(
        f"--grid={grid}", "--folds=2", f"--workdir={tmp_path / 's'}",
        f"--data_root={tmp_path / 'data'}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("is in use by another training run") == 2, proc.stdout
    assert "0 of 2 runs finished; missing: base/fold0, base/fold1" in proc.stdout
    table = json.loads((tmp_path / "s" / "table.json").read_text())
    assert table["partial"] and table["rows"] == []
    assert "Traceback" not in proc.stderr


def test_every_shipped_grid_applies_to_the_config_its_command_names():
    """Each `sweeps/*.py` loads, and each of its points overrides only fields of the
    config given in its docstring's command (a stale grid fails here, not an hour in)."""
    grids = sorted((Path(__file__).parents[1] / "sweeps").glob("*.py"))
    assert grids
    for grid in grids:
        command = re.search(r"--config=configs/(\w+)\.py:(\S+)", grid.read_text())
        assert command, f"{grid.name}: no --config=configs/<name>.py:<variant> in its docstring"
        module = importlib.import_module(f"configs.{command.group(1)}")
        config = module.get_config(command.group(2))
        for point in search.load_grid(grid):
            search.apply_point(config, point)


@pytest.mark.parametrize(
    "text, message",
    [
        ("POINTS = [{'train.epochs': 1},\n", "line 1: '[' was never closed"),
        ("POINTS = []\n", "POINTS is empty"),
        ("POINTS = [{}, {'train.epochs': 2}, {}]\n", "points listed twice: base"),
    ],
)
def test_a_grid_that_does_not_load_is_one_line(tmp_path, text, message):
    grid = tmp_path / "grid.py"
    grid.write_text(text)
    proc = sweep_cli(f"--grid={grid}", f"--workdir={tmp_path / 's'}")
    assert proc.returncode == 1, proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert f"--grid={grid}" in line and message in line
    assert "Traceback" not in proc.stderr and not (tmp_path / "s").exists()
