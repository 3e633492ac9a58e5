"""The 28^3 recipe's two seeds averaged, as scored with dropout 0.2 (before the recipe
turned dropout off) (`train.ensemble=2`: seeds 0 and 1, each
`scale=tiny`, EMA 0.99, TTA, 80 epochs, selected on the held-out fold; the fold's
figures are those of the averaged probabilities), paired by fold with one run of it
(`sweeps/adrenal_budget.py`, first point: seed 0 alone). Scored with the members of a
fold one after the other, inside the fold's process (`ensemble_jobs=1`); the recipe
itself trains them side by side.

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu \
      --config.train.ensemble_jobs=1 --config.model.dropout=0.2 \
      --grid=sweeps/adrenal_recipe_ensemble.py --folds=5 --jobs=2 \
      --workdir=runs/sweep-adrenal-ensemble
"""

POINTS = [
    {"train.ensemble": 2},
]
