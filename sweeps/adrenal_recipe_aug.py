"""Stronger augmentation on top of one run of the 28^3 recipe (`recipe=cpu` without its
second member, with dropout 0.2 as it then had: `scale=tiny`, EMA 0.99, TTA, 80
epochs), each point paired by fold with
that run's own folds (`sweeps/adrenal_budget.py`, first point: the same config).

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu \
      --config.train.ensemble=0 --config.train.ensemble_jobs=1 --config.model.dropout=0.2 \
      --grid=sweeps/adrenal_recipe_aug.py --folds=5 --jobs=2 --workdir=runs/sweep-adrenal-aug
"""

POINTS = [
    {"data.shift": 2},  # random translations of up to 2 voxels per axis
    {"data.mixup": 0.2},
]
