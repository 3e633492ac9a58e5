"""A screen of weight decay, the head and the memory's shape on the recipe's 40-epoch
member as it now is (`recipe=cpu` at 40 epochs, one run: `scale=tiny`, no dropout,
EMA 0.99, TTA): each point changes one field; paired by fold with the member's own
folds (`sweeps/adrenal_member_screen.py`, point `model.dropout=0.0`).

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu \
      --config.train.epochs=40 --config.train.ensemble=0 --config.train.ensemble_jobs=1 \
      --grid=sweeps/adrenal_member_shape.py --folds=5 --jobs=2 \
      --workdir=runs/sweep-adrenal-shape
"""

POINTS = [
    {"train.weight_decay": 0.1},  # recipe: 0.05
    {"model.head": "per_step"},  # a classifier on every step's output tokens
    {"model.num_units": 8},  # K: a ring of 8 memory units (recipe: 4)
    {"model.read_tokens": 8},  # r: 8 read tokens per unit (recipe: 4)
    {"model.memory_tokens": 32},  # W: 32 tokens per memory unit (recipe: 16)
]
