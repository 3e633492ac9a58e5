"""The 64^3 recipe as it was when these ran (`recipe=cpu,size=64` with the flags below:
one `scale=tiny` run of 80 epochs, dropout 0.2, EMA, TTA, patches of 7 voxels, so 9
steps of 9 x 9 = 81 tokens as at 28^3) and the former one (patch 4: 16 steps of 256
tokens, 20 epochs) on the five folds of the 28^3 search (the 64^3 file has the same
samples and labels in the same order, so the folds are the same), for the 64^3 rows of
docs/accuracy.md, paired by fold with the 28^3 recipe.

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu,size=64 \
      --config.train.ensemble=0 --config.train.ensemble_jobs=1 --config.train.epochs=80 \
      --config.model.dropout=0.2 --grid=sweeps/adrenal64.py --folds=5 --jobs=2 \
      --workdir=runs/sweep-adrenal64
"""

POINTS = [
    {},  # the 64^3 recipe as it was (the flags above)
    {"model.patch_size": 4, "train.epochs": 20},  # the former 64^3 recipe
]
