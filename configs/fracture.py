"""fracturemnist3d: LMTTM on MedMNIST v2 FractureMNIST3D (3 classes; 1027 train, 103 val, 240 test).

Run: python main.py --config=configs/fracture.py[:scale=tiny[,size=64]] --workdir=runs/fracture
Hardware, time and result: not trained here (no copy of the data offline); 2-core CPU
epoch estimated at 9 s (`tiny` 28^3), 45 s (`tiny` 64^3), 4.4 min (`ref` 28^3);
recipes and tables: docs/accuracy.md.
"""

import ml_collections

from lmttm_jax import recipes


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return recipes.dataset_config("fracture", arg)
