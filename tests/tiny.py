"""The tiny model and training setup the tests share: seconds per epoch on a 2-core CPU."""

from pathlib import Path

import ml_collections

from configs import synthetic

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


def tiny_config(root: Path, variant: str = "", **train) -> ml_collections.ConfigDict:
    """The synthetic config with the tiny model, data under `root`, `train` overrides."""
    config = synthetic.get_config(variant)
    config.data.root = str(root)
    config.model.update(TINY_MODEL)
    defaults = dict(batch_size=16, learning_rate=3e-3, warmup_epochs=0)
    config.train.update(defaults | train)
    return config
