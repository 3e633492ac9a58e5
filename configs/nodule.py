"""nodulemnist3d: LMTTM on MedMNIST v2 NoduleMNIST3D (2 classes; 1158 train, 165 val, 310 test).

Run: python main.py --config=configs/nodule.py[:scale=tiny[,size=64]] --workdir=runs/nodule
Hardware, time and result: not trained here (no copy of the data offline); 2-core CPU
epoch estimated at 10 s (`tiny` 28^3), 52 s (`tiny` 64^3), 5.0 min (`ref` 28^3);
recipes and tables: docs/accuracy.md.
"""

import ml_collections

from lmttm_jax import recipes


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return recipes.dataset_config("nodule", arg)
