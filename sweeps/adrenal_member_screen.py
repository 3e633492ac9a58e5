"""A screen of the training and model fields on the recipe's 40-epoch member
(`recipe=cpu` at 40 epochs, one run, dropout 0.2 as the recipe then had:
`scale=tiny`, EMA 0.99, TTA): each point changes
one field; paired by fold with that member's own folds (`sweeps/adrenal_features.py`,
first point: the same config). A point that beats the member is then to be scored on
top of the 80-epoch recipe. Its last three points were not run with dropout 0.2; they
were scored without dropout in `sweeps/adrenal_member_shape.py`.

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu \
      --config.train.epochs=40 --config.train.ensemble=0 --config.train.ensemble_jobs=1 \
      --config.model.dropout=0.2 --grid=sweeps/adrenal_member_screen.py --folds=5 --jobs=2 \
      --workdir=runs/sweep-adrenal-screen
"""

POINTS = [
    {"train.learning_rate": 2e-3},  # peak of the cosine schedule (recipe: 1e-3)
    {"model.dropout": 0.1},  # recipe: 0.2
    {"model.dropout": 0.0},
    {"train.weight_decay": 0.1},  # recipe: 0.05
    {"model.head": "per_step"},  # a classifier on every step's output tokens
    {"model.num_units": 8},  # memory ring of 8 units (recipe: 4)
]
