"""AdrenalMNIST3D, 5-fold CV on train+val: the CPU recipe's member (80 epochs, EMA, TTA,
no dropout, seed 0) as it is against the VesselMNIST3D recipe's class balance (balanced
batches with the training prior kept), to ask whether one recipe serves both datasets.

MEDMNIST_ROOT=../shared/data/medmnist python -m lmttm_jax.sweep \
    --config=configs/adrenal.py:recipe=cpu --config.train.ensemble=0 \
    --config.train.ensemble_jobs=1 --grid=sweeps/adrenal_balance.py --folds=5 --jobs=2 \
    --workdir=runs/sweep-adrenal-balance
"""

POINTS = [
    {},
    {"train.class_balance": "batches", "train.keep_prior": True},
]
