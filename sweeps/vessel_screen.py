"""VesselMNIST3D, 5-fold CV on train+val: one 40-epoch member of the CPU recipe (EMA,
TTA, no dropout) against what an 11 %-positive set may need, and the baselines (TTM
and ResNet-18 3D here without the class balance; not run).

MEDMNIST_ROOT=../shared/data/medmnist python -m lmttm_jax.sweep \
    --config=configs/vessel.py:recipe=cpu --config.train.ensemble=0 \
    --config.train.ensemble_jobs=1 --config.train.class_balance=none \
    --config.train.keep_prior=False --grid=sweeps/vessel_screen.py --folds=5 --jobs=2 \
    --workdir=runs/sweep-vessel28-screen
"""

POINTS = [
    {},
    {"train.class_balance": "loss"},
    {"train.class_balance": "batches"},
    {"train.focal_gamma": 2.0},
    {"model.name": "ttm", "model.memory_init": "zeros"},
    {"model.name": "resnet18_3d", "model.dim": 8},
]
