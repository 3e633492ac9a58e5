"""A longer weight average on top of the 28^3 recipe (`recipe=cpu`: `scale=tiny`, EMA
0.99, TTA, 80 epochs): decay 0.998 averages about the last 500 steps (16 epochs of 32
steps) where 0.99 averages about 100 (3 epochs). Paired by fold with the recipe's own
runs (`sweeps/adrenal_budget.py`, first point: the same config).

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu \
      --grid=sweeps/adrenal_recipe_ema.py --folds=5 --jobs=2 --workdir=runs/sweep-adrenal-ema
"""

POINTS = [
    {"train.ema_decay": 0.998},
]
