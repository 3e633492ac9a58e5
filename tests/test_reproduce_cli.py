"""`reproduce`'s config overrides and data root reach every run; bad variants, fields
and missing data are reported in one line, without a traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmttm_jax import reproduce, train

REPO = Path(__file__).resolve().parents[1]


def test_split_config_args_parses_literals_and_keeps_other_flags():
    rest, overrides = reproduce.split_config_args(
        ["--seeds=1", "--config.train.epochs=7", "--config.model.head=per_step"]
        + ["--config.data.rot90=true", "--config.train.learning_rate=3e-3"]
    )
    assert rest == ["--seeds=1"]
    assert overrides == {
        "train.epochs": 7,
        "model.head": "per_step",
        "data.rot90": True,
        "train.learning_rate": 3e-3,
    }
    with pytest.raises(ValueError, match="expected --config"):
        reproduce.split_config_args(["--config.train.epochs"])


def test_overrides_and_data_root_apply_to_every_run(tmp_path, monkeypatch):
    seen = []

    def fake_train(config, workdir):
        seen.append((config.train.epochs, config.model.dropout, config.data.root))
        res = {"val": {"acc": 0.5, "auc": 0.5}, "test": None}
        workdir.mkdir(parents=True)
        (workdir / "results.json").write_text(json.dumps(res))
        return res

    monkeypatch.setattr(train, "train_and_evaluate", fake_train)
    overrides = {"train.epochs": 3, "model.dropout": 0.1}
    out = tmp_path / "out"
    reproduce.reproduce(["synthetic3d"], ["lmttm", "ttm"], 2, "", out, 0, overrides, "DATA")
    assert seen == [(3, 0.1, "DATA")] * 4
    assert json.loads((out / "table.json").read_text())["overrides"] == overrides
    with pytest.raises(ValueError, match="no field 'train.epoch'"):
        reproduce.reproduce(["synthetic3d"], ["lmttm"], 1, "", out, 0, {"train.epoch": 3})


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "lmttm_jax.reproduce", f"--out={tmp_path / 'out'}", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--variant=scale=huge"], "bad config variant 'scale=huge'"),
        (["--config.train.epoch=3"], "no field 'train.epoch'"),
        (["--config.train.epochs"], "expected --config"),
        (
            ["--datasets=adrenalmnist3d", "--data_root={empty}", "--config.data.download=False"],
            "{empty}",
        ),
    ],
)
def test_cli_reports_bad_input_in_one_line(tmp_path, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [a.format(empty=empty) for a in args]
    proc = run_cli(tmp_path, "--seeds=1", *args)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert message.format(empty=empty) in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert not (tmp_path / "out" / "runs").exists()
