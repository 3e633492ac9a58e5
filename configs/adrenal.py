"""adrenalmnist3d: LMTTM on MedMNIST v2 AdrenalMNIST3D (28^3 by default).

Run: python main.py --config=configs/adrenal.py [--workdir=runs/adrenal]
CPU recipe: python main.py --config=configs/adrenal.py:scale=tiny (40 epochs).
Variants: configs/adrenal.py:model=ttm,size=64,scale=cpu (see configs/base.py).
Hardware, time and result (2-core CPU, `scale=tiny`, seed 0, validation only: the
shared copy has no test split): LMTTM val ACC 0.857 / AUC 0.819, 1695 s for 40
epochs while sharing the CPU with other jobs (fastest epoch 17.6 s); TTM val ACC
0.847 / AUC 0.822, 641 s. The reference width has not been run to the end here.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = base.dataset_config("adrenalmnist3d", arg)
    config.data.flip = True  # left and right glands share labels: flips keep the class
    if base.parse_variant(arg)["scale"] != "ref":  # the CPU recipe
        config.train.epochs = 40
        config.train.warmup_epochs = 2
        config.train.learning_rate = 1e-3
    return config
