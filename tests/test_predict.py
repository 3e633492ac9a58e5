"""Predict, explain and plot on a tiny trained run; the TensorBoard event files it wrote."""

import csv
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from configs import synthetic
from lmttm_jax import cli, explain, figures, inference, predict, pretrained
from lmttm_jax import config as config_lib
from lmttm_jax.data import load_split, prepare_volume, write_synthetic
from tests.tiny import tiny_config as shared_tiny_config

REPO = Path(__file__).resolve().parents[1]
LABELS = ("rod-depth", "rod-height", "rod-width", "shell")


def tiny_config(root: Path, variant: str = ""):
    return shared_tiny_config(root, variant, epochs=1, eval_batch_size=16)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny LMTTM trained one epoch on 64 synthetic volumes (about 30 s)."""
    root = tmp_path_factory.mktemp("data")
    write_synthetic(
        root / "synthetic3d.npz", seed=0, size=28, n_samples={"train": 64, "val": 16, "test": 16}
    )
    workdir = tmp_path_factory.mktemp("run")
    cli.train_command(config_lib.validate_config(tiny_config(root)), str(workdir))
    return workdir


@pytest.fixture(scope="module")
def test_images(run) -> np.ndarray:
    root = Path(json.loads((run / "config.json").read_text())["data"]["root"])
    return load_split(root / "synthetic3d.npz", "synthetic3d", 28, "test")[0]


@pytest.fixture(scope="module")
def restored(run) -> inference.Restored:
    return inference.restore(run)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def main_py(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """`python main.py ARGS` in a subprocess that is killed at the timeout."""
    with subprocess.Popen(
        [sys.executable, "main.py", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def evaluation_probs(run: Path) -> np.ndarray:
    """The test-split probabilities the training run wrote (`index,p_0..p_C-1` rows)."""
    (path,) = run.glob("synthetic3d_test_*.csv")
    return np.loadtxt(path, delimiter=",")[:, 1:]


# ----------------------------------------------------------------------------- volumes


def test_prepare_volume_follows_training_preprocessing():
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 256, (28, 28, 28), dtype=np.uint8)
    got = prepare_volume(volume[None, ..., None], 28)
    np.testing.assert_array_equal(got, volume.astype(np.float32) / 255)  # as in training
    floats = volume.astype(np.float64) * 3.0 - 100.0
    scaled = prepare_volume(floats, 28)
    assert scaled.min() == 0.0 and scaled.max() == pytest.approx(1.0)
    assert prepare_volume(np.ones((5, 6, 7), np.int16), 28).shape == (28, 28, 28)
    assert not prepare_volume(np.full((4, 4, 4), 9.0), 28).any()  # constant -> 0
    small = prepare_volume(volume[::2, ::2, ::2], 28)
    assert small.shape == (28, 28, 28) and 0.0 <= small.min() <= small.max() <= 1.0
    resampled = prepare_volume(np.repeat(volume, 2, axis=0), 28)  # 56 x 28 x 28
    np.testing.assert_allclose(resampled, volume / 255.0, atol=1e-6)


@pytest.mark.parametrize(
    "array,problem",
    [
        (np.zeros((28, 28)), "expected a 3D volume"),
        (np.zeros((2, 28, 28, 28)), "expected a 3D volume"),
        (np.zeros((0, 28, 28)), "empty array"),
        (np.where(np.eye(3)[None] > 0, np.nan, np.ones((3, 3, 3))), "NaN or infinite"),
        (np.array(["a", "b"]), "not a volume"),
    ],
)
def test_prepare_volume_names_the_problem(array, problem):
    with pytest.raises(predict.VolumeError, match=problem) as err:
        prepare_volume(array, 28, "scan_7.npy")
    assert "scan_7.npy" in str(err.value)


# ----------------------------------------------------------------------------- predict


@pytest.mark.slow
def test_predict_npy_and_nifti_match_evaluation(run, restored, test_images, tmp_path):
    import nibabel

    files = []
    for i in range(3):
        files.append(tmp_path / f"vol{i}.npy")
        np.save(files[-1], test_images[i])
    files.append(tmp_path / "vol3.nii.gz")
    nibabel.save(nibabel.Nifti1Image(test_images[3], np.eye(4)), files[-1])
    files.append(tmp_path / "vol4.nii")
    nibabel.save(nibabel.Nifti1Image(test_images[4][None], np.eye(4)), files[-1])
    rows = predict.predict_files(restored, files)
    expected = evaluation_probs(run)[:5]
    for row, probs in zip(rows, expected, strict=True):
        assert row["error"] is None
        np.testing.assert_allclose([row[n] for n in LABELS], probs, rtol=1e-4, atol=1e-6)
        assert row["prediction"] == LABELS[int(np.argmax(probs))]
    assert [row["file"] for row in rows] == [str(f) for f in files]


def write_folder(folder: Path, images: np.ndarray) -> dict[str, str]:
    """Two good volumes and bad files; returns {bad file name: expected problem}."""
    import nibabel

    folder.mkdir()
    np.save(folder / "good_a.npy", images[0])
    volume = images[1].astype(np.float32) * 0.5 + 3.0
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), folder / "good_b.nii.gz")
    np.save(folder / "flat.npy", images[0, 0])
    nan = images[1].astype(np.float32)
    nan[3, 4, 5] = np.inf
    np.save(folder / "inf.npy", nan)
    np.save(folder / "empty.npy", np.zeros((0, 3, 3)))
    (folder / "broken.nii.gz").write_bytes(b"not a nifti file")
    (folder / "cut.npy").write_bytes((folder / "good_a.npy").read_bytes()[:500])
    (folder / "notes.txt").write_text("ignored: not a volume suffix")
    return {
        "flat.npy": "expected a 3D volume",
        "inf.npy": "NaN or infinite",
        "empty.npy": "empty array",
        "broken.nii.gz": "cannot read the file",
        "cut.npy": "cannot read the file",
    }


def test_predict_cli_folder_with_bad_files(run, test_images, tmp_path):
    bad = write_folder(tmp_path / "in", test_images)
    out = tmp_path / "pred.csv"
    result = main_py(
        "--mode=predict", f"--workdir={run}", f"--input={tmp_path / 'in'}", f"--output={out}"
    )
    assert result.returncode == 0, result.stderr
    rows = {Path(r["file"]).name: r for r in csv.DictReader(out.open())}
    assert set(rows) == set(bad) | {"good_a.npy", "good_b.nii.gz"}
    for name, problem in bad.items():
        assert name in rows[name]["error"] and problem in rows[name]["error"], rows[name]
        assert rows[name]["prediction"] == "" and name in result.stderr
    for name in ("good_a.npy", "good_b.nii.gz"):
        assert rows[name]["error"] == "" and rows[name]["prediction"] in LABELS
        assert sum(float(rows[name][n]) for n in LABELS) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(
        [float(rows["good_a.npy"][n]) for n in LABELS], evaluation_probs(run)[0], rtol=1e-4
    )


def test_predict_cli_json_and_all_failed_exit_code(run, tmp_path):
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "flat.npy", np.zeros((28, 28)))
    out = tmp_path / "pred.json"
    result = main_py(
        "--mode=predict", f"--workdir={run}", f"--input={tmp_path / 'in'}", f"--output={out}"
    )
    assert result.returncode == 1
    (row,) = json.loads(out.read_text())
    assert row["prediction"] is None and "flat.npy" in row["error"]
    assert set(row) == {"file", "prediction", *LABELS, "error"}


def test_predict_without_run_names_the_missing_file(tmp_path):
    result = main_py("--mode=predict", f"--workdir={tmp_path}", "--input=x.npy", timeout=120)
    assert result.returncode == 1 and "config.json" in result.stderr
    result = main_py("--mode=train", f"--workdir={tmp_path}", timeout=120)
    assert result.returncode != 0 and "--config is required for --mode=train" in result.stderr


# ----------------------------------------------------------------------------- explain


def check_explanation(ex: explain.Explanation, steps: int, units: int) -> None:
    assert ex.step_logits.shape == (steps, 4) and ex.memory_change.shape == (steps, units)
    np.testing.assert_allclose(ex.probs.sum(), 1.0, rtol=1e-5)
    # Only the written unit (t+1) mod K changes at step t.
    assert np.array_equal(np.argmax(ex.memory_change, axis=1), ex.writes)
    others = ex.memory_change.copy()
    others[np.arange(steps), ex.writes] = 0.0
    assert np.all(others < 1e-5)


def test_explain_cli_writes_both_figures(run, test_images, tmp_path):
    np.save(tmp_path / "vol.npy", test_images[0])
    out = tmp_path / "figs" / "explain.png"
    result = main_py(
        "--mode=explain", f"--workdir={run}", f"--input={tmp_path / 'vol.npy'}", f"--output={out}"
    )
    assert result.returncode == 0, result.stderr
    assert png_size(out) == figures.EXPLAIN_SIZE
    assert png_size(tmp_path / "figs" / "explain_memory.png") == figures.MEMORY_SIZE
    images = {v.tag: v.image for e in events_in(run) for v in e.summary.value if v.image.width}
    assert (images["explain/vol.npy"].width, images["explain/vol.npy"].height) == (
        figures.EXPLAIN_SIZE
    )
    assert images["explain_memory/vol.npy"].encoded_image_string[:4] == b"\x89PNG"


def test_explain_lmttm_reads_and_writes(restored, test_images, tmp_path):
    volume = prepare_volume(test_images[0], 28)
    ex = explain.explain_volume(restored, volume, "vol0")
    check_explanation(ex, steps=9, units=4)
    assert ex.attention.shape == (9, 9, 9) and ex.attention_maps().shape == (9, 28, 28)
    assert np.all(ex.attention >= 0) and np.all(ex.attention.sum(axis=(1, 2)) <= 3 * 4 + 1e-4)
    assert ex.reads[5].tolist() == [1, 0, 2] and ex.writes.tolist()[:5] == [1, 2, 3, 0, 1]
    assert ex.label_names[ex.predicted] == LABELS[int(np.argmax(ex.probs))]
    assert png_size(figures.save(figures.explanation_figure(ex), tmp_path / "e.png")) == (
        figures.EXPLAIN_SIZE
    )


def untrained_run(config) -> inference.Restored:
    import jax
    import jax.numpy as jnp

    from lmttm_jax.data import get_info
    from lmttm_jax.models import build_model

    model = build_model(config.model, 4, 28)
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 28, 28, 28, 1)))["params"]
    return inference.Restored(config, get_info("synthetic3d"), model, (params,), 0)


@pytest.mark.parametrize("variant,read", [("model=ttm", "tl"), ("", "tl_mha")])
def test_explain_ttm_and_mha_reads(variant, read, tmp_path):
    config = tiny_config(tmp_path, variant)
    config.model.read = read
    run = untrained_run(config)
    volume = np.random.default_rng(1).random((28, 28, 28), dtype=np.float32)
    ex = explain.explain_volume(run, volume, "random")
    units = 1 if variant == "model=ttm" else 4
    check_explanation(ex, steps=9, units=units)
    assert (ex.attention is None) == (read == "tl_mha")
    assert png_size(figures.save(figures.explanation_figure(ex), tmp_path / "e.png")) == (
        figures.EXPLAIN_SIZE
    )
    assert png_size(figures.save(figures.memory_figure(ex), tmp_path / "m.png")) == (
        figures.MEMORY_SIZE
    )


# ----------------------------------------------------------------------------- pretrained


def test_pretrained_export_predicts_as_the_run(run, restored, test_images, tmp_path):
    provenance = {"command": "python main.py --config=x", "machine": "here", "wall_time": "1 s"}
    out = pretrained.export(run, tmp_path / "tiny", provenance)
    names = {p.name for p in out.iterdir()}
    assert names == {"config.json", "card.json", "README.md", "member_0.msgpack"}
    config = json.loads((out / "config.json").read_text())  # no path of this machine
    assert "root" not in config["data"] and "compile_cache" not in config["train"]
    card = json.loads((out / "card.json").read_text())
    results = json.loads((run / "results.json").read_text())
    assert card["val"] == {k: results["val"][k] for k in ("auc", "acc")}
    assert card["members"][0]["best_epoch"] == results["best_epoch"]
    assert "python main.py --config=x" in (out / "README.md").read_text()
    model = inference.restore(out)
    assert len(model.params) == 1 and model.info.label_names == LABELS
    x = test_images[:4].astype(np.float32) / 255
    np.testing.assert_allclose(
        inference.predict_fn(model)(x), inference.predict_fn(restored)(x), atol=1e-7
    )


# ----------------------------------------------------------------------------- plot


def test_plot_cli_writes_curves(run):
    result = main_py("--mode=plot", f"--workdir={run}", timeout=120)
    assert result.returncode == 0, result.stderr
    assert png_size(run / "curves.png") == figures.CURVES_SIZE


def test_one_epoch_curves_tick_whole_epochs():
    row = dict(epoch=1, train_loss=1.0, val_loss=1.1, val_acc=0.5, val_auc=0.6, learning_rate=1e-3)
    for ax in figures.curves_figure([row]).axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks == [1.0], ticks


def test_plot_curves_of_several_epochs(tmp_path):
    rows = [
        dict(
            epoch=e,
            train_loss=1 / e,
            val_loss=1.2 / e,
            val_acc=0.3 * e,
            val_auc=0.2 * e,
            learning_rate=1e-3 / e,
            skipped_steps=e % 2,
        )
        for e in (1, 2, 3)
    ]
    fig = figures.curves_figure(rows)
    assert png_size(figures.save(fig, tmp_path / "c.png")) == figures.CURVES_SIZE
    assert figures.pixels(fig).shape == figures.CURVES_SIZE[::-1] + (3,)


# ----------------------------------------------------------------------------- tensorboard


def events_in(logdir: Path) -> list:
    """Every Event of the event files in `logdir`: TFRecords of (length, masked CRC32C of
    the length, serialized Event, masked CRC32C of it), little-endian."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    events = []
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            header, (crc,) = data[pos : pos + 8], struct.unpack("<I", data[pos + 8 : pos + 12])
            assert crc == masked_crc32c(header)
            (length,) = struct.unpack("<Q", header)
            payload = data[pos + 12 : pos + 12 + length]
            assert struct.unpack("<I", data[pos + 12 + length : pos + 16 + length]) == (
                masked_crc32c(payload),
            )
            events.append(Event.FromString(payload))
            pos += 16 + length
    return events


def test_training_wrote_tensorboard_scalars_and_curves(run):
    scalars, images = {}, {}
    for event in events_in(run):
        for value in event.summary.value:
            if value.image.width:
                images[value.tag] = (event.step, value.image)
            else:
                scalars[(event.step, value.tag)] = value.simple_value
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    expected = {(r["epoch"], tag): v for r in rows for tag, v in r.items() if tag != "epoch"}
    assert scalars == pytest.approx(expected, rel=1e-6)
    step, image = images["curves"]
    assert step == rows[-1]["epoch"] and (image.width, image.height) == figures.CURVES_SIZE
    assert image.encoded_image_string[:4] == b"\x89PNG"
    assert (images["roc"][1].width, images["roc"][1].height) == figures.ROC_SIZE
    assert png_size(run / "curves.png") == figures.CURVES_SIZE
    assert png_size(run / "roc.png") == figures.ROC_SIZE


def test_tensorboard_package_reads_the_run(run):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    acc = event_accumulator.EventAccumulator(str(run))
    acc.Reload()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    got = [(e.step, e.value) for e in acc.Scalars("val_auc")]
    assert got == pytest.approx([(r["epoch"], r["val_auc"]) for r in rows], rel=1e-6)


def test_base_config_has_the_skip_switch():
    assert synthetic.get_config().train.skip_nonfinite is False
