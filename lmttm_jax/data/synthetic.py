"""Synthetic 3D shape dataset (``synthetic3d``) laid out like a MedMNIST 3D ``.npz`` file.

Four classes that can only be told apart from 3D structure: an elongated solid ellipsoid
("rod") oriented along the depth, height or width axis of the volume, and a hollow spherical
shell. Each volume has a random centre (the object stays inside), random extents, random
background and foreground intensities and additive Gaussian noise, stored as uint8.

Volumes are ``[S, S, S]`` arrays indexed ``(depth, height, width)``; a split's images are
``[N, S, S, S]`` (so depth is axis 1 of the image array) and its labels ``[N, 1]`` uint8.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import numpy as np

SYNTHETIC_LABELS: tuple[str, ...] = ("rod-depth", "rod-height", "rod-width", "shell")
SYNTHETIC_N_SAMPLES: Mapping[str, int] = {"train": 1200, "val": 200, "test": 400}
SYNTHETIC_SEED = 0
SPLITS: tuple[str, ...] = ("train", "val", "test")

_SHELL = SYNTHETIC_LABELS.index("shell")
# Extents as fractions of the volume side S.
_ROD_LONG = (0.22, 0.36)  # semi-axis along the rod
_ROD_SHORT = (0.07, 0.12)  # the two cross-section semi-axes
_SHELL_RADIUS = (0.20, 0.34)  # outer radius
_SHELL_THICKNESS = (0.07, 0.12)
_MIN_THICKNESS_VOXELS = 1.5
# Intensities (0..255) and noise.
_BACKGROUND = (0.0, 40.0)
_FOREGROUND = (120.0, 230.0)
_NOISE_SIGMA = (5.0, 15.0)
_VOXEL_BUDGET = 1 << 22  # voxels rendered per chunk (bounds memory at 64^3)


def _semi_axes(rng: np.random.Generator, labels: np.ndarray, size: int) -> np.ndarray:
    """Per-sample ellipsoid semi-axes ``[B, 3]`` in voxels (outer radius for shells)."""
    n = len(labels)
    axes = rng.uniform(*_ROD_SHORT, size=(n, 3)) * size
    long = rng.uniform(*_ROD_LONG, size=n) * size
    radius = rng.uniform(*_SHELL_RADIUS, size=n) * size
    rods = np.flatnonzero(labels != _SHELL)
    axes[rods, labels[rods]] = long[rods]
    return np.where((labels == _SHELL)[:, None], radius[:, None], axes)


def _shape_masks(rng: np.random.Generator, labels: np.ndarray, size: int) -> np.ndarray:
    """Boolean foreground masks ``[B, S, S, S]`` for the labels ``[B]``."""
    semi = _semi_axes(rng, labels, size)
    low, high = semi + 1.0, (size - 2.0) - semi  # the object keeps a 1-voxel margin
    centre = low + rng.uniform(size=semi.shape) * np.maximum(high - low, 0.0)
    thickness = np.maximum(
        rng.uniform(*_SHELL_THICKNESS, size=len(labels)) * size, _MIN_THICKNESS_VOXELS
    )
    inner = np.where(labels == _SHELL, 1.0 - thickness / semi[:, 0], 0.0)  # normalised radius
    grid = np.arange(size, dtype=np.float32)
    norm = [
        ((grid[None, :] - centre[:, i, None]) / semi[:, i, None]).astype(np.float32) ** 2
        for i in range(3)
    ]
    d2 = norm[0][:, :, None, None] + norm[1][:, None, :, None] + norm[2][:, None, None, :]
    inner2 = (np.maximum(inner, 0.0) ** 2).astype(np.float32)[:, None, None, None]
    return (d2 <= 1.0) & (d2 >= inner2)


def _render(rng: np.random.Generator, labels: np.ndarray, size: int) -> np.ndarray:
    """Render uint8 volumes ``[B, S, S, S]`` for the labels ``[B]``."""
    n = len(labels)
    mask = _shape_masks(rng, labels, size)
    background = rng.uniform(*_BACKGROUND, size=n).astype(np.float32)
    foreground = rng.uniform(*_FOREGROUND, size=n).astype(np.float32)
    sigma = rng.uniform(*_NOISE_SIGMA, size=n).astype(np.float32)
    vol = rng.standard_normal((n, size, size, size), dtype=np.float32)
    vol *= sigma[:, None, None, None]
    vol += np.where(mask, foreground[:, None, None, None], background[:, None, None, None])
    return np.clip(np.rint(vol), 0, 255).astype(np.uint8)


def _make_split(rng: np.random.Generator, size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """One split: images uint8 ``[N, S, S, S]`` and balanced labels uint8 ``[N, 1]``."""
    labels = rng.permutation(np.arange(n) % len(SYNTHETIC_LABELS)).astype(np.uint8)
    images = np.empty((n, size, size, size), dtype=np.uint8)
    chunk = max(1, _VOXEL_BUDGET // size**3)
    for start in range(0, n, chunk):
        images[start : start + chunk] = _render(rng, labels[start : start + chunk], size)
    return images, labels[:, None]


def make_synthetic(
    seed: int = SYNTHETIC_SEED, size: int = 28, n_samples: Mapping[str, int] | None = None
) -> dict[str, np.ndarray]:
    """The synthetic dataset as the arrays of a MedMNIST 3D ``.npz`` file:
    ``{split}_images`` uint8 ``[N, S, S, S]`` and ``{split}_labels`` uint8 ``[N, 1]``.

    Deterministic in ``seed``; each split draws from its own stream, so it does not depend
    on the sizes of the others. ``size``: the side S (>= 8). ``n_samples``: split -> N
    (default ``SYNTHETIC_N_SAMPLES``).
    """
    counts = dict(SYNTHETIC_N_SAMPLES if n_samples is None else n_samples)
    unknown = sorted(set(counts) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; expected a subset of {SPLITS}")
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    out: dict[str, np.ndarray] = {}
    streams = np.random.SeedSequence(seed).spawn(len(SPLITS))
    for split, stream in zip(SPLITS, streams, strict=True):
        if split in counts:
            images, labels = _make_split(np.random.default_rng(stream), size, counts[split])
            out[f"{split}_images"], out[f"{split}_labels"] = images, labels
    return out


def write_npz_atomic(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` uncompressed to ``path`` via a temp file in the same directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.part-{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_synthetic(
    path: str | os.PathLike,
    seed: int = SYNTHETIC_SEED,
    size: int = 28,
    n_samples: Mapping[str, int] | None = None,
) -> Path:
    """Generate the dataset (see ``make_synthetic``) and write it atomically as ``.npz``."""
    return write_npz_atomic(path, make_synthetic(seed=seed, size=size, n_samples=n_samples))
