"""The 64^3 recipe's second seed (`recipe=cpu,size=64` is one run, seed 0; its folds are
`sweeps/adrenal_recipe_dropout.py` at that size), one run per fold: the two seeds'
averaged held-out probabilities score a two-member 64^3 ensemble, as at 28^3.

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu,size=64 \
      --grid=sweeps/adrenal_recipe64_members.py --folds=5 --jobs=2 \
      --workdir=runs/sweep-adrenal-members64
"""

POINTS = [
    {"seed": 1},
]
