"""The former `recipe=cpu` (three seed members of 30 epochs at 28^3, EMA, TTA,
averaged, dropout 0.2) on the five folds of the 28^3 search, for its cross-validation figure in
docs/accuracy.md (each fold's held-out AUC / ACC is the ensemble's).

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu \
      --config.train.ensemble=3 --config.train.ensemble_jobs=3 --config.train.epochs=30 \
      --config.model.dropout=0.2 --grid=sweeps/adrenal_recipe.py --folds=5 \
      --workdir=runs/sweep-adrenal-recipe
"""

POINTS = [{}]  # the former recipe as it was
