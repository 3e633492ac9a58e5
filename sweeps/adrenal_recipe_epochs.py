"""Fewer epochs for the 28^3 recipe's member (one run, seed 0, no dropout, EMA 0.99,
TTA; the cosine decay ends at the last epoch), paired by fold with its 80-epoch runs
(`sweeps/adrenal_recipe_dropout.py`).

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu \
      --config.train.ensemble=0 --config.train.ensemble_jobs=1 \
      --grid=sweeps/adrenal_recipe_epochs.py --folds=5 --jobs=2 \
      --workdir=runs/sweep-adrenal-epochs
"""

POINTS = [
    {"train.epochs": 60},
]
