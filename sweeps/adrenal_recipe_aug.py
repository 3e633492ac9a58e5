"""Stronger augmentation on top of the 28^3 recipe (`recipe=cpu`: `scale=tiny`, EMA
0.99, TTA, 80 epochs), each point paired by fold with the recipe's own runs
(`sweeps/adrenal_budget.py`, first point: the same config).

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu \
      --grid=sweeps/adrenal_recipe_aug.py --folds=5 --jobs=2 --workdir=runs/sweep-adrenal-aug
"""

POINTS = [
    {"data.shift": 2},  # random translations of up to 2 voxels per axis
    {"data.mixup": 0.2},
]
