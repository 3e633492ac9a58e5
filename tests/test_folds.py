"""Cross-validation folds: stratified, fixed, disjoint, covering train+val."""

import numpy as np
import pytest

from configs import adrenal
from lmttm_jax import config as config_lib
from lmttm_jax.data import cross_validation_split, stratified_folds


def labels_of(counts):
    return np.concatenate([np.full(n, c, dtype=np.int32) for c, n in enumerate(counts)])


def test_folds_are_stratified_balanced_and_fixed():
    labels = np.random.default_rng(3).permutation(labels_of([929 + 76, 259 + 22]))
    folds = stratified_folds(labels, 5)
    assert folds.shape == labels.shape and set(np.unique(folds)) == set(range(5))
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 1
    for cls in (0, 1):
        per_fold = np.bincount(folds[labels == cls], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1
    np.testing.assert_array_equal(folds, stratified_folds(labels, 5))
    assert not np.array_equal(folds, stratified_folds(labels, 5, seed=1))


def test_held_out_folds_partition_train_plus_val():
    rng = np.random.default_rng(0)
    images = np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1) * np.ones((1, 2, 2, 2), np.uint8)
    labels = rng.integers(0, 3, 50).astype(np.int32)
    train, val = (images[:40], labels[:40]), (images[40:], labels[40:])
    seen = []
    for fold in range(4):
        (tr_x, tr_y), (va_x, va_y) = cross_validation_split(train, val, 4, fold)
        assert len(tr_x) + len(va_x) == 50 and len(tr_y) == len(tr_x)
        held, kept = set(va_x[:, 0, 0, 0]), set(tr_x[:, 0, 0, 0])
        assert not held & kept
        ids = va_x[:, 0, 0, 0].astype(int)
        np.testing.assert_array_equal(va_y, labels[ids])
        seen.extend(ids)
    assert sorted(seen) == list(range(50))


def test_bad_fold_arguments_name_the_problem():
    labels = labels_of([6, 4])
    with pytest.raises(ValueError, match="folds=1"):
        stratified_folds(labels, 1)
    with pytest.raises(ValueError, match="labels \\[N\\]"):
        stratified_folds(labels[:, None], 2)
    split = (np.zeros((10, 1, 1, 1), np.uint8), labels)
    with pytest.raises(ValueError, match="fold=5"):
        cross_validation_split(split, split, 5, 5)


@pytest.mark.parametrize(
    "folds,fold,field", [(1, 0, "data.folds"), (5, 5, "data.fold"), (0, 2, "data.fold")]
)
def test_config_check_rejects_bad_folds(folds, fold, field):
    config = adrenal.get_config("scale=tiny")
    config.data.folds, config.data.fold = folds, fold
    with pytest.raises(config_lib.ConfigError, match=f"config.{field}="):
        config_lib.validate_config(config)
    config.data.folds, config.data.fold = 5, 4
    config_lib.validate_config(config)
