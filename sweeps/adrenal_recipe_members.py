"""The 28^3 recipe without dropout, one run per point, paired by fold with its seed-0
member (`sweeps/adrenal_recipe_dropout.py`): the recipe's second member (seed 1; the
two members' averaged held-out probabilities score the recipe's ensemble), a third
member (seed 2), which scores an ensemble of three, the member trained 60 epochs
instead of 80 (the cosine decay ends at the last epoch), and TTM trained the same way
(`model=ttm` sets TTM's zero initial memory, as here), for the LMTTM-vs-TTM comparison
under the recipe.

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu \
      --config.train.ensemble=0 --config.train.ensemble_jobs=1 \
      --grid=sweeps/adrenal_recipe_members.py --folds=5 --jobs=2 \
      --workdir=runs/sweep-adrenal-members
"""

POINTS = [
    {"seed": 1},
    {"seed": 2},
    {"train.epochs": 60},
    {"model.name": "ttm", "model.memory_init": "zeros"},
]
