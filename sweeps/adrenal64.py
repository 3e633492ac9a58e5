"""The `recipe=cpu,size=64` run (one `scale=tiny` member of 20 epochs at 64^3, EMA,
TTA) on the five folds of the 28^3 search (the 64^3 file has the same samples and
labels in the same order, so the folds are the same), for the 64^3 row of
docs/accuracy.md, paired by fold with the 28^3 member.

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu,size=64 \
      --grid=sweeps/adrenal64.py --folds=5 --workdir=runs/sweep-adrenal64
"""

POINTS = [{}]  # the recipe as it is
