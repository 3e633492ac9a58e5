"""The search runner: K-fold CV per grid point, resume, the ranked table; and the
overrides / data root / one-line errors of `reproduce`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmttm_jax import reproduce, sweep, train
from lmttm_jax.data import write_synthetic
from tests.tiny import tiny_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_synthetic(
        root / "synthetic3d.npz", seed=0, size=28, n_samples={"train": 48, "val": 16, "test": 16}
    )
    return root


def test_overrides_set_typed_fields_and_reject_unknown_ones(synthetic_root):
    config = tiny_config(synthetic_root)
    overrides = dict(
        reproduce.parse_override(t)
        for t in ("train.epochs=7", "config.model.head=per_step", "data.rot90=true")
    )
    reproduce.apply_overrides(config, overrides | {"train.learning_rate": 2})
    assert (config.train.epochs, config.model.head, config.data.rot90) == (7, "per_step", True)
    assert config.train.learning_rate == 2.0
    with pytest.raises(ValueError, match="no such config field 'train.epoch'"):
        reproduce.apply_overrides(config, {"train.epoch": 3})
    with pytest.raises(ValueError, match="train.epochs='many'.*expected a int"):
        reproduce.apply_overrides(config, {"train.epochs": "many"})
    with pytest.raises(ValueError, match="expected FIELD=VALUE"):
        reproduce.parse_override("train.epochs")


def test_sweep_ranks_points_by_cv_auc_and_a_rerun_trains_nothing(
    synthetic_root, tmp_path, monkeypatch
):
    base = tiny_config(synthetic_root, epochs=1, eval_batch_size=16)
    grid = tmp_path / "grid.py"
    grid.write_text('POINTS = [{}, {"train.learning_rate": 1e-9}]\n')
    points = sweep.load_grid(grid)
    calls = []
    real_train = train.train_and_evaluate

    def counted(config, workdir):
        calls.append((config.train.learning_rate, config.data.fold))
        assert config.data.folds == 2
        return real_train(config, workdir)

    monkeypatch.setattr(train, "train_and_evaluate", counted)
    out = tmp_path / "search"
    rows = sweep.sweep(base, points, 2, out, "tiny")
    assert len(calls) == 4 and len(set(calls)) == 4
    aucs = [r["auc"]["mean"] for r in rows]
    assert aucs == sorted(aucs, reverse=True)
    assert all(r["folds_done"] == 2 and r["minutes_per_run"] > 0 for r in rows)
    for r in rows:
        assert r["auc"]["mean"] == pytest.approx(sum(r["auc"]["values"]) / 2)
        assert r["auc"]["std"] == pytest.approx(
            abs(r["auc"]["values"][0] - r["auc"]["values"][1]) / 2
        )
    # Test is never read in cross-validation.
    result = json.loads((out / "runs" / "baseline" / "fold0" / "results.json").read_text())
    assert result["test"] is None
    saved = json.loads((out / "table.json").read_text())
    assert [r["point"] for r in saved["points"]] == [r["point"] for r in rows]
    md = (out / "table.md").read_text()
    assert "`baseline`" in md and "`train.learning_rate=1e-09`" in md and "2/2" in md

    again = sweep.sweep(base, points, 2, out, "tiny")
    assert len(calls) == 4  # every (point, fold) finished: nothing trained again
    assert again == rows


def test_sweep_rejects_a_bad_grid_before_training(synthetic_root, tmp_path):
    base = tiny_config(synthetic_root, epochs=1)
    with pytest.raises(ValueError, match="no such config field 'train.nope'"):
        sweep.sweep(base, [{}, {"train.nope": 1}], 2, tmp_path / "s")
    with pytest.raises(ValueError, match="repeats a point"):
        sweep.sweep(base, [{}, {}], 2, tmp_path / "s")
    bad = tmp_path / "grid.py"
    bad.write_text("POINTS = {'train.epochs': 3}\n")
    with pytest.raises(ValueError, match="expected POINTS"):
        sweep.load_grid(bad)
    assert not (tmp_path / "s").exists()


def _reproduce(tmp_path, *args):
    cmd = [sys.executable, "-m", "lmttm_jax.reproduce", f"--out={tmp_path / 'out'}", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--variant=scale=huge"], "bad config variant 'scale=huge'"),
        (["--config.train.epoch=3"], "no such config field 'train.epoch'"),
        (["--config.train.epochs"], "expected FIELD=VALUE"),
    ],
)
def test_reproduce_reports_bad_input_in_one_line(tmp_path, args, message):
    proc = _reproduce(tmp_path, "--datasets=synthetic3d", *args)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_reproduce_data_root_and_overrides_reach_the_runs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _reproduce(
        tmp_path,
        "--datasets=adrenalmnist3d",
        f"--data_root={empty}",
        "--config.data.download=False",
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert str(empty) in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_reproduce_overrides_apply_to_every_run(tmp_path, monkeypatch):
    seen = []

    def fake_train(config, workdir):
        seen.append((config.train.epochs, config.data.root))
        res = {"val": {"acc": 0.5, "auc": 0.5}, "test": None}
        workdir.mkdir(parents=True)
        (workdir / "results.json").write_text(json.dumps(res))
        return res

    monkeypatch.setattr(train, "train_and_evaluate", fake_train)
    monkeypatch.setattr(reproduce, "check_dataset", lambda config: None)
    overrides = {"train.epochs": 3, "data.root": str(tmp_path)}
    reproduce.reproduce(["synthetic3d"], ["lmttm", "ttm"], 2, "", tmp_path / "o", 0, overrides)
    assert seen == [(3, str(tmp_path))] * 4
