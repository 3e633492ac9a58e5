"""Random shifts, intensity scale/offset and mixup: off changes nothing, on changes
what it names (positions, intensities by a per-sample affine map, or samples and
targets blended pairwise) and nothing else."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lmttm_jax import config as config_lib
from lmttm_jax import train
from lmttm_jax.data import mix_targets, mixup, random_intensity, random_shift
from lmttm_jax.models import build_model
from tests import tiny
from tests.tiny import tiny_config


def volumes(n: int = 6, size: int = 8) -> jax.Array:
    """[n, size, size, size, 1] with a zero border of 2 voxels: shifts of <= 2 keep
    every nonzero voxel inside."""
    rng = np.random.default_rng(0)
    x = np.zeros((n, size, size, size, 1), np.float32)
    x[:, 2:-2, 2:-2, 2:-2] = rng.uniform(0.1, 1, (n, size - 4, size - 4, size - 4, 1))
    return jnp.asarray(x)


def test_shift_translates_each_sample_within_the_range():
    x = volumes()
    y = random_shift(jax.random.key(0), x, 2)
    assert y.shape == x.shape
    moved = 0
    for a, b in zip(np.asarray(x), np.asarray(y), strict=True):
        matches = [
            (dz, dy, dx)
            for dz in range(-2, 3)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(np.roll(a, (dz, dy, dx), axis=(0, 1, 2)), b)
        ]
        assert len(matches) == 1  # a pure translation by at most 2 voxels per axis
        moved += matches[0] != (0, 0, 0)
    assert moved >= 4


def test_intensity_is_a_per_sample_affine_map_within_the_amount():
    x = volumes()
    y = np.asarray(random_intensity(jax.random.key(1), x, 0.2))
    scales = []
    for a, b in zip(np.asarray(x), y, strict=True):
        scale, offset = np.polyfit(a.ravel(), b.ravel(), 1)
        np.testing.assert_allclose(b, a * scale + offset, atol=1e-5)
        assert 0.8 - 1e-6 <= scale <= 1.2 + 1e-6 and abs(offset) <= 0.2 + 1e-6
        scales.append(scale)
    assert np.ptp(scales) > 0.01  # drawn per sample


def test_mixup_blends_samples_and_targets_with_one_weight_each():
    x = volumes()
    y, partner, weight = mixup(jax.random.key(2), x, 0.4)
    partner, weight = np.asarray(partner), np.asarray(weight)
    assert sorted(partner) == list(range(len(x)))  # a permutation of the batch
    assert np.all((weight >= 0) & (weight <= 1)) and np.ptp(weight) > 0.01
    w = weight[:, None, None, None, None]
    np.testing.assert_allclose(y, w * x + (1 - w) * np.asarray(x)[partner], atol=1e-6)
    targets = jax.nn.one_hot(jnp.asarray([0, 1, 0, 1, 1, 0]), 2)
    mixed = np.asarray(mix_targets(targets, partner, weight))
    np.testing.assert_allclose(mixed.sum(1), 1, atol=1e-6)
    expected = weight[:, None] * targets + (1 - weight[:, None]) * np.asarray(targets)[partner]
    np.testing.assert_allclose(mixed, expected, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("field, value", [("shift", 2), ("intensity", 0.3), ("mixup", 0.4)])
def test_train_step_off_is_unchanged_and_on_changes_the_step(tmp_path, field, value):
    config = config_lib.validate_config(tiny_config(tmp_path))
    model = build_model(config.model, 2, 28)
    state = train.create_train_state(config, model, jax.random.key(0), 1)
    rng = np.random.default_rng(0)
    batch = {
        "image": jnp.asarray(rng.integers(0, 255, (4, 28, 28, 28), dtype=np.uint8)),
        "label": jnp.asarray([0, 1, 0, 1]),
    }
    args = dict(flip=False, rot90=False, label_smoothing=0.0)

    def loss(**extra):
        return float(tiny.train_step(state, batch, jax.random.key(3), **args, **extra)[1])

    base = loss()
    assert loss(**{field: 0}) == base  # off: the step is the one without the feature
    assert loss(**{field: value}) != base
