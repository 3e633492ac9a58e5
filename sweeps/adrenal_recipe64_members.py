"""Seeds and epochs of the 64^3 recipe's runs, one run per fold: averaging two points'
held-out probabilities scores a two-member 64^3 ensemble, as at 28^3. Seed 1 at 80
epochs pairs with seed 0 at 80 (the 64^3 recipe before, whose folds are
`sweeps/adrenal_recipe_dropout.py` at this size); seeds 0 and 1 at 60 epochs are the
members of `recipe=cpu,size=64` as it now is (the config gives 60 epochs; the points
spell them out so that they stay apart from the 80-epoch runs in one workdir).

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu,size=64 \
      --config.train.ensemble=0 --config.train.ensemble_jobs=1 \
      --grid=sweeps/adrenal_recipe64_members.py --folds=5 --jobs=2 \
      --workdir=runs/sweep-adrenal-members64
"""

POINTS = [
    {"seed": 1, "train.epochs": 80},
    {"train.epochs": 60},
    {"train.epochs": 60, "seed": 1},
]
