"""The protocol runner: configs per run, resume, the table."""

import json

import pytest

from lmttm_jax import train
from lmttm_jax.experiments import protocol


def fake_results(dataset, model, seed, with_test=True):
    acc = 0.5 + 0.1 * seed + (0.05 if model == "lmttm" else 0.0)
    split = {"acc": acc, "auc": acc + 0.1, "loss": 1.0}
    return {
        "dataset": dataset,
        "model": model,
        "seed": seed,
        "val": split,
        "test": split if with_test else None,
    }


def test_run_config_applies_model_variant_and_seed():
    config = protocol.run_config("adrenalmnist3d", "ttm", 2, "scale=cpu,size=64")
    assert (config.model.name, config.seed, config.data.size) == ("ttm", 2, 64)
    assert config.data.name == "adrenalmnist3d"
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        protocol.run_config("mnist", "lmttm", 0, "")


def test_reproduce_runs_each_once_resumes_and_writes_table(tmp_path, monkeypatch):
    calls = []

    def fake_train(config, workdir):
        calls.append((config.data.name, config.model.name, config.seed))
        res = fake_results(
            config.data.name,
            config.model.name,
            config.seed,
            with_test=config.data.name != "adrenalmnist3d",
        )
        workdir.mkdir(parents=True)
        (workdir / "results.json").write_text(json.dumps(res))
        return res

    monkeypatch.setattr(train, "train_and_evaluate", fake_train)
    args = (["synthetic3d", "adrenalmnist3d"], ["lmttm", "ttm"], 2, "scale=tiny", tmp_path)
    table = protocol.reproduce(*args)
    assert len(calls) == 8 and len(set(calls)) == 8
    protocol.reproduce(*args)  # everything finished: nothing is trained again
    assert len(calls) == 8
    assert table["lmttm"]["synthetic3d"]["split"] == "test"
    assert table["lmttm"]["adrenalmnist3d"]["split"] == "val"
    assert table["lmttm"]["synthetic3d"]["acc"]["mean"] == pytest.approx(0.6)
    assert table["lmttm"]["synthetic3d"]["acc"]["std"] == pytest.approx(0.05)
    md = (tmp_path / "table.md").read_text()
    assert "| lmttm (ours) |" in md and "| LMTTM (published) |" in md
    assert "0.842 / 0.847" in md  # published LMTTM on AdrenalMNIST3D
    assert "(val)" in md
    saved = json.loads((tmp_path / "table.json").read_text())
    assert saved["ours"]["ttm"]["adrenalmnist3d"]["runs"] == 2


def test_cross_validation_runs_every_fold_and_seed(tmp_path, monkeypatch):
    calls = []

    def fake_train(config, workdir):
        calls.append((config.data.folds, config.data.fold, config.seed, workdir.name))
        res = fake_results(config.data.name, config.model.name, config.seed, with_test=False)
        res["val"] = {"acc": 0.5 + 0.1 * config.data.fold, "auc": 0.9, "loss": 1.0}
        workdir.mkdir(parents=True)
        (workdir / "results.json").write_text(json.dumps(res))
        epochs = [{"epoch": e, "seconds": 10.0 + config.data.fold} for e in (1, 2, 3)]
        (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in epochs))
        return res

    monkeypatch.setattr(train, "train_and_evaluate", fake_train)
    table = protocol.reproduce(["adrenalmnist3d"], ["lmttm"], 2, "scale=tiny", tmp_path, folds=3)
    assert sorted(c[:3] for c in calls) == [(3, f, s) for f in range(3) for s in range(2)]
    assert "adrenalmnist3d-lmttm-cv3-fold2-seed1" in {c[3] for c in calls}
    row = table["lmttm"]["adrenalmnist3d"]
    assert (row["folds"], row["runs"], row["split"]) == (3, 6, "val")
    assert row["acc"]["mean"] == pytest.approx(0.6)
    assert row["seconds_per_run"]["mean"] == pytest.approx(33.0)  # 3 epochs of 10, 11, 12 s
    assert row["epoch_seconds_median"] == pytest.approx(11.0)
    md = (tmp_path / "table.md").read_text()
    assert "(3-fold CV)" in md and "| lmttm | adrenalmnist3d | 6 | 33 (30-36) | 11.0 |" in md
