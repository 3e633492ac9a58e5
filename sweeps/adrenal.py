"""First search of the AdrenalMNIST3D 28^3 CPU recipe (LMTTM, `scale=tiny` base).

  python -m lmttm_jax.sweep --config=configs/adrenal.py:scale=tiny \
      --grid=sweeps/adrenal.py --folds=5 --workdir=runs/sweep-adrenal28

Points run in this order, each through all folds: the cheap and most
informative first. Results: docs/accuracy.md.
"""

CPU_WIDTH = {
    "model.dim": 128,
    "model.memory_tokens": 32,
    "model.tl_hidden_dim": 128,
    "model.mlp_dim": 384,
    "model.depth": 2,
}

POINTS = [
    {},  # the budget recipe: tiny widths, 40 epochs, peak lr 1e-3, dropout 0.2
    {"train.learning_rate": 3e-3},
    {"model.dropout": 0.1},
    {"data.rot90": True},
    CPU_WIDTH,
    {"train.epochs": 80},
    {"train.weight_decay": 0.1},
    {"train.weight_decay": 0.01},
    {"train.label_smoothing": 0.1},
    {"model.head": "per_step"},
    {"model.num_units": 8},
    {"model.memory_tokens": 32},
    {"model.read_tokens": 8},
]
