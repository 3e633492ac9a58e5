"""Second search of the AdrenalMNIST3D 28^3 recipe: weight averaging, test-time
augmentation, rotations, on the `scale=tiny` base (32 steps per epoch over 4 folds).

  python -m lmttm_jax.sweep --config=configs/adrenal.py:scale=tiny \
      --grid=sweeps/adrenal_features.py --folds=5 --workdir=runs/sweep-adrenal28-features
"""

POINTS = [
    {},  # the base, as in sweeps/adrenal.py (a separate workdir trains it again)
    {"train.ema_decay": 0.99, "data.tta": True},
    {"data.tta": True},  # flips at test time (the adrenal config trains with flips)
    {"train.ema_decay": 0.99},  # an average over about 3 epochs of steps
    {"train.ema_decay": 0.998},  # about 16 epochs
    {"data.rot90": True, "data.tta": True},  # rotations in training and at test time
    {"model.dropout": 0.0},  # the tiny scale trains with 0.2
    {  # configs/base.py `scale=cpu` exactly (sweeps/adrenal.py's width point keeps r=4)
        "model.dim": 128,
        "model.memory_tokens": 32,
        "model.tl_hidden_dim": 128,
        "model.mlp_dim": 384,
        "model.depth": 2,
        "model.read_tokens": 8,
    },
    {"data.shift": 2},  # random translations of up to 2 voxels per axis
    {"data.intensity": 0.1},  # per-sample intensity scale and offset of up to 10 %
    {"data.shift": 2, "data.intensity": 0.1},
    # the authors' PyTorch form (docs/lmttm.md): post-LN MDU, bias-free learners, no head
    # LayerNorm, Xavier init, LayerNorm eps 1e-5, zero initial memory
    {"model.form": "pytorch", "model.memory_init": "zeros"},
    # the PyTorch form with weight averaging and test-time flips (the two best above)
    {
        "model.form": "pytorch",
        "model.memory_init": "zeros",
        "train.ema_decay": 0.99,
        "data.tta": True,
    },
]
