"""A longer weight average on top of one run of the 28^3 recipe (`recipe=cpu` without
its second member, with dropout 0.2 as it then had: `scale=tiny`, EMA 0.99, TTA, 80
epochs): decay 0.998 averages about the last 500 steps (16 epochs of 32 steps) where
0.99 averages about 100 (3 epochs).
Paired by fold with that run's own folds (`sweeps/adrenal_budget.py`, first point: the
same config).

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu \
      --config.train.ensemble=0 --config.train.ensemble_jobs=1 --config.model.dropout=0.2 \
      --grid=sweeps/adrenal_recipe_ema.py --folds=5 --jobs=2 --workdir=runs/sweep-adrenal-ema
"""

POINTS = [
    {"train.ema_decay": 0.998},
]
