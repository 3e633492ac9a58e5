"""TTM on the folds of the LMTTM search (paired by fold: same folds, same seed, same
recipe), for the LMTTM-vs-TTM comparison in docs/accuracy.md.

  python -m lmttm_jax.sweep --config=configs/adrenal.py:scale=tiny,model=ttm \
      --grid=sweeps/adrenal_ttm.py --folds=5 --workdir=runs/sweep-adrenal28-ttm
"""

POINTS = [
    {},  # `scale=tiny,model=ttm`: the LMTTM base point's recipe with the TTM model
    {"train.ema_decay": 0.99, "data.tta": True},  # the `recipe=cpu` member's features
]
