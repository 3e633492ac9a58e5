"""Ensembles as one run (`train.ensemble`, seeds or folds) and the `recipe=` variant."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from configs import adrenal, organ
from lmttm_jax import config as config_lib
from lmttm_jax import evaluate, explain, inference, parallel, pretrained, recipes, train
from lmttm_jax.data import get_info, load_split
from lmttm_jax.experiments import ensemble, train_run
from lmttm_jax.models.tokenizer import num_patches
from lmttm_jax.workdir import Workdir, WorkdirError
from tests.test_pretrained import assert_a_damaged_member_file_is_named
from tests.tiny import tiny_config, write_small_synthetic


def test_recipe_variant_sets_its_fields_and_a_bad_value_is_one_line():
    for arg, size, patch, epochs in (
        ("recipe=cpu", 28, 3, 80),
        ("recipe=cpu,size=64", 64, 7, 60),
    ):
        config = adrenal.get_config(arg)
        assert config.data.size == size and config.train.epochs == epochs
        assert config.model.patch_size == patch
        assert num_patches(size, patch) == 9  # 9 steps of 9 x 9 tokens at both sizes
        assert config.model.dim == config_lib.SCALES["tiny"]["dim"]
        fields = recipes.RECIPES["cpu"]["fields"]
        assert config.train.ema_decay == fields["train.ema_decay"] == 0.99
        assert config.data.tta is True and config.data.flip is True
        # two seeds side by side at both sizes
        assert (config.train.ensemble, config.train.ensemble_jobs) == (2, 2)
        assert config.train.ensemble_mode == "seeds"
        assert config.model.dropout == 0.0
        config_lib.validate_config(config)
    assert organ.get_config("recipe=cpu,scale=cpu").model.dim == config_lib.SCALES["cpu"]["dim"]
    plain = adrenal.get_config()
    assert (plain.train.ensemble, plain.train.ema_decay, plain.data.tta) == (0, 0.0, False)
    assert plain.model.dropout == 0.2  # the recipe turns off what the plain config has
    with pytest.raises(ValueError, match="bad config variant 'recipe=gpu': expected") as err:
        adrenal.get_config("recipe=gpu")
    assert "\n" not in str(err.value)


def test_member_configs_and_the_folds_rule(tmp_path):
    config = tiny_config(tmp_path)
    config.seed, config.train.ensemble = 5, 3
    seeds = [ensemble.member_config(config, i) for i in range(3)]
    assert [(c.seed, c.data.folds, c.train.ensemble) for c in seeds] == [
        (5, 0, 0),
        (6, 0, 0),
        (7, 0, 0),
    ]
    config.train.ensemble_mode = "folds"
    folds = [ensemble.member_config(config, i) for i in range(3)]
    assert [(c.seed, c.data.folds, c.data.fold) for c in folds] == [(5, 3, 0), (5, 3, 1), (5, 3, 2)]
    config.data.folds = 5
    with pytest.raises(config_lib.ConfigError, match="config.data.folds=5 is invalid"):
        config_lib.validate_config(config)
    config.data.folds, config.train.ensemble_mode = 0, "boosting"
    with pytest.raises(config_lib.ConfigError, match="train.ensemble_mode='boosting'"):
        config_lib.validate_config(config)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_small_synthetic(tmp_path_factory.mktemp("data"))


def ensemble_config(root: Path, mode: str):
    config = tiny_config(root, epochs=1, eval_batch_size=16)
    config.train.ensemble, config.train.ensemble_mode = 2, mode
    return config_lib.validate_config(config)


def member_probs(member: Workdir, config, split) -> np.ndarray:
    """A member's probabilities on `split`, evaluated as its ensemble evaluates them."""
    restored = inference.restore(member.path)
    steps = train.Steps(config, parallel.make_mesh(), restored.model)
    task = restored.info.task
    return train.evaluate_split(steps, restored.params[0], split, 16, task)[1]


def snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def csv_probs(workdir: Path, split: str) -> np.ndarray:
    (path,) = workdir.glob(f"synthetic3d_{split}_*@lmttm-ensemble2*.csv")
    return np.loadtxt(path, delimiter=",")[:, 1:]


@pytest.mark.slow
def test_seeds_ensemble_reports_the_mean_of_its_members_and_resumes_per_member(
    root, tmp_path, capsys
):
    workdir = tmp_path
    train_run(ensemble_config(root, "seeds"), workdir)
    results = json.loads((workdir / "results.json").read_text())
    assert results["ensemble"] == {"members": 2, "mode": "seeds"}
    assert "averaged" in results["val_kind"]
    test = load_split(root / "synthetic3d.npz", "synthetic3d", 28, "test")
    config = ensemble_config(root, "seeds")
    members = []
    for i in range(2):
        member = Workdir(workdir).member(i)
        assert json.loads(member.config_path.read_text())["seed"] == i
        own = member.read_results()  # the member's own single-run evaluation
        assert results["members"][i]["test"]["auc"] == pytest.approx(own["test"]["auc"])
        assert results["members"][i]["best_epoch"] == own["best_epoch"]
        members.append(member_probs(member, ensemble.member_config(config, i), test))
    mean = np.mean(members, axis=0)
    assert not np.allclose(members[0], members[1])  # two different models
    np.testing.assert_allclose(csv_probs(workdir, "test"), mean, rtol=1e-6, atol=1e-7)
    expected = evaluate.medmnist_metrics(test[1], mean, get_info("synthetic3d").task)
    assert results["test"]["auc"] == pytest.approx(expected["auc"])
    assert results["test"]["acc"] == pytest.approx(expected["acc"])
    run = inference.restore(workdir)  # predict averages the members
    volumes = test[0][:2].astype(np.float32) / 255
    np.testing.assert_allclose(inference.predict_fn(run)(volumes), mean[:2], atol=1e-5)
    with pytest.raises(WorkdirError, match="is an ensemble of 2 members"):
        train.evaluate_workdir(workdir, "test")
    assert_a_finished_member_is_not_retrained(workdir, root)
    assert_the_export_predicts_and_explains_as_the_run(workdir, volumes, capsys)


def assert_the_export_predicts_and_explains_as_the_run(
    workdir: Path, volumes: np.ndarray, capsys: pytest.CaptureFixture
) -> None:
    provenance = {"command": "python main.py --config=x", "machine": "here", "wall_time": "1 s"}
    out = pretrained.export(workdir, workdir.parent / "exported", provenance)
    assert sorted(p.name for p in out.glob("member_*")) == ["member_0.msgpack", "member_1.msgpack"]
    model = inference.restore(out)
    assert len(model.params) == 2
    expected = inference.predict_fn(inference.restore(workdir))(volumes)
    np.testing.assert_allclose(inference.predict_fn(model)(volumes), expected, atol=1e-7)
    np.save(out.parent / "vol.npy", volumes[0])  # [28, 28, 28]
    written = explain.explain_file(model, out.parent / "vol.npy", out.parent / "e.png", None)
    assert [p.name for p in written] == ["e.png", "e_memory.png"]
    assert "an ensemble of 2; explaining member 0" in capsys.readouterr().out
    assert_a_damaged_member_file_is_named(out, 1)


def assert_a_finished_member_is_not_retrained(workdir: Path, root: Path) -> None:
    before = json.loads((workdir / "results.json").read_text())
    (workdir / "results.json").unlink()
    for path in workdir.glob("*.csv"):
        path.unlink()
    member0, member1 = (Workdir(workdir).member(i).path for i in range(2))
    kept = snapshot(member0)
    (member1 / "results.json").unlink()  # member 1 stopped after its last checkpoint
    trained = snapshot(member1 / "checkpoints")
    again = train_run(ensemble_config(root, "seeds"), workdir)
    assert snapshot(member0) == kept  # not one file of member 0 rewritten
    assert snapshot(member1 / "checkpoints") == trained  # resumed: no epoch trained again
    assert (member1 / "results.json").is_file()
    assert again["test"] == before["test"] and again["members"] == before["members"]
    shutil.rmtree(member1)  # a finished ensemble, one member deleted: trained again
    rebuilt = train_run(ensemble_config(root, "seeds"), workdir)
    assert (member1 / "results.json").is_file()
    assert rebuilt["members"][1]["best_epoch"] == before["members"][1]["best_epoch"]
    assert rebuilt["test"]["auc"] == pytest.approx(before["test"]["auc"], abs=1e-6)


@pytest.mark.slow
def test_folds_ensemble_members_validate_on_disjoint_folds(root, tmp_path):
    results = train_run(ensemble_config(root, "folds"), tmp_path)
    assert "out-of-fold" in results["val_kind"]
    pooled = sum(
        len(load_split(root / "synthetic3d.npz", "synthetic3d", 28, s)[1]) for s in ("train", "val")
    )
    for i in range(2):
        member = Workdir(tmp_path).member(i)
        stored = json.loads(member.config_path.read_text())["data"]
        assert (stored["folds"], stored["fold"]) == (2, i)
        own = member.read_results()  # validated on its own fold, test not read
        assert own["test"] is None
        assert results["members"][i]["val"]["auc"] == pytest.approx(own["val"]["auc"])
    config = ensemble_config(root, "folds")
    evaluated, fold = ensemble.member_splits(config, train.dataset_splits(config)[1])
    assert len(fold) == pooled and set(fold.tolist()) == {0, 1}
    assert sum(len(e["val"][1]) for e in evaluated) == pooled  # each sample held out once
    for i in range(2):  # the fold evaluated for member i is the one it held out
        held_out = train.dataset_splits(ensemble.member_config(config, i))[1]["val"]
        np.testing.assert_array_equal(evaluated[i]["val"][0], held_out[0])
    assert results["test"] is not None and np.isfinite(results["test"]["auc"])
    assert len(csv_probs(tmp_path, "test")) == 16
