"""organmnist3d: LMTTM on MedMNIST v2 OrganMNIST3D (11 classes; 971 train, 161 val, 610 test).

Run: python main.py --config=configs/organ.py [--workdir=runs/organ]   (`ref`, 100 epochs)
CPU recipe: python main.py --config=configs/organ.py:scale=tiny   (40 epochs at 28^3,
20 at 64^3; `size=64` for 64^3). Variants: model=ttm|resnet18_3d, size, scale
(see configs/base.py); recipes and times of all six datasets: docs/accuracy.md.
Hardware, time and result: not trained here (no copy of the data offline). Time per
epoch on a 2-core CPU, estimated from the measured AdrenalMNIST3D epochs and the
training-set size: `tiny` 28^3 about 8 s, `tiny` 64^3 about 43 s, `ref` 28^3
about 4.2 min. Result: not measured.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = base.dataset_config("organmnist3d", arg)
    # No flips: the classes include left/right organs (kidney, femur, lung).
    return config
