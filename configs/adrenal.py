"""adrenalmnist3d: LMTTM on MedMNIST v2 AdrenalMNIST3D (28^3 by default).

Run: python main.py --config=configs/adrenal.py [--workdir=runs/adrenal]
CPU recipe: python main.py --config=configs/adrenal.py:scale=tiny (40 epochs).
Variants: configs/adrenal.py:model=ttm,size=64,scale=cpu (see configs/base.py).
Hardware, time and result (2-core CPU, `scale=tiny`, validation only: the shared
copy has no test split), `python -m lmttm_jax.reproduce --datasets=adrenalmnist3d
--models=lmttm,ttm --seeds=3 --variant=scale=tiny`: LMTTM val ACC 0.871 +- 0.019 /
AUC 0.826 +- 0.005 (seeds 0-2: 0.857/0.819, 0.898/0.832, 0.857/0.827), 920-1695 s
per seed for 40 epochs with the CPU shared by other jobs (fastest epoch 10.1 s);
TTM val ACC 0.854 +- 0.005 / AUC 0.818 +- 0.003, 508-754 s per seed. Seed 0 of both
ran before the cached LMTTM formulation (same function, other dropout masks).
The reference width has not been run to the end here.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = base.dataset_config("adrenalmnist3d", arg)
    config.data.flip = True  # left and right glands share labels: flips keep the class
    return config
