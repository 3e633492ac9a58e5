"""MedMNIST v2 3D datasets (plus ``synthetic3d`` and ``folder``, the user's own volumes):
registry, paths, download and loading.

Files follow MedMNIST's layout: ``<root>/<flag>.npz`` (28^3) or ``<root>/<flag>_64.npz``
(64^3) holding ``{split}_images`` uint8 ``[N, S, S, S]`` and ``{split}_labels`` uint8
``[N, 1]`` for split in train/val/test. The registry's facts are the project's own
(``medmnist_info``); the optional ``medmnist`` package only cross-checks them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import io
import json
import logging
import os
import struct
import sys
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
import pooch
from tqdm import tqdm

from lmttm_jax.data import medmnist_info, synthetic

MEDMNIST_FLAGS: tuple[str, ...] = (
    "organmnist3d",
    "nodulemnist3d",
    "adrenalmnist3d",
    "fracturemnist3d",
    "vesselmnist3d",
    "synapsemnist3d",
)
SYNTHETIC_FLAG = "synthetic3d"
FOLDER_FLAG = "folder"  # the user's volumes listed in `<data.root>/labels.csv`
FLAGS: tuple[str, ...] = MEDMNIST_FLAGS + (SYNTHETIC_FLAG, FOLDER_FLAG)
SIZES: tuple[int, ...] = (28, 64)
SPLITS: tuple[str, ...] = synthetic.SPLITS
ROOT_ENV = "MEDMNIST_ROOT"
_CHUNK = 1 << 20


class DatasetError(Exception):
    """Base class of the data-layer errors."""


class DatasetUnavailableError(DatasetError, RuntimeError):
    """A dataset file is missing and cannot be fetched (offline, unreachable URL)."""


class DownloadError(DatasetError, RuntimeError):
    """A download failed (checksum mismatch, connection cut) after all retries."""


class DatasetFileError(DatasetError, ValueError):
    """A dataset file is corrupt or its arrays have unexpected shape, dtype or values."""


class MissingSplitError(DatasetError, ValueError):
    """The requested split is not stored in the dataset file."""


# ----------------------------------------------------------------------------- registry


@functools.cache
def medmnist_module(name: str = "info") -> ModuleType:
    """Import ``medmnist.<name>`` (``info`` or ``evaluator``) without printing anything
    (``medmnist/__init__.py`` prints an install hint when PyTorch is absent).

    Optional: only the cross-checks of the registry and the metrics use it;
    ``ModuleNotFoundError`` says how to install it. ``medmnist.info`` creates
    ``~/.medmnist`` when first imported.
    """
    if importlib.util.find_spec("medmnist") is None:
        raise ModuleNotFoundError(
            "the optional package medmnist is not installed: pip install --no-deps "
            "medmnist==3.0.2 pandas (its declared dependencies include PyTorch, not needed "
            "here)",
            name="medmnist",
        )
    sink = io.StringIO()
    with (
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        return importlib.import_module(f"medmnist.{name}")


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset (MedMNIST's published facts, the synthetic
    generator's constants, or a folder's ``labels.csv``).

    ``n_samples`` maps split -> N; ``urls``/``md5s`` map size -> URL/MD5 (None for
    synthetic and folder datasets).
    """

    flag: str
    task: str
    label_names: tuple[str, ...]
    n_samples: dict[str, int]
    n_channels: int = 1
    urls: dict[int, str | None] = field(default_factory=lambda: dict.fromkeys(SIZES))
    md5s: dict[int, str | None] = field(default_factory=lambda: dict.fromkeys(SIZES))

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.label_names)

    def url(self, size: int) -> str | None:
        """Download URL of the ``size`` file (None for synthetic)."""
        return self.urls[check_size(size)]

    def md5(self, size: int) -> str | None:
        """Expected MD5 of the ``size`` file (None for synthetic)."""
        return self.md5s[check_size(size)]


def check_flag(flag: str) -> str:
    """Return ``flag`` if known, else raise ValueError listing the valid flags."""
    if flag not in FLAGS:
        raise ValueError(f"unknown dataset flag {flag!r}; valid flags: {', '.join(FLAGS)}")
    return flag


def check_size(size: int) -> int:
    """Return ``size`` if it is one of ``SIZES``, else raise ValueError."""
    if size not in SIZES:
        raise ValueError(f"unsupported image size {size!r}; valid sizes: {SIZES}")
    return size


@functools.cache
def get_info(flag: str) -> DatasetInfo:
    """Registry entry of ``flag`` (ValueError naming the valid flags if unknown). The
    ``folder`` dataset has none: ``lmttm_jax.data.datasets.get_info`` reads its CSV."""
    if check_flag(flag) == FOLDER_FLAG:
        raise ValueError(f"{FOLDER_FLAG!r} is described by its labels.csv, not the registry")
    if flag == SYNTHETIC_FLAG:
        labels, n_samples = synthetic.SYNTHETIC_LABELS, synthetic.SYNTHETIC_N_SAMPLES
        return DatasetInfo(flag, "multi-class", labels, dict(n_samples))
    task, label_names, n_samples, md5s = medmnist_info.MEDMNIST3D[flag]
    urls = {s: medmnist_info.URL.format(_filename(flag, s)) for s in SIZES}
    return DatasetInfo(flag, task, label_names, dict(n_samples), urls=urls, md5s=dict(md5s))


# ----------------------------------------------------------------------------- paths


def default_root() -> Path:
    """Data directory: ``$MEDMNIST_ROOT`` if set, else ``~/.medmnist`` (not created)."""
    return Path(os.environ.get(ROOT_ENV) or "~/.medmnist").expanduser()


def _filename(flag: str, size: int) -> str:
    return flag + ("" if size == 28 else f"_{size}") + ".npz"


def dataset_path(root: str | os.PathLike, flag: str, size: int) -> Path:
    """``<root>/<flag>.npz`` for size 28, ``<root>/<flag>_64.npz`` for size 64."""
    get_info(flag)  # ValueError for an unknown flag, or for `folder`
    return Path(root) / _filename(flag, check_size(size))


def _unavailable_message(path: Path, url: str | None, reason: str) -> str:
    """The single user-facing message for a dataset file that cannot be obtained."""
    source = f" and could not be downloaded from {url}" if url else ""
    return (
        f"dataset file {path} is missing{source} ({reason}). If you have a local copy, "
        f"point at its directory with --config.data.root=DIR or the environment variable "
        f"{ROOT_ENV}=DIR (files are named <flag>.npz for 28^3 and <flag>_64.npz for 64^3)."
    )


# ----------------------------------------------------------------------------- download


def download(
    url: str,
    dest: str | os.PathLike,
    md5: str | None,
    retries: int = 3,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` with pooch, verifying its MD5 (skipped if None).

    ``dest`` never holds an unverified file (pooch moves it there once its MD5 checks
    out); an existing ``dest`` with the right MD5 is kept. After ``retries`` attempts
    ending in a checksum mismatch or a cut connection, raises ``DownloadError``. A URL
    that gives no response or an HTTP error status raises ``DatasetUnavailableError`` at
    once.
    """
    import requests  # as pooch does: only when downloading

    dest, attempts = Path(dest), max(1, retries)
    answers = []  # the responses to the request, recorded by requests' response hook

    def downloader(url: str, output_file: str, pup: pooch.Pooch | None) -> None:
        answers.clear()
        # A bar for pooch to drive (it sets the total and closes it after a complete download),
        # named after the file and cleared here when an attempt fails (pooch's own stays open).
        bar = tqdm(total=1, desc=dest.name, unit="B", unit_scale=True, disable=not progress)
        try:
            pooch.HTTPDownloader(
                progressbar=progress and bar,
                chunk_size=_CHUNK,
                timeout=timeout,
                hooks={"response": lambda response, **_: answers.append(response)},
            )(url, output_file, pup)
        except requests.RequestException as err:
            last = answers[-1] if answers else None  # None: no response at all
            if last is None or last.is_redirect or not last.ok:  # unreachable: no retry
                reason = f"{type(err).__name__}: {err}"
                raise DatasetUnavailableError(_unavailable_message(dest, url, reason)) from err
            raise
        finally:
            bar.leave = False
            bar.close()

    known_hash = None if md5 is None else f"md5:{md5.lower()}"
    pup = pooch.create(
        dest.parent,
        base_url="",
        registry={dest.name: known_hash},
        urls={dest.name: url},
        retry_if_failed=attempts - 1,
    )
    logger = pooch.get_logger()  # INFO: "Downloading file ...", "Failed to download ..."
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        pup.fetch(dest.name, downloader=downloader)
    except (ValueError, requests.RequestException) as err:
        raise DownloadError(
            f"could not download {url} to {dest} after {attempts} attempt(s): "
            f"{type(err).__name__}: {err}"
        ) from err
    finally:
        logger.setLevel(level)
    return dest


def ensure_dataset(flag: str, size: int, root: str | os.PathLike, download_missing: bool) -> Path:
    """The path of the ``flag``/``size`` file under ``root``, obtained if missing:
    ``synthetic3d`` is generated (seed 0), a MedMNIST file downloaded and checked against
    its MD5 unless ``download_missing`` is False (then ``DatasetUnavailableError``).
    """
    info = get_info(flag)
    path = dataset_path(root, flag, size)
    if path.exists():
        if info.md5(size) is not None:
            _warn_if_not_official(path, info.md5(size))
        return path
    if flag == SYNTHETIC_FLAG:
        return synthetic.write_synthetic(path, seed=synthetic.SYNTHETIC_SEED, size=size)
    if not download_missing:
        raise DatasetUnavailableError(
            _unavailable_message(path, info.url(size), "downloading is disabled")
        )
    return download(info.url(size), path, info.md5(size))


# ----------------------------------------------------------------------------- MD5 of local files


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/lmttm_jax``, else ``~/.cache/lmttm_jax`` (not created)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "lmttm_jax"


def _hash_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_md5(path: Path) -> str:
    """The MD5 of `path`, hashed once per (size, mtime) of the file and remembered in
    `<user_cache_dir>/dataset_md5.json` (an unwritable cache only means hashing again)."""
    stat, key = path.stat(), str(path.resolve())
    cache_path = user_cache_dir() / "dataset_md5.json"
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key, {})
    if entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return entry["md5"]
    cache[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "md5": _hash_file(path)}
    with contextlib.suppress(OSError):
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_path.parent, prefix=cache_path.name)
        with os.fdopen(fd, "w") as f:
            json.dump(cache, f, indent=1)
        os.replace(tmp, cache_path)
    return cache[key]["md5"]


def _warn_if_not_official(path: Path, md5: str) -> None:
    """Prints one line naming `path` and the fix when its MD5 is not the registry's (a
    deliberate copy, e.g. one without the test split, is used as it is)."""
    found = file_md5(path)
    if found != md5.lower():
        print(
            f"warning: dataset file {path} has MD5 {found}, not the official {md5}: if it "
            f"is not a deliberate copy, delete it to download the official file",
            file=sys.stderr,
            flush=True,
        )


# ----------------------------------------------------------------------------- loading

_CORRUPT = (zipfile.BadZipFile, zlib.error, ValueError, EOFError, struct.error)


def _corrupt(path: Path, err: Exception) -> DatasetFileError:
    """Error for an unreadable file, suggesting to delete it so it is fetched again."""
    return DatasetFileError(
        f"cannot read dataset file {path} ({type(err).__name__}: {err}); it is probably "
        f"corrupt or truncated: delete it to download (or generate) it again"
    )


def available_splits(path: str | os.PathLike) -> tuple[str, ...]:
    """Splits whose ``{split}_images`` and ``{split}_labels`` are both in the ``.npz``."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            keys = {name.removesuffix(".npy") for name in zf.namelist()}
    except _CORRUPT as err:
        raise _corrupt(path, err) from err
    return tuple(s for s in SPLITS if {f"{s}_images", f"{s}_labels"} <= keys)


def _file_error(path: Path, key: str, expected: str, found: str) -> DatasetFileError:
    """Error for an array with unexpected shape/dtype/values."""
    return DatasetFileError(f"{path}: '{key}' should be {expected}, found {found}")


def _check_images(path: Path, key: str, images: np.ndarray, size: int) -> None:
    """Images must be uint8 ``[N, S, S, S]`` with ``S == size``."""
    if images.ndim != 4 or images.shape[1:] != (size,) * 3:
        raise _file_error(path, key, f"shape (N, {size}, {size}, {size})", f"shape {images.shape}")
    if images.dtype != np.uint8:
        raise _file_error(path, key, "dtype uint8", f"dtype {images.dtype}")


def _check_labels(path: Path, key: str, labels: np.ndarray, n: int, n_classes: int) -> None:
    """Labels must be integers ``[N]`` or ``[N, 1]`` in ``[0, n_classes)``."""
    if labels.shape not in ((n,), (n, 1)):
        raise _file_error(
            path, key, f"shape ({n}, 1) or ({n},) to match the images", f"shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise _file_error(path, key, "an integer dtype", f"dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise _file_error(
            path, key, f"labels in [0, {n_classes})", f"range [{labels.min()}, {labels.max()}]"
        )


def load_split(
    path: str | os.PathLike, flag: str, size: int, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of a MedMNIST-style ``.npz`` file.

    Returns images uint8 ``[N, S, S, S]`` and labels int32 ``[N]``. Raises
    ``MissingSplitError`` if the split is not in the file and ``DatasetFileError`` if the
    file is corrupt or its arrays do not match the registry (shape, dtype, label range).
    N may differ from the registry (subsets). A ``folder`` file names its classes in its
    ``label_names`` member.
    """
    path = Path(path)
    check_flag(flag)
    check_size(size)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    present = available_splits(path)
    if split not in present:
        raise MissingSplitError(
            f"split '{split}' is not in {path} (it has: {', '.join(present) or 'no splits'})"
        )
    keys = (f"{split}_images", f"{split}_labels")
    try:
        with np.load(path, allow_pickle=False) as npz:
            images, labels = npz[keys[0]], npz[keys[1]]
            names = npz["label_names"] if flag == FOLDER_FLAG else get_info(flag).label_names
    except (KeyError, *_CORRUPT) as err:
        raise _corrupt(path, err) from err
    _check_images(path, keys[0], images, size)
    _check_labels(path, keys[1], labels, len(images), len(names))
    return images, labels.reshape(-1).astype(np.int32)
