"""Random intensity scale and offset on the recipe's 40-epoch member as it now is
(`recipe=cpu` at 40 epochs, one run: `scale=tiny`, no dropout, EMA 0.99, TTA), paired
by fold with the member's own folds (`sweeps/adrenal_member_screen.py`, point
`model.dropout=0.0`).

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu \
      --config.train.epochs=40 --config.train.ensemble=0 --config.train.ensemble_jobs=1 \
      --grid=sweeps/adrenal_member_intensity.py --folds=5 --jobs=2 \
      --workdir=runs/sweep-adrenal-intensity
"""

POINTS = [
    {"data.intensity": 0.1},  # x * (1 + a) + b, a and b uniform in [-0.1, 0.1]
]
