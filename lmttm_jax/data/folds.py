"""K-fold cross-validation on train+val: stratified, fixed folds.

The folds depend only on the labels and `FOLD_SEED`, never on a run's seed, so every
model and seed sees the same folds. The test split takes no part.
"""

from __future__ import annotations

import numpy as np

FOLD_SEED = 0

Split = tuple[np.ndarray, np.ndarray]  # uint8 images [N, S, S, S], int labels [N]


def stratified_folds(labels: np.ndarray, folds: int, seed: int = FOLD_SEED) -> np.ndarray:
    """Fold index `[N]` in 0..folds-1 for integer labels `[N]`.

    Each class's samples are shuffled (`default_rng([seed, class])`) and dealt to the
    folds in turn, so every fold holds `n_c // folds` or one more of class c. The
    dealing starts where the previous class stopped, so fold sizes differ by at most
    one overall.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"stratified folds need labels [N], got shape {labels.shape}")
    if folds < 2 or folds > len(labels):
        raise ValueError(f"folds={folds}: expected 2 <= folds <= {len(labels)} (samples)")
    assignment = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[np.random.default_rng([seed, int(cls)]).permutation(len(idx))]
        assignment[idx] = (offset + np.arange(len(idx))) % folds
        offset = (offset + len(idx)) % folds
    return assignment


def pool(train: Split, val: Split) -> Split:
    """Train+val as one `(images, labels)`, train first (copied into memory once)."""
    images = np.concatenate([np.asarray(train[0]), np.asarray(val[0])])
    return images, np.concatenate([np.asarray(train[1]), np.asarray(val[1])])


def cross_validation_split(train: Split, val: Split, folds: int, fold: int) -> tuple[Split, Split]:
    """`((images, labels), (images, labels))`: the pooled train+val samples (`pool`)
    without and with the held-out `fold` of `folds`, as the train and val splits."""
    if not 0 <= fold < folds:
        raise ValueError(f"fold={fold}: expected 0 <= fold < folds={folds}")
    images, labels = pool(train, val)
    held_out = stratified_folds(labels, folds) == fold
    return (images[~held_out], labels[~held_out]), (images[held_out], labels[held_out])
