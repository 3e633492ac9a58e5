"""The search grid for LMTTM on AdrenalMNIST3D 28^3, from `configs/adrenal.py:scale=tiny`.

  python -m lmttm_jax.sweep --config=configs/adrenal.py:scale=tiny \
      --grid=sweeps/adrenal.py --folds=5 --workdir=sweeps-out/adrenal28

Each point changes the tiny recipe (dim 64, 4 x 16 memory tokens, r 4, depth 1,
40 epochs, peak learning rate 1e-3, weight decay 0.05, flips) in one respect, the
most informative first: the baseline, the `cpu` widths, then the recipe's knobs.
"""

CPU_WIDTHS = {
    "model.dim": 128,
    "model.memory_tokens": 32,
    "model.tl_hidden_dim": 128,
    "model.mlp_dim": 384,
    "model.depth": 2,
}

POINTS = [
    {},
    CPU_WIDTHS,
    {"train.learning_rate": 3e-3},
    {"train.epochs": 80},
    {"train.weight_decay": 0.1},
    {"train.weight_decay": 0.01},
    {"model.dropout": 0.1},
    {"train.label_smoothing": 0.1},
    {"data.rot90": True},
    {"model.head": "per_step"},
    {"model.num_units": 8},
    {"model.memory_tokens": 32},
    {"model.read_tokens": 8},
]
