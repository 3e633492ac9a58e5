"""How the recipe's member (`scale=tiny`, EMA 0.99, TTA) spends the 20-minute budget.
At 28^3 it trains 40 epochs in about 7 minutes on a 2-core CPU and selected late
epochs (24-40), so there is room for more; at 64^3 patch 4 (16 steps of 256 tokens)
fits only 20 epochs in the budget, so patch 8 (8 steps of 64 tokens, far fewer
tokens) is tried with 40.

  python -m lmttm_jax.sweep --config=configs/adrenal.py:scale=tiny \
      --grid=sweeps/adrenal_budget.py --folds=5 --workdir=runs/sweep-adrenal-budget
"""

MEMBER = {"train.ema_decay": 0.99, "data.tta": True}

POINTS = [
    {**MEMBER, "train.epochs": 80},
    {**MEMBER, "data.size": 64, "model.patch_size": 8},
]
