"""Tests of the data layer (offline: downloads go to a local HTTP server on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import os
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lmttm_jax.data import (
    FLAGS,
    DatasetFileError,
    DatasetUnavailableError,
    DownloadError,
    MissingSplitError,
    augment,
    dataset_path,
    default_root,
    ensure_dataset,
    eval_batches,
    get_info,
    load_split,
    medmnist3d,
    medmnist_module,
    num_batches,
    preprocess,
    train_batches,
    write_synthetic,
)
from lmttm_jax.data.medmnist3d import MEDMNIST_FLAGS, available_splits, download
from lmttm_jax.data.pipeline import balanced_batch_size
from lmttm_jax.data.synthetic import SYNTHETIC_LABELS, SYNTHETIC_N_SAMPLES, make_synthetic

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDMNIST = REPO.parent / "shared" / "data" / "medmnist"


def _npz_bytes(arrays: dict[str, np.ndarray], compressed: bool = False) -> bytes:
    """Serialise arrays as an ``.npz`` file in memory."""
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def _small_split_arrays(n: int = 6, size: int = 28, n_classes: int = 2) -> dict[str, np.ndarray]:
    """A tiny MedMNIST-like train/val file content."""
    rng = np.random.default_rng(0)
    out = {}
    for split in ("train", "val"):
        out[f"{split}_images"] = rng.integers(0, 256, (n, size, size, size), dtype=np.uint8)
        out[f"{split}_labels"] = (np.arange(n) % n_classes).astype(np.uint8)[:, None]
    return out


# ----------------------------------------------------------------------------- registry


@pytest.mark.parametrize("flag", MEDMNIST_FLAGS)
def test_registry_matches_medmnist_info(flag):
    pytest.importorskip("medmnist")  # the optional package the registry's facts come from
    raw = medmnist_module("info").INFO[flag]
    info = get_info(flag)
    assert info.flag == flag
    assert info.task == raw["task"]
    assert info.label_names == tuple(raw["label"][str(i)] for i in range(len(raw["label"])))
    assert info.n_classes == len(raw["label"])
    assert info.n_samples == raw["n_samples"]
    assert info.n_channels == raw["n_channels"] == 1
    assert (info.url(28), info.md5(28)) == (raw["url"], raw["MD5"])
    assert (info.url(64), info.md5(64)) == (raw["url_64"], raw["MD5_64"])


def test_registry_synthetic_agrees_with_generator():
    info = get_info("synthetic3d")
    assert info.task == "multi-class"
    assert info.label_names == SYNTHETIC_LABELS and info.n_classes == 4
    assert info.n_samples == dict(SYNTHETIC_N_SAMPLES)
    assert info.url(28) is None and info.md5(64) is None
    assert set(FLAGS) == set(MEDMNIST_FLAGS) | {"synthetic3d", "folder"}


def test_registry_errors():
    with pytest.raises(ValueError, match="'nosuchmnist'.*organmnist3d.*synthetic3d"):
        get_info("nosuchmnist")
    with pytest.raises(ValueError, match="32"):
        get_info("organmnist3d").url(32)
    with pytest.raises(ValueError, match="128"):
        dataset_path("/tmp", "organmnist3d", 128)
    with pytest.raises(ValueError, match="'train2'"):
        load_split("/nonexistent.npz", "organmnist3d", 28, "train2")


def test_import_prints_nothing_and_creates_nothing(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("MEDMNIST_ROOT", None)
    code = "import lmttm_jax.data as d, os; assert not os.path.exists(d.default_root())"
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert (run.stdout, run.stderr) == ("", "")
    code = (
        "import importlib.util, lmttm_jax.data as d; d.get_info('organmnist3d'); "
        "importlib.util.find_spec('medmnist') and d.medmnist_module('evaluator')"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert (run.stdout, run.stderr) == ("", "")


def test_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path))
    assert default_root() == tmp_path
    monkeypatch.delenv("MEDMNIST_ROOT")
    assert default_root() == Path.home() / ".medmnist"
    assert dataset_path(tmp_path, "vesselmnist3d", 28) == tmp_path / "vesselmnist3d.npz"
    assert dataset_path(str(tmp_path), "vesselmnist3d", 64) == tmp_path / "vesselmnist3d_64.npz"


# ----------------------------------------------------------------------------- synthetic

SMALL = {"train": 40, "val": 12}


def test_synthetic_deterministic_shapes_balanced():
    a = make_synthetic(seed=3, size=28, n_samples=SMALL)
    b = make_synthetic(seed=3, size=28, n_samples=SMALL)
    c = make_synthetic(seed=4, size=28, n_samples=SMALL)
    assert sorted(a) == ["train_images", "train_labels", "val_images", "val_labels"]
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["train_images"], c["train_images"])
    assert a["train_images"].shape == (40, 28, 28, 28) and a["train_images"].dtype == np.uint8
    assert a["train_labels"].shape == (40, 1) and a["train_labels"].dtype == np.uint8
    assert np.bincount(a["train_labels"][:, 0], minlength=4).tolist() == [10] * 4
    # Each split has its own stream: val does not depend on the train size.
    d = make_synthetic(seed=3, size=28, n_samples={"val": 12})
    np.testing.assert_array_equal(a["val_images"], d["val_images"])


def _axis_spread(images: np.ndarray, threshold: int = 80) -> np.ndarray:
    """Per-axis variance of foreground voxel coordinates, normalised to sum 1: ``[N, 3]``."""
    size = images.shape[1]
    grid = np.arange(size, dtype=np.float64)
    fg = (images > threshold).astype(np.float64)
    count = fg.sum(axis=(1, 2, 3))
    feats = []
    for axis in range(3):
        other = tuple(a for a in (1, 2, 3) if a != axis + 1)
        profile = fg.sum(axis=other)  # [N, S]
        mean = profile @ grid / count
        feats.append(profile @ grid**2 / count - mean**2)
    feats = np.stack(feats, axis=1)
    return feats / feats.sum(axis=1, keepdims=True)


def test_synthetic_labels_follow_3d_structure():
    data = make_synthetic(seed=1, size=28, n_samples={"train": 200, "val": 100})
    x_tr, y_tr = _axis_spread(data["train_images"]), data["train_labels"][:, 0]
    x_va, y_va = _axis_spread(data["val_images"]), data["val_labels"][:, 0]
    means = np.stack([x_tr[y_tr == c].mean(axis=0) for c in range(4)])
    pred = np.argmin(((x_va[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == y_va).mean() > 0.8
    # Rods are longest along their own axis.
    rods = y_tr < 3
    assert (np.argmax(x_tr[rods], axis=1) == y_tr[rods]).mean() > 0.9


def test_synthetic_file_round_trip(tmp_path):
    path = write_synthetic(tmp_path / "s.npz", seed=2, size=28, n_samples=SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]
    assert available_splits(path) == ("train", "val")
    ref = make_synthetic(seed=2, size=28, n_samples=SMALL)
    images, labels = load_split(path, "synthetic3d", 28, "val")
    np.testing.assert_array_equal(images, ref["val_images"])
    np.testing.assert_array_equal(labels, ref["val_labels"][:, 0])
    assert labels.dtype == np.int32 and labels.shape == (12,)


def test_ensure_dataset_generates_synthetic(tmp_path):
    path = ensure_dataset("synthetic3d", 28, tmp_path, download_missing=False)
    assert path == tmp_path / "synthetic3d.npz" and path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic3d.npz"]
    for split, n in SYNTHETIC_N_SAMPLES.items():
        images, labels = load_split(path, "synthetic3d", 28, split)
        assert images.shape == (n, 28, 28, 28) and labels.shape == (n,)
    ref = make_synthetic(seed=0, size=28, n_samples={"val": SYNTHETIC_N_SAMPLES["val"]})
    np.testing.assert_array_equal(load_split(path, "synthetic3d", 28, "val")[0], ref["val_images"])
    assert ensure_dataset("synthetic3d", 28, tmp_path) == path  # existing file is reused


# ----------------------------------------------------------------------------- loading


def test_missing_split_is_named(tmp_path):
    path = tmp_path / "adrenalmnist3d.npz"
    path.write_bytes(_npz_bytes(_small_split_arrays()))
    assert available_splits(path) == ("train", "val")
    with pytest.raises(MissingSplitError) as err:
        load_split(path, "adrenalmnist3d", 28, "test")
    assert not isinstance(err.value, KeyError)
    assert str(err.value) == f"split 'test' is not in {path} (it has: train, val)"


@pytest.mark.parametrize(
    "key, value, expected, found",
    [
        ("train_images", np.zeros((6, 28, 28), np.uint8), "(N, 28, 28, 28)", "(6, 28, 28)"),
        ("train_images", np.zeros((6, 28, 28, 28), np.float32), "uint8", "float32"),
        ("train_labels", np.zeros((5, 1), np.uint8), "(6, 1)", "(5, 1)"),
        ("train_labels", np.full((6, 1), 2, np.uint8), "[0, 2)", "[2, 2]"),
        ("train_labels", np.zeros((6, 1), np.float32), "integer", "float32"),
    ],
)
def test_wrong_arrays_raise_dataset_file_error(tmp_path, key, value, expected, found):
    path = tmp_path / "adrenalmnist3d.npz"
    path.write_bytes(_npz_bytes({**_small_split_arrays(), key: value}))
    with pytest.raises(DatasetFileError) as err:
        load_split(path, "adrenalmnist3d", 28, "train")
    msg = str(err.value)
    assert str(path) in msg and key in msg and expected in msg and found in msg


def test_wrong_size_raises_dataset_file_error(tmp_path):
    path = tmp_path / "adrenalmnist3d_64.npz"
    path.write_bytes(_npz_bytes(_small_split_arrays(size=28)))
    with pytest.raises(DatasetFileError, match="64, 64, 64"):
        load_split(path, "adrenalmnist3d", 64, "val")


@pytest.mark.parametrize("kind", ["random", "truncated"])
def test_corrupt_file_raises_dataset_file_error(tmp_path, kind):
    path = tmp_path / "adrenalmnist3d.npz"
    good = _npz_bytes(_small_split_arrays(), compressed=True)
    bad = np.random.default_rng(0).bytes(4096) if kind == "random" else good[: len(good) // 2]
    path.write_bytes(bad)
    with pytest.raises(DatasetFileError, match="delete it") as err:
        load_split(path, "adrenalmnist3d", 28, "train")
    assert str(path) in str(err.value)


def test_corrupt_member_raises_dataset_file_error(tmp_path):
    path = tmp_path / "adrenalmnist3d.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train_images.npy", b"not an npy file")
        zf.writestr("train_labels.npy", b"\x93NUMPY garbage")
    with pytest.raises(DatasetFileError, match="delete it"):
        load_split(path, "adrenalmnist3d", 28, "train")


def test_size64_members_load_stored_or_compressed(tmp_path):
    arrays = _small_split_arrays(n=3, size=64)
    plain, packed = tmp_path / "plain.npz", tmp_path / "packed.npz"
    plain.write_bytes(_npz_bytes(arrays))
    packed.write_bytes(_npz_bytes(arrays, compressed=True))
    for path in (plain, packed):
        images, labels = load_split(path, "adrenalmnist3d", 64, "val")
        assert type(images) is np.ndarray
        np.testing.assert_array_equal(images, arrays["val_images"])
        np.testing.assert_array_equal(labels, arrays["val_labels"][:, 0])


@pytest.mark.parametrize("size", [28, 64])
def test_real_adrenal_copy_when_present(size):
    path = SHARED_MEDMNIST / dataset_path("", "adrenalmnist3d", size).name
    if not path.exists():
        pytest.skip(f"{path} not present")
    assert available_splits(path) == ("train", "val")
    for split, n in (("train", 1188), ("val", 98)):
        images, labels = load_split(path, "adrenalmnist3d", size, split)
        assert images.shape == (n, size, size, size) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int32
        assert set(np.unique(labels)) == {0, 1}
        del images
    with pytest.raises(MissingSplitError, match="split 'test' is not in"):
        load_split(path, "adrenalmnist3d", size, "test")


# ----------------------------------------------------------------------------- download


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``/ok.npz`` in full, ``/cut.npz`` truncated (Content-Length too large) and
    ``/missing.npz`` as 404 Not Found."""

    payload = b""
    requests: ClassVar[list[str]] = []

    def do_GET(self):
        type(self).requests.append(self.path)
        if self.path.startswith("/missing"):
            self.send_error(404)
            return
        cut = self.path.startswith("/cut")
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(self.payload) + (1000 if cut else 0)))
        self.end_headers()
        self.wfile.write(self.payload[: len(self.payload) // 2] if cut else self.payload)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A local HTTP server; yields ``(base_url, handler_class)``; always shut down."""
    handler = type(
        "Handler", (_Handler,), {"payload": _npz_bytes(_small_split_arrays()), "requests": []}
    )
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_download_right_md5(server, tmp_path):
    base, handler = server
    dest = tmp_path / "sub" / "adrenalmnist3d.npz"
    md5 = hashlib.md5(handler.payload).hexdigest()
    assert download(f"{base}/ok.npz", dest, md5, retries=2, timeout=5) == dest
    assert dest.read_bytes() == handler.payload
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]


def test_download_wrong_md5(server, tmp_path):
    base, handler = server
    dest = tmp_path / "adrenalmnist3d.npz"
    got = hashlib.md5(handler.payload).hexdigest()
    with pytest.raises(DownloadError, match=f"expected md5:{'0' * 32} but got {got}") as err:
        download(f"{base}/ok.npz", dest, "0" * 32, retries=2, timeout=5, progress=False)
    assert f"{base}/ok.npz" in str(err.value)
    assert handler.requests == ["/ok.npz"] * 2
    assert list(tmp_path.iterdir()) == []


def test_download_connection_cut(server, tmp_path):
    base, handler = server
    dest = tmp_path / "adrenalmnist3d.npz"
    n = len(handler.payload)
    cut = rf"IncompleteRead\({n // 2} bytes read, {n + 1000 - n // 2} more expected\)"
    with pytest.raises(DownloadError, match=cut):
        download(
            f"{base}/cut.npz", dest, hashlib.md5(handler.payload).hexdigest(), retries=2, timeout=5
        )
    assert len(handler.requests) == 2
    assert list(tmp_path.iterdir()) == []


def test_download_unreachable(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/x.npz"
    dest = tmp_path / "x.npz"
    with pytest.raises(DatasetUnavailableError) as err:
        download(url, dest, "0" * 32, retries=2, timeout=2)
    msg = str(err.value)
    assert str(dest) in msg and url in msg and "--config.data.root" in msg
    assert "MEDMNIST_ROOT" in msg and "<flag>_64.npz" in msg and "\n" not in msg
    assert list(tmp_path.iterdir()) == []


def test_download_http_error_is_unavailable_at_once(server, tmp_path):
    base, handler = server
    dest = tmp_path / "x.npz"
    with pytest.raises(DatasetUnavailableError, match="404") as err:
        download(f"{base}/missing.npz", dest, "0" * 32, retries=3, timeout=5, progress=False)
    assert f"{base}/missing.npz" in str(err.value) and "--config.data.root" in str(err.value)
    assert handler.requests == ["/missing.npz"]  # not retried
    assert list(tmp_path.iterdir()) == []


def _patch_url(monkeypatch, flag: str, url: str, md5: str) -> None:
    """Point the registry entry of ``flag`` at ``url``/``md5`` for both sizes."""
    info = dataclasses.replace(get_info(flag), urls={28: url, 64: url}, md5s={28: md5, 64: md5})
    real = medmnist3d.get_info
    monkeypatch.setattr(medmnist3d, "get_info", lambda f: info if f == flag else real(f))


def test_ensure_dataset_downloads_and_loads(server, tmp_path, monkeypatch):
    base, handler = server
    _patch_url(
        monkeypatch, "adrenalmnist3d", f"{base}/ok.npz", hashlib.md5(handler.payload).hexdigest()
    )
    path = ensure_dataset("adrenalmnist3d", 28, tmp_path)
    assert path == tmp_path / "adrenalmnist3d.npz"
    images, labels = load_split(path, "adrenalmnist3d", 28, "val")
    assert images.shape == (6, 28, 28, 28) and labels.tolist() == [0, 1] * 3
    assert ensure_dataset("adrenalmnist3d", 28, tmp_path) == path
    assert handler.requests == ["/ok.npz"]


def test_ensure_dataset_offline_errors(tmp_path, monkeypatch):
    with pytest.raises(DatasetUnavailableError) as err:
        ensure_dataset("organmnist3d", 64, tmp_path, download_missing=False)
    msg = str(err.value)
    assert str(tmp_path / "organmnist3d_64.npz") in msg
    assert get_info("organmnist3d").url(64) in msg and "--config.data.root" in msg
    url = f"http://127.0.0.1:{_closed_port()}/organmnist3d.npz"
    _patch_url(monkeypatch, "organmnist3d", url, "0" * 32)
    with pytest.raises(DatasetUnavailableError, match="--config.data.root"):
        ensure_dataset("organmnist3d", 28, tmp_path)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- pipeline


def _toy(n: int = 10, size: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Images whose voxels all equal their index + 1, and labels = index."""
    images = np.broadcast_to((np.arange(n) + 1)[:, None, None, None], (n, size, size, size))
    return np.ascontiguousarray(images).astype(np.uint8), np.arange(n, dtype=np.int32)


def test_num_batches():
    assert num_batches(10, 4, drop_last=True) == 2
    assert num_batches(10, 4, drop_last=False) == 3
    assert num_batches(8, 4, drop_last=False) == 2


def test_train_batches_order_and_shapes():
    images, labels = _toy(10)
    epoch0 = list(train_batches(images, labels[:, None], 4, seed=0, epoch=0))
    again = list(train_batches(images, labels, 4, seed=0, epoch=0))
    epoch1 = list(train_batches(images, labels, 4, seed=0, epoch=1))
    assert len(epoch0) == 2
    seen = np.concatenate([b["label"] for b in epoch0])
    assert len(set(seen.tolist())) == 8
    assert seen.tolist() != list(range(8))
    assert seen.tolist() == np.concatenate([b["label"] for b in again]).tolist()
    assert seen.tolist() != np.concatenate([b["label"] for b in epoch1]).tolist()
    for batch in epoch0:
        assert batch["image"].shape == (4, 4, 4, 4) and batch["image"].dtype == np.uint8
        assert batch["label"].dtype == np.int32 and batch["mask"].all()
        np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], batch["label"] + 1)
    assert list(train_batches(images[:3], labels[:3], 5, seed=0, epoch=0)) == []


def test_eval_batches_cover_each_sample_once():
    images, labels = _toy(10)
    batches = list(eval_batches(images, labels, 4))
    assert len(batches) == 3
    assert all(b["image"].shape == (4, 4, 4, 4) for b in batches)
    masks = np.concatenate([b["mask"] for b in batches])
    assert masks.tolist() == [True] * 10 + [False] * 2
    got = np.concatenate([b["label"] for b in batches])[masks]
    assert got.tolist() == list(range(10))
    assert (batches[-1]["image"][2:] == 0).all() and (batches[-1]["label"][2:] == 0).all()


def test_eval_batches_are_balanced_rather_than_padded():
    images, labels = _toy(98)
    batches = list(eval_batches(images, labels, 64))  # two of 49, not 64 + 34 padded
    assert [b["image"].shape[0] for b in batches] == [49, 49]
    assert all(b["mask"].all() for b in batches)
    got = np.concatenate([b["label"] for b in batches])
    assert got.tolist() == list(range(98))
    # a multiple of the devices: 10 samples, at most 8 a batch, over 4 devices
    batches = list(eval_batches(images[:10], labels[:10], 8, multiple=4))
    assert [b["image"].shape[0] for b in batches] == [8, 8]
    assert np.concatenate([b["mask"] for b in batches]).sum() == 10


@pytest.mark.parametrize("n", [1, 7, 63, 64, 65, 98, 298, 1000])
@pytest.mark.parametrize("batch_size,multiple", [(64, 1), (64, 8), (6, 2)])
def test_balanced_batch_size_takes_the_fewest_batches(n, batch_size, multiple):
    size = balanced_batch_size(n, batch_size, multiple)
    assert size <= batch_size and size % multiple == 0
    assert -(-n // size) == -(-n // batch_size)  # as few batches as batch_size gives
    assert -(-n // size) * size - n < -(-n // size) * multiple  # padding: rounding only


def test_preprocess():
    x = preprocess(np.array([[[[0, 255]]]], dtype=np.uint8).repeat(2, 0))
    assert x.shape == (2, 1, 1, 2, 1) and x.dtype == jnp.float32
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    y = jax.jit(preprocess)(np.zeros((2, 3, 3, 3), np.uint8))
    assert y.shape == (2, 3, 3, 3, 1)


def _sorted_voxels(a: jax.Array | np.ndarray) -> np.ndarray:
    """Per-sample sorted voxel values ``[B, S*S*S*C]``."""
    return np.sort(np.asarray(a).reshape(a.shape[0], -1), axis=1)


def test_augment_permutes_voxels_per_sample():
    batch = jax.random.uniform(jax.random.key(0), (8, 5, 5, 5, 2))
    fn = jax.jit(augment, static_argnames=("flip", "rot90"))
    out = fn(jax.random.key(1), batch, flip=True, rot90=True)
    again = fn(jax.random.key(1), batch, flip=True, rot90=True)
    assert out.shape == batch.shape
    np.testing.assert_array_equal(np.asarray(out), np.asarray(again))
    np.testing.assert_array_equal(_sorted_voxels(out), _sorted_voxels(batch))
    changed = np.any(np.asarray(out) != np.asarray(batch), axis=(1, 2, 3, 4))
    assert changed.sum() >= 4
    for flip, rot90 in ((True, False), (False, True)):
        part = fn(jax.random.key(2), batch, flip=flip, rot90=rot90)
        np.testing.assert_array_equal(_sorted_voxels(part), _sorted_voxels(batch))
        assert np.any(np.asarray(part) != np.asarray(batch))
    np.testing.assert_array_equal(fn(jax.random.key(2), batch, flip=False, rot90=False), batch)
    with pytest.raises(ValueError, match="cubic"):
        augment(jax.random.key(0), jnp.zeros((2, 4, 4, 5, 1)))


def _symmetries(volume: np.ndarray) -> list[np.ndarray]:
    """All flips (any subset of the 3 spatial axes) followed by a rot90 in one plane."""
    out = []
    for bits in range(8):
        flipped = volume
        for axis in range(3):
            if bits >> axis & 1:
                flipped = np.flip(flipped, axis)
        for axes in ((0, 1), (0, 2), (1, 2)):
            out += [np.rot90(flipped, k, axes) for k in range(4)]
    return out


def test_augment_outputs_are_cube_symmetries():
    batch = np.asarray(jax.random.uniform(jax.random.key(3), (6, 4, 4, 4, 1)))
    out = np.asarray(augment(jax.random.key(4), jnp.asarray(batch), flip=True, rot90=True))
    for x, y in zip(batch, out, strict=True):
        assert any(np.array_equal(y, s) for s in _symmetries(x))
