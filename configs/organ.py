"""organmnist3d: LMTTM on MedMNIST v2 organmnist3d (28^3 by default).

Run: python main.py --config=configs/organ.py [--workdir=runs/organ]
Variants: configs/organ.py:model=ttm,size=64,scale=cpu (see configs/base.py).
Hardware, time and result: not measured yet.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = base.dataset_config("organmnist3d", arg)
    # No flips: the classes include left/right organs (kidney, femur, lung).
    return config
