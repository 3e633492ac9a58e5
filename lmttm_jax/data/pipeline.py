"""Host-side batching (shuffling, padding + masks) and on-device preprocessing/augmentation.

A ``Batch`` is a dict with ``image`` uint8 ``[B, S, S, S]``, ``label`` int32 ``[B]`` and
``mask`` bool ``[B]`` (False marks padding). ``preprocess`` and ``augment`` are JAX functions
meant to run inside the jitted train/eval step.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

Batch = dict[str, np.ndarray]

# (plane, k) for every 90-degree rotation; plane indexes the spatial axis pairs of a volume.
_PLANES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2))


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    """Number of batches of ``batch_size`` over ``n`` samples (partial one kept unless dropped)."""
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def _check_pair(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Labels ``[N]`` or ``[N, 1]`` -> int32 ``[N]``, checking N against the images."""
    labels = np.asarray(labels).reshape(len(labels), -1)
    if labels.shape[1] != 1 or len(labels) != len(images):
        raise ValueError(f"{len(images)} images but labels of shape {labels.shape}")
    return labels[:, 0].astype(np.int32)


def train_batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    seed: int,
    epoch: int,
    balanced: bool = False,
) -> Iterator[Batch]:
    """Shuffled full batches for one epoch; the last partial batch is dropped.

    The order is a permutation drawn from ``default_rng([seed, epoch])``. Yields
    ``len(images) // batch_size`` batches with all-True masks. With ``balanced``, the
    epoch's ``N`` samples are drawn with replacement instead, each with probability
    proportional to ``1 / n_c`` of its class, so every class fills the same share of the
    batches on average.

    Args:
      images: ``[N, S, S, S]`` (any array indexable with an int array, e.g. a memmap).
      labels: ``[N]`` or ``[N, 1]`` integers.
    """
    labels = _check_pair(images, labels)
    rng = np.random.default_rng([seed, epoch])
    if balanced:
        _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        p = 1.0 / counts[inverse]
        order = rng.choice(len(images), size=len(images), p=p / p.sum())
    else:
        order = rng.permutation(len(images))
    for step in range(num_batches(len(images), batch_size, drop_last=True)):
        idx = order[step * batch_size : (step + 1) * batch_size]
        mask = np.ones(batch_size, bool)
        yield {"image": np.asarray(images[idx]), "label": labels[idx], "mask": mask}


def _pad(x: np.ndarray, batch_size: int) -> np.ndarray:
    """Zero-pad ``[b, ...]`` to ``[batch_size, ...]`` along axis 0."""
    if len(x) == batch_size:  # every batch but the last: no copy
        return x
    return np.pad(x, [(0, batch_size - len(x))] + [(0, 0)] * (x.ndim - 1))


def balanced_batch_size(n: int, batch_size: int, multiple: int = 1) -> int:
    """The size of the fewest batches of at most ``batch_size`` over ``n`` samples, made
    as equal as they can be: ``ceil(n / ceil(n / batch_size))`` rounded up to a multiple
    of ``multiple`` (a divisor of ``batch_size``). 98 samples at most 64 a batch: two
    of 49, not 64 + 34 padded to 64."""
    if n <= 0:
        return batch_size
    size = math.ceil(n / num_batches(n, batch_size, drop_last=False))
    return min(batch_size, math.ceil(size / multiple) * multiple)


def eval_batches(
    images: np.ndarray, labels: np.ndarray, batch_size: int, multiple: int = 1
) -> Iterator[Batch]:
    """Batches in order covering every sample exactly once: ``ceil(N / batch_size)``
    batches, all of one `balanced_batch_size` (so shapes stay static); the last one is
    zero-padded and its ``mask`` is False on the padding."""
    labels = _check_pair(images, labels)
    batch_size = balanced_batch_size(len(images), batch_size, multiple)
    for step in range(num_batches(len(images), batch_size, drop_last=False)):
        sl = slice(step * batch_size, (step + 1) * batch_size)
        x, y = np.asarray(images[sl]), labels[sl]
        mask = np.arange(batch_size) < len(x)
        yield {"image": _pad(x, batch_size), "label": _pad(y, batch_size), "mask": mask}


def preprocess(images: jax.Array | np.ndarray) -> jax.Array:
    """uint8 ``[B, S, S, S]`` -> float32 ``[B, S, S, S, 1]`` in ``[0, 1]`` (jit-friendly)."""
    return (jnp.asarray(images).astype(jnp.float32) / 255.0)[..., None]


def _flip_one(rng: jax.Array, volume: jax.Array) -> jax.Array:
    """Flip a ``[S, S, S, C]`` volume along each spatial axis with probability 0.5."""
    bits = jax.random.bernoulli(rng, 0.5, (3,))
    for axis in range(3):
        volume = jnp.where(bits[axis], jnp.flip(volume, axis), volume)
    return volume


def _rot90_one(rng: jax.Array, volume: jax.Array) -> jax.Array:
    """Rotate a cubic ``[S, S, S, C]`` volume by k*90 degrees (k in 0..3) in one random plane."""
    branches = [
        (lambda v, k=k, axes=axes: jnp.rot90(v, k, axes)) for axes in _PLANES for k in range(4)
    ]
    index = jax.random.randint(rng, (), 0, len(branches))
    return jax.lax.switch(index, branches, volume)


def augment(rng: jax.Array, images: jax.Array, flip: bool = True, rot90: bool = True) -> jax.Array:
    """Per-sample random flips and 90-degree rotations of cubic volumes, on device:
    ``[B, S, S, S, C] -> [B, S, S, S, C]``.

    ``flip`` (static): along each spatial axis with probability 0.5. ``rot90`` (static):
    0..3 quarter turns in one of the three axis planes, plane and turns drawn per sample.
    """
    if not (flip or rot90):
        return images
    if images.ndim != 5 or not images.shape[1] == images.shape[2] == images.shape[3]:
        raise ValueError(f"augment expects cubic [B, S, S, S, C] volumes, got {images.shape}")
    flip_rng, rot_rng = jax.random.split(rng)
    n = images.shape[0]
    if flip:
        images = jax.vmap(_flip_one)(jax.random.split(flip_rng, n), images)
    if rot90:
        images = jax.vmap(_rot90_one)(jax.random.split(rot_rng, n), images)
    return images


def random_shift(rng: jax.Array, images: jax.Array, max_shift: int) -> jax.Array:
    """Per-sample translation by 0..`max_shift` voxels along each spatial axis (either
    way), zeros shifted in: ``[B, S, S, S, C] -> [B, S, S, S, C]``."""
    s = max_shift
    offsets = jax.random.randint(rng, (images.shape[0], 3), 0, 2 * s + 1)
    padded = jnp.pad(images, ((0, 0), (s, s), (s, s), (s, s), (0, 0)))
    size = images.shape[1:]

    def crop(volume: jax.Array, start: jax.Array) -> jax.Array:  # [S+2s, ..., C] -> [S, ..., C]
        return jax.lax.dynamic_slice(volume, (*start, 0), size)

    return jax.vmap(crop)(padded, offsets)


def random_intensity(rng: jax.Array, images: jax.Array, amount: float) -> jax.Array:
    """Per-sample intensity ``x * (1 + a) + b`` with a, b uniform in [-amount, amount]:
    ``[B, S, S, S, C] -> [B, S, S, S, C]``."""
    ab = jax.random.uniform(rng, (2, images.shape[0], 1, 1, 1, 1), minval=-amount, maxval=amount)
    return images * (1 + ab[0]) + ab[1]


def mixup(rng: jax.Array, images: jax.Array, alpha: float) -> tuple[jax.Array, ...]:
    """Mixup: each sample blended with a partner drawn from the batch (a random
    permutation), ``w * x + (1 - w) * x[partner]`` with a weight w ~ Beta(alpha, alpha)
    per sample. ``[B, S, S, S, C] -> ([B, S, S, S, C], partner [B], w [B])``; the
    targets are mixed by `mix_targets` with the same partner and weight."""
    perm_rng, weight_rng = jax.random.split(rng)
    n = images.shape[0]
    partner = jax.random.permutation(perm_rng, n)
    weight = jax.random.beta(weight_rng, alpha, alpha, (n,))
    w = weight.reshape((n,) + (1,) * (images.ndim - 1))
    return w * images + (1 - w) * images[partner], partner, weight


def mix_targets(targets: jax.Array, partner: jax.Array, weight: jax.Array) -> jax.Array:
    """Targets ``[B, C]`` mixed as `mixup` mixed their samples -> ``[B, C]``."""
    return weight[:, None] * targets + (1 - weight[:, None]) * targets[partner]


def tta_views(images: jax.Array, flip: bool, rot90: bool) -> list[jax.Array]:
    """The label-preserving views of ``[B, S, S, S, C]`` volumes that test-time
    augmentation averages over: the volumes, then with `flip` the 7 other flip
    combinations of the three spatial axes, with `rot90` the 9 quarter-turn rotations
    (1-3 turns in each axis plane). Each is a transform `augment` trains with.
    """
    views = [images]
    if flip:
        subsets = [axes for n in (1, 2, 3) for axes in itertools.combinations((1, 2, 3), n)]
        views += [jnp.flip(images, axes) for axes in subsets]
    if rot90:
        planes = [(a + 1, b + 1) for a, b in _PLANES]  # spatial planes after the batch axis
        views += [jnp.rot90(images, k, axes) for axes in planes for k in (1, 2, 3)]
    return views
