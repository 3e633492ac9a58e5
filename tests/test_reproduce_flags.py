"""reproduce's `--config.*` overrides, `--data_root`, and one-line user errors."""

import json
import signal
import subprocess
import sys

import pytest

from lmttm_jax import errors, train
from lmttm_jax.experiments import protocol
from tests.tiny import tiny_config


def test_apply_overrides_sets_fields_and_names_bad_ones(tmp_path):
    config = tiny_config(tmp_path)
    protocol.apply_overrides(config, {"train.epochs": 7, "model.dropout": 0.1})
    assert (config.train.epochs, config.model.dropout) == (7, 0.1)
    with pytest.raises(ValueError, match="no field 'train.epoch'"):
        protocol.apply_overrides(config, {"train.epoch": 1})
    with pytest.raises(ValueError, match="train.epochs='many'"):
        protocol.apply_overrides(config, {"train.epochs": "many"})


def test_split_config_args_parses_values():
    rest, overrides = protocol.split_config_args(
        ["--folds=5", "--config.train.epochs=80", "--config.data.rot90=true", "--config.a.b=x"]
    )
    assert rest == ["--folds=5"]
    assert overrides == {"train.epochs": 80, "data.rot90": True, "a.b": "x"}
    with pytest.raises(ValueError, match="--config.train.epochs"):
        protocol.split_config_args(["--config.train.epochs"])


def test_overrides_and_data_root_reach_every_run(tmp_path, monkeypatch):
    seen = []

    def fake_train(config, workdir):
        seen.append((config.train.epochs, config.model.dropout, config.data.root))
        res = {"val": {"acc": 0.5, "auc": 0.6, "loss": 1.0}, "test": None}
        workdir.mkdir(parents=True)
        (workdir / "results.json").write_text(json.dumps(res))
        return res

    monkeypatch.setattr(train, "train_and_evaluate", fake_train)
    overrides = {"train.epochs": 3, "model.dropout": 0.1}
    protocol.reproduce(
        ["synthetic3d"], ["lmttm", "ttm"], 1, "", tmp_path, 0, overrides, str(tmp_path / "d")
    )
    assert seen == [(3, 0.1, str(tmp_path / "d"))] * 2
    assert json.loads((tmp_path / "table.json").read_text())["overrides"] == overrides


@pytest.mark.parametrize(
    "args, message",
    [
        (["--variant=scale=huge"], "error: bad config variant 'scale=huge'"),
        (["--config.train.epoch=3"], "error: config override train.epoch=3"),
        (
            ["--datasets=adrenalmnist3d", "--config.data.download=False"],
            "error: dataset file",
        ),
    ],
)
def test_cli_reports_user_errors_in_one_line(tmp_path, args, message):
    cmd = [sys.executable, "-m", "lmttm_jax.reproduce", f"--out={tmp_path / 'o'}", "--seeds=1"]
    cmd += [f"--data_root={tmp_path / 'empty'}", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1].startswith(message), out.stderr[-2000:]
    assert "Traceback" not in out.stderr


# `python -m MODULE ARGS` whose every training prints `training` and waits.
WAITING_RUNS = """
import runpy, sys, time
from lmttm_jax import train
def waiting(config, workdir):
    print("training", flush=True)
    time.sleep(120)
train.train_and_evaluate = waiting
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("module", ["lmttm_jax.reproduce", "lmttm_jax.sweep"])
def test_sigterm_says_how_to_resume(tmp_path, module):
    if module == "lmttm_jax.reproduce":
        args = ["--datasets=synthetic3d", "--models=lmttm", "--seeds=1", f"--out={tmp_path}"]
    else:
        (tmp_path / "grid.py").write_text("POINTS = [{}]\n")
        args = ["--config=configs/synthetic.py", f"--grid={tmp_path / 'grid.py'}", "--folds=2"]
        args.append(f"--workdir={tmp_path / 's'}")
    command = [sys.executable, "-c", WAITING_RUNS, module, *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while proc.stdout.readline().strip() != "training":
            assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == errors.EXIT_INTERRUPTED, err
    assert err.strip().splitlines()[-1] == f"error: {errors.RUNS_INTERRUPTED}", err
    assert "Traceback" not in err
