"""The tiny model and training setup the tests share: seconds per epoch on a 2-core CPU."""

import inspect
from pathlib import Path

import jax
import ml_collections

from configs import synthetic
from lmttm_jax import train
from lmttm_jax.data import write_synthetic

TINY_MODEL = dict(
    dim=32,
    memory_tokens=8,
    tl_hidden_dim=32,
    mlp_dim=64,
    depth=1,
    num_heads=4,
    read_tokens=4,
    dropout=0.0,
)


# `train.train_step` as one compiled program, its keyword-only arguments (the step's
# settings) static: one compile is cheaper than running the step op by op, whose first
# call compiles each op.
train_step = jax.jit(
    train.train_step,
    static_argnames=[
        name
        for name, p in inspect.signature(train.train_step).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    ],
)


def tiny_config(root: Path, variant: str = "", **train) -> ml_collections.ConfigDict:
    """The synthetic config with the tiny model, data under `root`, `train` overrides."""
    config = synthetic.get_config(variant)
    config.data.root = str(root)
    config.model.update(TINY_MODEL)
    defaults = dict(batch_size=16, learning_rate=3e-3, warmup_epochs=0)
    config.train.update(defaults | train)
    return config


def write_small_synthetic(root: Path) -> Path:
    """A 28^3 synthetic dataset of 32 / 16 / 16 samples under `root`; returns `root`."""
    n = {"train": 32, "val": 16, "test": 16}
    write_synthetic(root / "synthetic3d.npz", seed=0, size=28, n_samples=n)
    return root
