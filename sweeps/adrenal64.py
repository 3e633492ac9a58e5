"""The 64^3 recipe (`recipe=cpu,size=64`: one `scale=tiny` run of 80 epochs, EMA, TTA,
patches of 7 voxels, so 9 steps of 9 x 9 = 81 tokens as at 28^3) and the former one
(patch 4: 16 steps of 256 tokens, 20 epochs) on the five folds of the 28^3 search
(the 64^3 file has the same samples and labels in the same order, so the folds are
the same), for the 64^3 rows of docs/accuracy.md, paired by fold with the 28^3 recipe.

  python -m lmttm_jax.sweep --config=configs/adrenal.py:recipe=cpu,size=64 \
      --grid=sweeps/adrenal64.py --folds=5 --jobs=2 --workdir=runs/sweep-adrenal64
"""

POINTS = [
    {},  # the recipe as it is
    {"model.patch_size": 4, "train.epochs": 20},  # the former 64^3 recipe
]
