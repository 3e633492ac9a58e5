"""Training program: metrics, outputs, resume, configs, and the real AdrenalMNIST3D file."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from ml_collections import config_flags  # noqa: F401  (registers the config flag parser)

from configs import adrenal, organ
from lmttm_jax import config as config_lib
from lmttm_jax import evaluate, train
from lmttm_jax.data import medmnist_module, write_synthetic
from lmttm_jax.workdir import Checkpoints
from tests.tiny import TINY_MODEL
from tests.tiny import tiny_config as shared_tiny_config

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "medmnist"


def tiny_config(root: Path):
    return shared_tiny_config(root, epochs=2, eval_batch_size=32)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_synthetic(
        root / "synthetic3d.npz", seed=0, size=28, n_samples={"train": 960, "val": 64, "test": 72}
    )
    return root


@pytest.mark.parametrize("task,classes", [("binary-class", 2), ("multi-class", 4)])
def test_metrics_match_medmnist_evaluator(task, classes):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, 50)
    probs = rng.dirichlet(np.ones(classes), 50)
    pytest.importorskip("medmnist")  # optional: the reference the metrics are checked against
    ev = medmnist_module("evaluator")
    got = evaluate.medmnist_metrics(labels, probs, task)
    assert got["auc"] == ev.getAUC(labels[:, None], probs, task)
    assert got["acc"] == ev.getACC(labels[:, None], probs, task)
    preds = evaluate.predicted_labels(probs, task)
    assert np.mean(preds == labels) == pytest.approx(got["acc"])
    matrix = np.asarray(evaluate.confusion_matrix(labels, preds, classes))
    assert matrix.sum() == 50 and np.trace(matrix) == np.sum(preds == labels)


def test_model_selection_prefers_auc_then_acc():
    assert evaluate.is_better({"auc": 0.8, "acc": 0.5}, None)
    assert evaluate.is_better({"auc": 0.8, "acc": 0.5}, {"auc": 0.7, "acc": 0.9})
    assert evaluate.is_better({"auc": 0.8, "acc": 0.6}, {"auc": 0.8, "acc": 0.5})
    assert not evaluate.is_better({"auc": 0.8, "acc": 0.5}, {"auc": 0.8, "acc": 0.5})
    assert evaluate.is_better({"auc": 0.5, "acc": 0.1}, {"auc": float("nan"), "acc": 0.9})


def test_config_variants():
    config = organ.get_config("model=ttm,size=64,scale=cpu")
    assert (config.model.name, config.data.size, config.model.patch_size) == ("ttm", 64, 4)
    assert (
        config.model.dim == config_lib.SCALES["cpu"]["dim"] and config.data.name == "organmnist3d"
    )
    assert adrenal.get_config().model.dim == 448  # reference width by default
    with pytest.raises(ValueError, match="bad config variant 'size=32'"):
        organ.get_config("size=32")


def test_run_progress_eta_is_the_mean_epoch_times_the_epochs_left():
    assert train.run_progress(50.4, [5.0], 1, 4) == "elapsed 0:00:50  eta 0:00:15"
    assert train.run_progress(70.0, [8.0, 10.0, 12.0], 3, 10) == "elapsed 0:01:10  eta 0:01:10"


@pytest.fixture(scope="module")
def trained(synthetic_root, tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("run")
    train.train_and_evaluate(tiny_config(synthetic_root), workdir)
    return workdir


@pytest.mark.slow
def test_two_epochs_write_all_outputs_and_beat_chance(trained):
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("train_loss", "val_loss", "val_acc", "val_auc", "learning_rate", "seconds"):
        assert all(np.isfinite(r[key]) for r in rows), key
    results = json.loads((trained / "results.json").read_text())
    assert results["best_epoch"] in (1, 2)
    assert results["test"]["acc"] > 0.35 and results["test"]["auc"] > 0.65  # chance: 0.25, 0.5
    assert np.asarray(results["confusion_matrix"]).sum() == 72  # every test sample, once
    assert json.loads((trained / "config.json").read_text())["model"]["dim"] == 32
    csvs = list(trained.glob("synthetic3d_test_*@lmttm-seed0.csv"))
    assert len(csvs) == 1
    assert len(csvs[0].read_text().splitlines()) == 72
    assert (trained / "checkpoints" / "best").is_dir()
    assert (trained / "checkpoints" / "latest").is_dir()


def test_eval_mode_reproduces_test_metrics(trained, synthetic_root):
    again = train.evaluate_workdir(trained, "test")  # the run's own config.json
    results = json.loads((trained / "results.json").read_text())
    assert again["acc"] == results["test"]["acc"] and again["auc"] == results["test"]["auc"]


def test_resume_after_interruption_matches_uninterrupted(
    trained, synthetic_root, tmp_path, monkeypatch
):
    save = Checkpoints.save

    def save_then_stop(self, kind, epoch, state, meta):
        save(self, kind, epoch, state, meta)
        if kind == "latest" and epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoints, "save", save_then_stop)
    monkeypatch.chdir(tmp_path.parent)  # a relative workdir, as users type it
    workdir = Path(tmp_path.name)
    with pytest.raises(KeyboardInterrupt):
        train.train_and_evaluate(tiny_config(synthetic_root), workdir)
    assert not (tmp_path / "results.json").exists()
    monkeypatch.setattr(Checkpoints, "save", save)
    resumed = train.train_and_evaluate(tiny_config(synthetic_root), workdir)
    expected = json.loads((trained / "results.json").read_text())
    for split in ("val", "test"):
        for key in ("acc", "auc", "loss"):
            assert resumed[split][key] == expected[split][key], (split, key)

    def rows(d):
        lines = (d / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if "second" not in k} for x in lines]

    assert rows(tmp_path) == rows(trained)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "adrenalmnist3d.npz").exists(), reason="no shared data")
def test_real_adrenal_trains_and_reports_validation_only(tmp_path, capsys):
    config = adrenal.get_config()
    config.data.root = str(SHARED)
    config.data.download = False
    config.model.update(TINY_MODEL)
    config.train.update(epochs=1, batch_size=64, eval_batch_size=64)
    results = train.train_and_evaluate(config, tmp_path)
    assert results["test"] is None and "test split" in results["test_missing"]
    assert 0.0 <= results["val"]["acc"] <= 1.0 and np.isfinite(results["val"]["auc"])
    assert np.asarray(results["confusion_matrix"]).sum() == 98
    assert "split 'test' is not in" in capsys.readouterr().out


@pytest.mark.slow
def test_cross_validation_fold_never_reads_test(synthetic_root, tmp_path, capsys):
    config = tiny_config(synthetic_root)
    config.train.epochs = 1
    config.data.folds, config.data.fold = 4, 1
    results = train.train_and_evaluate(config, tmp_path)
    assert results["test"] is None  # the file has a test split; cross-validation skips it
    assert results["cross_validation"] == {"folds": 4, "fold": 1}
    assert "cross-validation" in results["test_missing"]
    line = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d epoch 1/1 .* elapsed \d+:\d\d:\d\d  eta 0:00:00"
    assert re.search(line, capsys.readouterr().out, re.MULTILINE)
    assert np.asarray(results["confusion_matrix"]).sum() == (960 + 64) // 4
    again = train.evaluate_workdir(tmp_path, "val")
    assert again["auc"] == pytest.approx(results["val"]["auc"])


def test_bfloat16_compute_keeps_float32_state(synthetic_root):
    import jax
    import jax.numpy as jnp

    from lmttm_jax import data as data_lib
    from lmttm_jax import parallel
    from lmttm_jax.models import build_model

    config = tiny_config(synthetic_root)
    config.train.compute_dtype = "bfloat16"
    model = build_model(config.model, 4, 28)
    steps = train.Steps(config, parallel.make_mesh(), model)
    state = train.create_train_state(config, model, jax.random.key(0), 10)
    images, labels = data_lib.load_split(
        synthetic_root / "synthetic3d.npz", "synthetic3d", 28, "train"
    )
    batch = next(data_lib.train_batches(images, labels, 16, 0, 1))
    before = [np.asarray(p) for p in jax.tree.leaves(state.params)]  # state is donated
    new_state, loss = steps.train(state, steps.put_batch(batch), jax.random.key(1))
    assert np.isfinite(float(loss))
    leaves = jax.tree.leaves((new_state.params, new_state.opt_state))
    assert all(x.dtype != jnp.bfloat16 for x in leaves)
    after = jax.tree.leaves(new_state.params)
    assert any(np.any(np.asarray(a) != b) for a, b in zip(after, before, strict=True))


def test_train_epoch_is_the_steps_one_after_another(synthetic_root):
    import jax

    from lmttm_jax import data as data_lib
    from lmttm_jax import parallel
    from lmttm_jax.models import build_model

    config = tiny_config(synthetic_root)
    model = build_model(config.model, 4, 28)
    steps = train.Steps(config, parallel.make_mesh(), model)
    images, labels = data_lib.load_split(
        synthetic_root / "synthetic3d.npz", "synthetic3d", 28, "train"
    )
    batches = list(data_lib.train_batches(images, labels, 16, 0, 1))[:2]
    rng = jax.random.key(1)

    def fresh():  # the train step donates its state
        return train.create_train_state(config, model, jax.random.key(0), 10)

    state, losses = train.train_epoch(steps, fresh(), iter(batches), rng)
    by_hand = fresh()
    for batch, loss in zip(batches, losses, strict=True):
        by_hand, expected = steps.train(by_hand, steps.put_batch(batch), rng)
        assert isinstance(loss, float) and loss == float(expected)
    assert len(losses) == 2 and int(state.step) == 2
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(by_hand.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
