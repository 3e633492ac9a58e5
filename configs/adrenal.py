"""adrenalmnist3d: LMTTM on MedMNIST v2 AdrenalMNIST3D (2 classes; 1188 train, 98 val, 298 test).

Run: python main.py --config=configs/adrenal.py [--workdir=runs/adrenal]   (`ref`, 100 epochs)
CPU recipe: python main.py --config=configs/adrenal.py:scale=tiny   (40 epochs at 28^3;
`:scale=tiny,size=64` for 64^3, 20 epochs). Variants: model=ttm|resnet18_3d, size,
scale (see configs/base.py). All figures: docs/accuracy.md.
Hardware, time and result: 2-core CPU, `scale=tiny`, validation only (the shared copy
has no test split), mean +- std over seeds 0-2 of
`python -m lmttm_jax.reproduce --datasets=adrenalmnist3d --models=lmttm,ttm --seeds=3
--variant=scale=tiny[,size=64]`:
  28^3: LMTTM val ACC 0.871 +- 0.019 / AUC 0.826 +- 0.005; TTM 0.854 +- 0.005 /
  0.818 +- 0.003; the three LMTTM seeds took 920-1695 s with the CPU shared by other
  jobs (6-7 min per run on an idle CPU, see the folds below).
  64^3: LMTTM val ACC 0.816 +- 0.025 / AUC 0.836 +- 0.011, 1087-1141 s per seed
  (52 s per epoch).
  5-fold cross-validation on train+val (`--folds=5 --seeds=1`, test not read): LMTTM
  ACC 0.809 +- 0.047 / AUC 0.806 +- 0.039, 352-396 s per fold on an idle CPU; TTM
  ACC 0.827 +- 0.007 / AUC 0.810 +- 0.030 (LMTTM does not beat TTM here).
The reference width has not been run to the end here.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = base.dataset_config("adrenalmnist3d", arg)
    config.data.flip = True  # left and right glands share labels: flips keep the class
    return config
