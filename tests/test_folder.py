"""Training on a folder of the user's volumes (`configs/folder.py`): generated folders
with and without a split column, the bad-row report, the conversion cache; predict and
explain on the trained run, also for a volume whose range overflows float arithmetic."""

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import jax
import nibabel
import numpy as np
import pytest

from configs import folder as folder_config
from lmttm_jax import evaluate, explain, inference, predict, train
from lmttm_jax.data import folder, volumes
from lmttm_jax.data.medmnist3d import load_split
from tests.tiny import TINY_MODEL

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("cyst", "normal", "tumour")  # sorted: class indices 0, 1, 2


def write_volume(path: Path, rng: np.random.Generator, cls: int) -> None:
    """A small volume of class `cls` (a bright slab along axis `cls`) in the file's format;
    shapes and dtypes vary so that every volume is resampled and scaled."""
    shape = (9 + cls, 11, 7, 1)  # a trailing length-1 axis, dropped on reading
    volume = rng.normal(0.0, 0.2, shape)
    volume[(slice(None),) * cls + (slice(2, 5),)] += 3.0
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".npy"):
        np.save(path, volume.astype(np.float32))
    elif path.name.endswith(".npz"):
        np.savez(path, scan=(volume * 100).astype(np.int16))
    else:
        nibabel.save(nibabel.Nifti1Image(volume.astype(np.float32), np.eye(4)), path)


def make_folder(root: Path, rows: list[tuple[str, str, str | None]], seed: int = 0) -> Path:
    """Writes each row's volume and `labels.csv` (a split column if any row has one)."""
    rng = np.random.default_rng(seed)
    for file, label, _ in rows:
        if label in CLASSES:
            write_volume(root / file, rng, CLASSES.index(label))
    with_split = any(split is not None for _, _, split in rows)
    lines = ["file,label,split" if with_split else "file,label"]
    lines += [",".join([f, lab, s or ""] if with_split else [f, lab]) for f, lab, s in rows]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


SUFFIX = (".npy", ".npz", ".nii.gz")


def split_rows(counts: dict[str, int]) -> list[tuple[str, str, str]]:
    """`counts[split]` volumes per class and split, in mixed formats and subfolders."""
    rows = []
    for split, n in counts.items():
        for label in CLASSES:
            for i in range(n):
                rows.append((f"{label}/{split}{i}{SUFFIX[i % 3]}", label, split))
    return rows


def tiny_folder_config(root: Path, **train_fields):
    config = folder_config.get_config("scale=tiny")
    config.data.root = str(root)
    config.model.update(TINY_MODEL)
    config.train.update(
        dict(epochs=1, batch_size=8, eval_batch_size=16, warmup_epochs=0) | train_fields
    )
    return config


@pytest.fixture(scope="module")
def split_run(tmp_path_factory) -> tuple[Path, Path]:
    """Three classes, the CSV's split: 5/2/3 per class; one epoch (about 30 s)."""
    root = make_folder(
        tmp_path_factory.mktemp("scans"), split_rows({"train": 5, "val": 2, "test": 3})
    )
    workdir = tmp_path_factory.mktemp("run")
    train.train_and_evaluate(tiny_folder_config(root), workdir)
    return root, workdir


@pytest.mark.slow
def test_split_column_trains_evaluates_and_predicts(split_run):
    root, workdir = split_run
    info = folder.folder_info(root)
    assert (info.task, info.label_names) == ("multi-class", CLASSES)
    assert info.n_samples == {"train": 15, "val": 6, "test": 9}
    results = json.loads((workdir / "results.json").read_text())
    assert (results["dataset"], results["best_epoch"]) == ("folder", 1)
    assert np.asarray(results["confusion_matrix"]).shape == (3, 3)
    assert np.asarray(results["confusion_matrix"]).sum() == 9  # every test volume, once
    (csv_path,) = workdir.glob("folder_test_*@lmttm-seed0.csv")
    probs = np.loadtxt(csv_path, delimiter=",")[:, 1:]
    assert probs.shape == (9, 3) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    # The evaluator-format rows follow the split file's order, which names the files.
    split_file = root / folder.CACHE_DIR / "folder_28_csv.npz"
    images, labels = load_split(split_file, "folder", 28, "test")
    metrics = evaluate.medmnist_metrics(labels, probs, "multi-class")
    assert metrics["acc"] == pytest.approx(results["test"]["acc"])
    with np.load(split_file) as npz:
        files = list(npz["test_files"])
    assert [f.split("/")[0] for f in files] == [CLASSES[c] for c in labels]
    # Training volumes were converted exactly as predict converts a file (then uint8).
    for image, file in zip(images, files, strict=True):
        expected = volumes.to_uint8(predict.load_volume(root / file, 28))
        np.testing.assert_array_equal(image, expected)
    # Predict names the CSV's classes.
    rows = predict.predict_files(inference.restore(workdir), [root / files[0]])
    assert list(rows[0]) == ["file", "prediction", *CLASSES, "error"]
    assert rows[0]["prediction"] in CLASSES and rows[0]["error"] is None


def test_overflowing_range_is_scaled_and_predicted(split_run, tmp_path):
    """A finite volume whose range overflows float arithmetic gets finite probabilities
    from predict and explain (no NaN with an empty error cell)."""
    _, workdir = split_run
    volume = np.zeros((8, 9, 10))
    volume[:4] = -1.7e308
    volume[4:] = 1.7e308
    volume[0, 0, 0] = 0.0
    scaled = volumes.scale_intensities(volume)
    assert np.isfinite(scaled).all()
    assert (scaled.min(), scaled.max(), scaled[0, 0, 0]) == (0.0, 1.0, pytest.approx(0.5))
    path = tmp_path / "huge.npy"
    np.save(path, volume)
    run = inference.restore(workdir)
    (row,) = predict.predict_files(run, [path])
    assert row["error"] is None
    assert all(np.isfinite(row[name]) for name in CLASSES) and row["prediction"] in CLASSES
    ex = explain.explain_volume(run, predict.load_volume(path, run.size))
    assert np.isfinite(ex.probs).all()


def test_without_split_column_binary_stratified_split(tmp_path):
    rows = [(f"s{i}.npy", CLASSES[i % 2], None) for i in range(40)]  # 20 cyst, 20 normal
    root = make_folder(tmp_path / "scans", rows)
    info = folder.folder_info(root)
    assert (info.task, info.label_names) == ("binary-class", CLASSES[:2])
    assert info.n_samples == {"train": 28, "val": 4, "test": 8}  # 70/10/20 of each class
    splits = {}
    for seed in (0, 1):
        path = folder.ensure_folder_dataset(root, 28, seed)
        assert path.name == f"folder_28_seed{seed}.npz"
        with np.load(path) as npz:
            splits[seed] = {s: sorted(npz[f"{s}_files"]) for s in ("train", "val", "test")}
            assert np.bincount(npz["val_labels"][:, 0]).tolist() == [2, 2]  # stratified
    assert splits[0] != splits[1]  # the split is drawn with the seed ...
    assert {len(v) for v in splits[0].values()} == {28, 4, 8}  # ... the sizes are not
    assert sorted(sum(splits[0].values(), [])) == sorted(r[0] for r in rows)
    workdir = tmp_path / "run"
    config = tiny_folder_config(root)
    config.seed = 1
    results = train.train_and_evaluate(config, workdir)
    assert results["test"] is not None and np.asarray(results["confusion_matrix"]).sum() == 8
    assert len(list(workdir.glob("folder_test_*@lmttm-seed1.csv"))) == 1


def test_bad_rows_are_reported_together_before_training(tmp_path):
    rows = split_rows({"train": 1, "val": 1})
    root = make_folder(tmp_path / "scans", rows)
    np.save(root / "flat.npy", np.ones((5, 6), np.float32))
    (root / "broken.nii.gz").write_bytes(b"not a nifti file")
    bad = [
        "missing.npy,cyst,train",
        "flat.npy,cyst,train",
        "broken.nii.gz,normal,train",
        "cyst/train0.npy,cyst,training",
        "notes.txt,cyst,train",
        "cyst/val0.npy,,val",
        f"{rows[0][0]},lesion,test",  # a class with no training sample
    ]
    with open(root / "labels.csv", "a") as f:
        f.write("\n".join(bad) + "\n")
    with pytest.raises(folder.FolderDatasetError) as err:
        folder.ensure_folder_dataset(root, 28)
    message = str(err.value)
    first = len(rows) + 2  # header on line 1; rows[0] (line 2) is cyst/train0.npy
    expected = [
        f"line {first}: {root / 'missing.npy'}: no such file",
        f"line {first + 1}: {root / 'flat.npy'}: shape (5, 6) has 2 dimension(s)",
        f"line {first + 2}: {root / 'broken.nii.gz'}: cannot read the file",
        f"line {first + 3}: cyst/train0.npy: the same file as line 2 (cyst/train0.npy) in "
        "another split (training, there train): a leak; list each volume once",
        f"line {first + 3}: unknown split 'training'; expected train, val or test",
        f"line {first + 4}: notes.txt: unsupported file type",
        f"line {first + 5}: cyst/val0.npy: the same file as line 5 (cyst/val0.npy) with "
        "another label ('', there 'cyst')",
        f"line {first + 5}: empty label",
        f"line {first + 6}: cyst/train0.npy: the same file as line 2 (cyst/train0.npy) with "
        "another label ('lesion', there 'cyst') in another split (test, there train)",
        "class 'cyst': no sample in test (train 4, val 1, test 0)",
        "class 'lesion': no sample in train, val (train 0, val 0, test 1) (AUC needs every",
        "class 'normal': no sample in test",
        "class 'tumour': no sample in test",
    ]
    lines = message.splitlines()
    assert f"{len(expected)} problem(s)" in lines[0] and len(lines) == 1 + len(expected)
    for line, want in zip(lines[1:], expected, strict=True):
        assert want in line, (line, want)
    assert not (root / folder.CACHE_DIR).exists()  # nothing converted into the cache
    # main.py: one report, exit code 1, no traceback, the run directory not created.
    workdir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "main.py", "--config=configs/folder.py:scale=tiny",
         f"--config.data.root={root}", f"--workdir={workdir}"],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "class 'lesion': no sample in train" in proc.stderr
    assert not workdir.exists()


def test_missing_labels_csv_and_single_class(tmp_path):
    with pytest.raises(folder.FolderDatasetError, match="labels.csv not found.*data.root"):
        folder.folder_info(tmp_path)
    (tmp_path / "labels.csv").write_text("path,class\na.npy,x\n")
    with pytest.raises(folder.FolderDatasetError, match="missing column.*file, label"):
        folder.folder_info(tmp_path)
    (tmp_path / "labels.csv").write_text("file,label\na.npy,x\nb.npy,x\n")
    with pytest.raises(folder.FolderDatasetError, match="1 class.*at least 2"):
        folder.folder_info(tmp_path)


def test_numeric_labels_sort_as_numbers(tmp_path):
    rows = [(f"s{i}.npy", str(label), None) for i, label in enumerate([10, 2, 1, 2, 10, 1])]
    (tmp_path / "labels.csv").write_text(
        "file,label\n" + "".join(f"{f},{lab}\n" for f, lab, _ in rows)
    )
    assert folder.folder_info(tmp_path).label_names == ("1", "2", "10")


def test_cache_is_reused_and_reconverted_after_a_change(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "scans", split_rows({"train": 2, "val": 2, "test": 1}))
    converted = []
    real = volumes.load_volume
    monkeypatch.setattr(
        volumes, "load_volume", lambda p, s, g: converted.append(p) or real(p, s, g)
    )
    path = folder.ensure_folder_dataset(root, 28)
    assert len(converted) == 15
    first = load_split(path, "folder", 28, "train")[0].copy()
    assert folder.ensure_folder_dataset(root, 28) == path and len(converted) == 15  # reused
    # A changed volume file: everything is reconverted, and the new content is used.
    changed = root / "cyst/train0.npy"
    np.save(changed, np.linspace(0, 1, 6 * 7 * 8).reshape(6, 7, 8).astype(np.float32))
    folder.ensure_folder_dataset(root, 28)
    assert len(converted) == 30
    again = load_split(path, "folder", 28, "train")[0]
    assert not np.array_equal(first[0], again[0])
    np.testing.assert_array_equal(again[0], volumes.to_uint8(real(changed, 28)))
    np.testing.assert_array_equal(first[1:], again[1:])
    # A changed labels.csv (a volume moved from val to train) also reconverts.
    text = (
        (root / "labels.csv")
        .read_text()
        .replace("cyst/val0.npy,cyst,val", "cyst/val0.npy,cyst,train")
    )
    (root / "labels.csv").write_text(text)
    folder.ensure_folder_dataset(root, 28)
    assert len(converted) == 45
    assert len(load_split(path, "folder", 28, "train")[1]) == 7
    # A 64^3 dataset is a separate cache of its own.
    path64 = folder.ensure_folder_dataset(root, 64)
    assert path64.name == "folder_64_csv.npz" and len(converted) == 60
    assert load_split(path64, "folder", 64, "val")[0].shape == (5, 64, 64, 64)


def test_non_finite_model_output_is_an_error_row(split_run, tmp_path):
    """Even a model that outputs NaN never yields a NaN prediction with no error."""
    _, workdir = split_run
    run = inference.restore(workdir)
    broken = dataclasses.replace(
        run, params=jax.tree.map(lambda p: np.full(p.shape, np.nan, p.dtype), run.params)
    )
    path = tmp_path / "scan.npy"
    np.save(path, np.random.default_rng(0).random((6, 7, 8)))
    (row,) = predict.predict_files(broken, [path])
    assert row["prediction"] is None and all(row[name] is None for name in CLASSES)
    assert row["error"] == f"{path}: the model's output is not finite"


def test_a_split_without_a_class_is_refused_with_the_counts(tmp_path):
    """A validation split without one of the classes cannot score AUC: an error before
    training, naming the class and each split's count."""
    rows = split_rows({"train": 2, "val": 1})
    rows = [r for r in rows if not (r[1] == "normal" and r[2] == "val")]
    root = make_folder(tmp_path / "scans", rows)
    with pytest.raises(folder.FolderDatasetError) as err:
        folder.ensure_folder_dataset(root, 28)
    assert "class 'normal': no sample in val (train 2, val 0, test 0)" in str(err.value)


@pytest.mark.parametrize("small, message", [(2, "class 'normal' has 2 sample(s)"), (3, None)])
def test_a_drawn_split_puts_every_class_in_every_split_or_refuses(tmp_path, small, message):
    rows = [(f"c{i}.npy", "cyst", None) for i in range(20)]
    rows += [(f"n{i}.npy", "normal", None) for i in range(small)]
    root = make_folder(tmp_path / "scans", rows)
    if message:
        with pytest.raises(folder.FolderDatasetError, match=re.escape(message)):
            folder.ensure_folder_dataset(root, 28)
        return
    with np.load(folder.ensure_folder_dataset(root, 28)) as npz:
        for split in ("train", "val", "test"):
            assert set(npz[f"{split}_labels"][:, 0].tolist()) == {0, 1}, split


def test_the_same_file_under_another_path_is_found(tmp_path):
    rows = split_rows({"train": 2, "val": 1})
    root = make_folder(tmp_path / "scans", rows)
    (root / "link.npy").symlink_to(root / "cyst" / "train0.npy")
    with open(root / "labels.csv", "a") as f:
        f.write("link.npy,cyst,val\n./normal/../cyst/train1.npz,cyst,train\n")
    with pytest.raises(folder.FolderDatasetError) as err:
        folder.ensure_folder_dataset(root, 28)
    text = str(err.value)
    assert "link.npy: the same file as line 2 (cyst/train0.npy) in another split" in text
    assert "./normal/../cyst/train1.npz: the same file as line 3 (cyst/train1.npz); list" in text


def test_a_read_only_data_folder_keeps_its_cache_in_the_users_cache(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "scans", split_rows({"train": 2, "val": 1}))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(folder.os, "access", lambda path, mode: False)  # as for a shared mount
    path = folder.ensure_folder_dataset(root, 28)
    assert path.is_relative_to(tmp_path / "cache" / "lmttm_jax" / "folders")
    assert not (root / folder.CACHE_DIR).exists()
    assert load_split(path, "folder", 28, "train")[0].shape == (6, 28, 28, 28)
