"""vesselmnist3d: LMTTM on MedMNIST v2 VesselMNIST3D (2 classes; 1335 train, 191 val, 382 test).

Run: python main.py --config=configs/vessel.py[:scale=tiny[,size=64]] --workdir=runs/vessel
Hardware, time and result: not trained here (no copy of the data offline); 2-core CPU
epoch estimated at 11 s (`tiny` 28^3), 59 s (`tiny` 64^3), 5.7 min (`ref` 28^3);
recipes and tables: docs/accuracy.md.
"""

import ml_collections

from lmttm_jax import recipes


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return recipes.dataset_config("vessel", arg)
