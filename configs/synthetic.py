"""synthetic3d: the project's own 3D shapes (rods along each axis, shells), offline.

Run: python main.py --config=configs/synthetic.py --workdir=runs/synthetic
The dataset file is generated on first use (deterministic, seed 0). This is the
`make demo` config: the `tiny` LMTTM (dim 64, 4 units of 16 tokens, r 4), 8 epochs.
Hardware, time and result: `make demo` on a clean clone, 2-core CPU: 289 s wall
including the virtualenv install. A fresh run of this config (2-core CPU, lightly
shared): 178 s wall including the data generation, the 8 epochs 150 s (64 s for the
first, with compilation); best validation epoch 6 (val ACC 0.975, AUC 0.999); test
ACC 0.988, AUC 0.999. Seeds 0-2 of LMTTM and TTM: docs/accuracy.md.
"""

import ml_collections

from lmttm_jax import recipes


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return recipes.dataset_config("synthetic", arg)
