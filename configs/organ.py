"""organmnist3d: LMTTM on MedMNIST v2 OrganMNIST3D (11 classes; 971 train, 161 val, 610 test).

Run: python main.py --config=configs/organ.py[:scale=tiny[,size=64]] --workdir=runs/organ
Hardware, time and result: not trained here (no copy of the data offline); 2-core CPU
epoch estimated at 8 s (`tiny` 28^3), 43 s (`tiny` 64^3), 4.2 min (`ref` 28^3);
recipes and tables: docs/accuracy.md.
"""

import ml_collections

from lmttm_jax import recipes


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return recipes.dataset_config("organ", arg)
