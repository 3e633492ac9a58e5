"""synapsemnist3d: LMTTM on MedMNIST v2 SynapseMNIST3D (2 classes; 1230 train, 177 val, 352 test).

Run: python main.py --config=configs/synapse.py[:scale=tiny[,size=64]] --workdir=runs/synapse
Hardware, time and result: not trained here (no copy of the data offline); 2-core CPU
epoch estimated at 10 s (`tiny` 28^3), 55 s (`tiny` 64^3), 5.3 min (`ref` 28^3);
recipes and tables: docs/accuracy.md.
"""

import ml_collections

from lmttm_jax import recipes


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return recipes.dataset_config("synapse", arg)
