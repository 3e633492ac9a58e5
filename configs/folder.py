"""folder: LMTTM on your own volumes, listed in `<data.root>/labels.csv`.

Run: python main.py --config=configs/folder.py:scale=tiny --config.data.root=DIR
`DIR/labels.csv` has the columns `file,label` and optionally `split` (train/val/test);
files are .npy/.npz/.nii/.nii.gz paths relative to DIR. Without a split column each
class is split 70/10/20 by `seed`. Classes are the sorted label names. The volumes are
converted as `--mode=predict` converts them, once, into `DIR/.lmttm_cache/`
(lmttm_jax/data/folder.py). Variants as for every dataset (configs/base.py):
model=lmttm|ttm|resnet18_3d, size=28|64, scale=ref|cpu|tiny.
Not measured: time and accuracy depend on your data.
"""

import ml_collections

from lmttm_jax import recipes


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return recipes.dataset_config("folder", arg)
