"""Faults: SIGKILL during training and during a checkpoint save, bad configs, bad dataset
files, non-finite losses. Subprocesses have timeouts and are always killed."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import synthetic
from lmttm_jax import config as config_lib
from lmttm_jax import train
from lmttm_jax.data import DatasetFileError, load_split, write_synthetic
from lmttm_jax.workdir import Workdir

REPO = Path(__file__).resolve().parents[1]
TMP_MARK = ".orbax-checkpoint-tmp"
TINY = {
    "model.dim": 32,
    "model.memory_tokens": 8,
    "model.tl_hidden_dim": 32,
    "model.mlp_dim": 64,
    "model.depth": 1,
    "model.num_heads": 4,
    "model.read_tokens": 4,
    "model.dropout": 0.0,
    "train.epochs": 3,
    "train.batch_size": 16,
    "train.eval_batch_size": 16,
    "train.learning_rate": 3e-3,
    "train.warmup_epochs": 0,
}
RUN_TIMEOUT = 420  # seconds for one training subprocess (compiles included)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_synthetic(
        root / "synthetic3d.npz", seed=0, size=28, n_samples={"train": 96, "val": 32, "test": 32}
    )
    return root


def train_args(root: Path, workdir: Path, **overrides) -> list[str]:
    fields = {**TINY, "data.root": str(root), **overrides}
    return [
        sys.executable,
        "main.py",
        "--config=configs/synthetic.py",
        f"--workdir={workdir}",
        *(f"--config.{k}={v}" for k, v in fields.items()),
    ]


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(proc: subprocess.Popen, timeout: float = RUN_TIMEOUT) -> str:
    """Waits for `proc` (killed at the timeout, and always reaped); returns its output."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
        proc.wait()
    return out


def run_to_end(args: list[str], timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    proc = start(args)
    out = finish(proc, timeout)
    return subprocess.CompletedProcess(args, proc.returncode, out)


def kill_when(proc: subprocess.Popen, condition, timeout: float = RUN_TIMEOUT) -> bool:
    """SIGKILLs `proc` as soon as `condition()` holds (polled every ms); False if the
    process ended first."""
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if condition():
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.001)
        return False
    finally:
        finish(proc, 10)


def temp_dirs(workdir: Path) -> list[Path]:
    """Orbax's not-yet-renamed checkpoint directories."""
    found = []
    for kind in ("latest", "best"):
        try:
            found += [e for e in os.scandir(workdir / "checkpoints" / kind) if TMP_MARK in e.name]
        except FileNotFoundError:
            pass
    return [Path(e.path) for e in found]


def comparable(workdir: Path) -> tuple[dict, list[dict]]:
    """results.json and metrics.jsonl without the timings."""
    results = json.loads((workdir / "results.json").read_text())
    timing = ("seconds", "samples_per_second")
    rows = [
        {k: v for k, v in json.loads(line).items() if not k.endswith(timing)}
        for line in (workdir / "metrics.jsonl").read_text().splitlines()
    ]
    for split in ("val", "test"):
        results[split].pop("samples_per_second")
    results.pop("train_samples_per_second")
    return results, rows


@pytest.mark.slow
def test_sigkill_in_a_step_and_in_a_save_then_resume_matches(root, tmp_path):
    reference = start(train_args(root, tmp_path / "reference"))  # runs alongside
    workdir = tmp_path / "killed"
    args = train_args(root, workdir)
    try:
        # 1. Killed during epoch 2's training steps (the epoch 1 checkpoint exists).
        latest_1 = workdir / "checkpoints" / "latest" / "1"
        first_seen = []

        def in_epoch_2() -> bool:
            if latest_1.is_dir() and not first_seen:
                first_seen.append(time.monotonic())
            return bool(first_seen) and time.monotonic() - first_seen[0] > 0.3

        assert kill_when(start(args), in_epoch_2), "run ended before it could be killed"
        assert not (workdir / "results.json").exists()
        # 2. Resumed, then killed while orbax writes a checkpoint (a temp directory).
        second = start(args)
        assert kill_when(second, lambda: bool(temp_dirs(workdir))), "no save was caught"
        assert not (workdir / "results.json").exists()
        print("left by the kill during a save:", temp_dirs(workdir))
        # 3. Resumed to the end: leftovers removed, same numbers as uninterrupted.
        final = run_to_end(args)
        assert final.returncode == 0, final.stdout
        assert "resuming from" in final.stdout
        finish(reference)
        assert reference.returncode == 0
    finally:
        finish(reference, 1)
    assert temp_dirs(workdir) == []
    assert comparable(workdir) == comparable(tmp_path / "reference")


def test_leftover_temp_dir_is_never_picked(tmp_path):
    state = {"w": jnp.arange(6.0), "step": jnp.int32(1)}
    run = Workdir(tmp_path)
    run.checkpoints().save("latest", 1, state, {"epoch": 1})
    latest = tmp_path / "checkpoints" / "latest"
    fake = latest / f"2{TMP_MARK}"  # a save of step 2 cut by a kill (orbax's naming)
    shutil.copytree(latest / "1", fake)
    shutil.rmtree(next(p for p in fake.iterdir() if p.is_dir()))
    reader = run.checkpoints(read_only=True)  # e.g. predict beside training
    assert reader.steps("latest") == [1] and fake.is_dir()
    restored, meta = reader.restore("latest", state)
    assert meta == {"epoch": 1} and np.array_equal(restored["w"], np.arange(6.0))
    writer = run.checkpoints()  # a resumed training run cleans up
    writer.save("latest", 2, state, {"epoch": 2})
    assert not fake.exists() and writer.steps("latest") == [1, 2]


# ----------------------------------------------------------------------------- configs


def config_for(root: Path, epochs: int = 2) -> ml_collections.ConfigDict:
    config = synthetic.get_config()
    config.data.root = str(root)
    for key, value in TINY.items():
        section, name = key.split(".")
        config[section][name] = value
    config.train.epochs = epochs
    return config


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("train.learning_rate", -1.0, "config.train.learning_rate=-1.0 is invalid"),
        ("train.learning_rate", math.inf, "config.train.learning_rate=inf is invalid"),
        ("train.epochs", 0, "config.train.epochs=0 is invalid"),
        ("train.optimizer", "sgd", "config.train.optimizer='sgd' is invalid"),
        ("train.compute_dtype", "float8", "config.train.compute_dtype='float8'"),
        ("train.label_smoothing", 1.0, "config.train.label_smoothing=1.0 is invalid"),
        ("train.skip_nonfinite", 1, "config.train.skip_nonfinite=1 is invalid"),
        ("data.size", 32, "config.data.size=32 is invalid"),
        ("data.name", "mnist3d", "config.data.name='mnist3d' is invalid"),
        ("data.flip", "yes", "config.data.flip='yes' is invalid"),
        ("model.dim", 30, "config.model.num_heads=4 is invalid"),
        ("model.dropout", 1.5, "config.model.dropout=1.5 is invalid"),
        ("model.pos_embed", "no", "config.model.pos_embed='no' is invalid"),
        ("model.patch_size", 29, "config.model.patch_size=29 is invalid"),
        ("seed", -1, "config.seed=-1 is invalid"),
    ],
)
def test_bad_config_values_name_the_field(root, field, value, message):
    raw = config_for(root).to_dict()
    *sections, name = field.split(".")
    (raw[sections[0]] if sections else raw)[name] = value
    with pytest.raises(config_lib.ConfigError, match=message.replace("(", r"\(")):
        config_lib.validate_config(ml_collections.ConfigDict(raw))


@pytest.mark.parametrize(
    "model,message",
    [
        (dict(name="rnn"), "config.model.name='rnn'"),
        (dict(num_heads=5), "config.model.num_heads=5"),
        (dict(patch_size=30), "config.model.patch_size=30"),
        (dict(processing="lstm"), "config.model.processing='lstm'"),
        (dict(write="add_erase"), "config.model.write='add_erase'"),
        (dict(num_units=0), "config.model.num_units=0"),
        (dict(tl_mha_heads=5, read="tl_mha"), "config.model.tl_mha_heads=5"),
        (dict(dim=True), "config.model.dim=True is invalid: expected an integer"),
        (dict(head=None), "config.model.head=None is invalid: expected a string"),
        (dict(units=3), "unknown field config.model.units"),
    ],
)
def test_bad_model_fields_name_the_field(root, model, message):
    raw = config_for(root).to_dict()
    raw["model"].update(model)
    with pytest.raises(config_lib.ConfigError, match=message.replace("(", r"\(")):
        config_lib.validate_config(raw)


def test_checked_config_is_locked_and_typed(root):
    config = config_lib.validate_config(config_for(root))
    with pytest.raises(AttributeError):
        config.train.learning_rat = 1e-3
    with pytest.raises(TypeError):
        config.train.epochs = "3"
    ttm = config_for(root)
    ttm.model.update(name="ttm", write="add_erase")
    assert config_lib.validate_config(ttm).model.write == "add_erase"
    with pytest.raises(
        config_lib.ConfigError, match="batch_size=16 exceeds the 15 training samples"
    ):
        config_lib.check_batch_sizes(config, 1, train_samples=15)
    config_lib.check_batch_sizes(config, 4, train_samples=16)


def test_unknown_and_missing_fields_in_config_json(root, tmp_path):
    raw = config_for(root).to_dict()
    raw["train"]["learning_rat"] = 1e-3
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(config_lib.ConfigError, match="unknown field config.train.learning_rat"):
        config_lib.load_run_config(tmp_path)
    raw = config_for(root).to_dict()
    raw["model"]["widht"] = 3
    with pytest.raises(config_lib.ConfigError, match="config.model.widht"):
        config_lib.validate_config(ml_collections.ConfigDict(raw))
    raw = config_for(root).to_dict()
    raw["extra"] = 1
    with pytest.raises(config_lib.ConfigError, match="unknown field config.extra"):
        config_lib.validate_config(ml_collections.ConfigDict(raw))
    raw = config_for(root).to_dict()
    del raw["train"]["epochs"], raw["train"]["skip_nonfinite"]
    with pytest.raises(config_lib.ConfigError, match="config.train.epochs is missing"):
        config_lib.validate_config(ml_collections.ConfigDict(raw))
    raw["train"]["epochs"] = "3"  # wrong type
    with pytest.raises(config_lib.ConfigError, match="config.train.epochs='3' is invalid"):
        config_lib.validate_config(ml_collections.ConfigDict(raw))
    raw["train"]["epochs"] = 3  # an old config.json without newer fields still loads
    del raw["data"]["folds"], raw["data"]["fold"], raw["model"]["kernels"], raw["model"]["remat"]
    (tmp_path / "config.json").write_text(json.dumps(raw))
    loaded = config_lib.load_run_config(tmp_path)
    assert loaded.train.skip_nonfinite is False and loaded.data.folds == 0
    assert loaded.model.kernels == "auto" and loaded.model.remat is False
    del raw["model"]["form"]  # fields renamed since: the old names load
    raw["model"].update(cached=False, variant="seed")
    (tmp_path / "config.json").write_text(json.dumps(raw))
    loaded = config_lib.load_run_config(tmp_path)
    assert loaded.model.form == "pytorch" and "cached" not in loaded.model


def truncated_copy(root: Path, tmp_path: Path) -> Path:
    """A copy of a real-format dataset file cut to half its length."""
    data = (root / "synthetic3d.npz").read_bytes()
    (tmp_path / "synthetic3d.npz").write_bytes(data[: len(data) // 2])
    return tmp_path / "synthetic3d.npz"


def test_truncated_dataset_file_is_detected(root, tmp_path):
    path = truncated_copy(root, tmp_path)
    with pytest.raises(DatasetFileError, match="delete it to download") as err:
        load_split(path, "synthetic3d", 28, "train")
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "override,message",
    [
        ("--config.train.learning_rate=-0.5", "config.train.learning_rate=-0.5 is invalid"),
        ("--config.data.size=32", "config.data.size=32 is invalid"),
        ("--config.model.head=max", "config.model.head='max' is invalid"),
        ("--config.train.epoch=3", "a --config override names no field of the config: 'epoch'"),
        ("--config.train.epochs=two", "flag --config.train.epochs=two: invalid literal"),
        ("", "cannot read dataset file"),  # the truncated dataset file
    ],
)
def test_cli_stops_at_start_with_the_named_error(root, tmp_path, override, message):
    data = tmp_path / "data"
    data.mkdir()
    truncated_copy(root, data)
    before = sorted(data.iterdir())
    args = train_args(data, tmp_path / "run") + ([override] if override else [])
    result = run_to_end(args, timeout=120)
    assert result.returncode != 0 and message in result.stdout, result.stdout
    assert "Traceback" not in result.stdout
    assert sorted(data.iterdir()) == before  # nothing downloaded or generated
    assert not (tmp_path / "run" / "checkpoints").exists()


# ----------------------------------------------------------------------------- non-finite


@pytest.mark.slow
def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(root, tmp_path, monkeypatch):
    original = train.train_step
    steps_per_epoch = 96 // 16

    def nan_from_epoch_2(state, batch, rng, **kwargs):
        new_state, loss = original(state, batch, rng, **kwargs)
        return new_state, jnp.where(state.step >= steps_per_epoch, jnp.nan, loss)

    monkeypatch.setattr(train, "train_step", nan_from_epoch_2)
    with pytest.raises(FloatingPointError, match="training loss is nan at epoch 2") as err:
        train.train_and_evaluate(config_for(root, epochs=3), tmp_path)
    assert str(tmp_path / "checkpoints" / "latest") in str(err.value)
    assert "skip_nonfinite" in str(err.value)
    rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1]
    assert str(tmp_path / "checkpoints" / "latest" / "1") in str(err.value)
    ckpt = Workdir(tmp_path).checkpoints(read_only=True)
    assert ckpt.steps("latest") == [1] and ckpt.steps("best") == [1]
    assert not (tmp_path / "results.json").exists()


@pytest.mark.slow
def test_skip_nonfinite_skips_bad_steps_and_goes_on(root, tmp_path, monkeypatch):
    original = train.soft_targets

    def nan_when_first_label_is_0(labels, num_classes, smoothing=0.0):
        poison = jnp.where(labels[0] == 0, jnp.nan, 1.0)  # NaN loss and NaN gradients
        return original(labels, num_classes, smoothing) * poison

    def clean_cross_entropy(logits, labels, smoothing=0.0):  # evaluation stays finite
        return optax.softmax_cross_entropy(logits, original(labels, logits.shape[-1], smoothing))

    monkeypatch.setattr(train, "soft_targets", nan_when_first_label_is_0)
    monkeypatch.setattr(train, "cross_entropy", clean_cross_entropy)
    config = config_for(root, epochs=2)
    config.train.skip_nonfinite = True
    results = train.train_and_evaluate(config, tmp_path)
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    skipped = [r["skipped_steps"] for r in rows]
    assert all(0 < s < 96 // 16 for s in skipped), skipped
    assert all(np.isfinite(r["train_loss"]) for r in rows)
    assert np.isfinite(results["val"]["auc"]) and np.isfinite(results["test"]["auc"])


@pytest.mark.slow
def test_skip_nonfinite_step_keeps_the_old_state(root):
    config = config_for(root)
    config.train.skip_nonfinite = True
    config.train.learning_rate = 1e30
    from lmttm_jax import parallel
    from lmttm_jax.models import build_model

    model = build_model(config.model, 4, 28)
    steps = train.Steps(config, parallel.make_mesh(), model)
    state = train.create_train_state(config, model, jax.random.key(0), 10)
    images, labels = load_split(root / "synthetic3d.npz", "synthetic3d", 28, "train")
    batches = train.data_lib.train_batches(images, labels, 16, 0, 1)
    state, loss = steps.train(state, steps.put_batch(next(batches)), jax.random.key(1))
    assert np.isfinite(float(loss))  # the first step is fine and blows the weights up
    before = [np.asarray(p) for p in jax.tree.leaves(state)]
    state, loss = steps.train(state, steps.put_batch(next(batches)), jax.random.key(1))
    assert np.isnan(float(loss))  # skipped
    after = [np.asarray(p) for p in jax.tree.leaves(state)]
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(after, before, strict=True))
