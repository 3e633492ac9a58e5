"""adrenalmnist3d: LMTTM on MedMNIST v2 AdrenalMNIST3D (2 classes; 1188 train, 98 val, 298 test).

Run: python main.py --config=configs/adrenal.py:scale=tiny --workdir=runs/adrenal (the CPU
recipe, 40 epochs; `:scale=tiny,size=64` 20 epochs at 64^3; no variant: the reference
width, 100 epochs, not run to the end here).
Hardware, time and result: 2-core CPU, `scale=tiny` 28^3, 6-7 min per run on an idle CPU;
validation ACC 0.871 +- 0.019 / AUC 0.826 +- 0.005 over seeds 0-2 (the shared copy has
no test split). `:recipe=cpu` (provisional, 3 tiny members of 30 epochs side by side, EMA,
TTA): 18 min 26 s on an idle CPU, validation ensemble AUC 0.839 / ACC 0.878 (the
selection split).
64^3, 5-fold cross-validation and TTM: docs/accuracy.md.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    # Left and right glands share labels: flips keep the class.
    return base.dataset_config("adrenalmnist3d", arg, flip=True)
