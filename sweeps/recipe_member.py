"""One point: a config as given, scored by K-fold CV on train+val (the README's results
table: each dataset's recipe member, LMTTM or TTM).

MEDMNIST_ROOT=../shared/data/medmnist python -m lmttm_jax.sweep \
    --config=configs/vessel.py:recipe=cpu,model=ttm --config.train.ensemble=0 \
    --config.train.ensemble_jobs=1 --grid=sweeps/recipe_member.py --folds=5 --jobs=2 \
    --workdir=runs/cv-vessel-ttm
"""

POINTS = [{}]
