"""Training features on the AdrenalMNIST3D 28^3 CPU recipe (LMTTM, `scale=tiny` base):
weight averaging, test-time augmentation, rotations in training, and their mix.

  python -m lmttm_jax.sweep --config=configs/adrenal.py:scale=tiny \
      --grid=sweeps/adrenal_features.py --folds=5 --workdir=runs/sweep-adrenal28-features

`data.tta` averages the class probabilities over the views the dataset config allows
(flips for AdrenalMNIST3D; with `data.rot90` the quarter turns too), for the
held-out fold as for test. Not run yet.
"""

POINTS = [
    {},  # the budget recipe, for a paired comparison in the same workdir
    {"train.ema_decay": 0.99},
    {"train.ema_decay": 0.999},
    {"data.tta": True},
    {"train.ema_decay": 0.99, "data.tta": True},
    {"data.rot90": True, "data.tta": True},
    {"train.ema_decay": 0.99, "data.rot90": True, "data.tta": True},
]
