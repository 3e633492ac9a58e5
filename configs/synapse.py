"""synapsemnist3d: LMTTM on MedMNIST v2 synapsemnist3d (28^3 by default).

Run: python main.py --config=configs/synapse.py [--workdir=runs/synapse]
Variants: configs/synapse.py:model=ttm,size=64,scale=cpu (see configs/base.py).
Hardware, time and result: not measured yet.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = base.dataset_config("synapsemnist3d", arg)
    config.data.flip = True
    return config
