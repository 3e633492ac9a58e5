"""Dropout off on top of one run of the 28^3 recipe as it was (`recipe=cpu` without its
second member: `scale=tiny`, EMA 0.99, TTA, 80 epochs, dropout 0.2); the recipe has
turned dropout off since. Paired by
fold with that run's own folds (`sweeps/adrenal_budget.py`, first point: the same
config).

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu \
      --config.train.ensemble=0 --config.train.ensemble_jobs=1 \
      --grid=sweeps/adrenal_recipe_dropout.py --folds=5 --jobs=2 \
      --workdir=runs/sweep-adrenal-dropout
"""

POINTS = [
    {"model.dropout": 0.0},
]
