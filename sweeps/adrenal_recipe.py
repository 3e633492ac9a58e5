"""The `recipe=cpu` run as it is (three seed members of 30 epochs at 28^3, EMA, TTA,
averaged) on the five folds of the 28^3 search, for the recipe's own cross-validation
figure in docs/accuracy.md (each fold's held-out AUC / ACC is the ensemble's).

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu \
      --grid=sweeps/adrenal_recipe.py --folds=5 --workdir=runs/sweep-adrenal-recipe
"""

POINTS = [{}]  # the recipe as it is
