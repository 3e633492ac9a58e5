"""vesselmnist3d: LMTTM on MedMNIST v2 vesselmnist3d (28^3 by default).

Run: python main.py --config=configs/vessel.py [--workdir=runs/vessel]
Variants: configs/vessel.py:model=ttm,size=64,scale=cpu (see configs/base.py).
Hardware, time and result: not measured yet.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = base.dataset_config("vesselmnist3d", arg)
    config.data.flip = True
    return config
