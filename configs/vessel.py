"""vesselmnist3d: LMTTM on MedMNIST v2 VesselMNIST3D (2 classes; 1335 train, 191 val, 382 test).

Run: python main.py --config=configs/vessel.py:recipe=cpu --workdir=runs/vessel (the CPU
recipe as AdrenalMNIST3D's, with balanced batches, `train.keep_prior` and 40 epochs: two
`scale=tiny` runs without dropout, seeds 0 and 1, EMA, TTA, trained side by side and
averaged; 11 % of the volumes are positive, and in 5-fold CV balanced batches raised a
member's AUC on every fold, +0.038 [+0.018, +0.058], docs/accuracy.md).
Hardware, time and result (the shared copy has no test split): `recipe=cpu` 10 min 23 s
on an idle 2-core Intel Xeon (epochs 12-14 s, peak RSS 1.7 GB), validation AUC 0.914 /
ACC 0.916 (the selection split; confusion matrix [[167, 2], [14, 8]]); its member in
5-fold CV on train+val AUC 0.903 +- 0.014 / ACC 0.912 +- 0.003 (the CPU recipe's member
without the class balance: AUC 0.875 +- 0.023 / ACC 0.898 +- 0.013).
`recipe=cpu,size=64` (40 epochs, patch 7): 14 min 11 s on the idle Xeon (compile cache
warm; epochs 19.7 s, peak RSS 1.9 GB), validation AUC 0.930 / ACC 0.927 (confusion
matrix [[166, 3], [11, 11]]); its member in 5-fold CV AUC 0.917 +- 0.012 / ACC 0.908 +-
0.007 (an AMD EPYC, 9.6 min per run; 64^3 - 28^3 by fold: AUC +0.014 [-0.009, +0.037],
ACC +0.000 [-0.008, +0.008], so first on AUC within the spread). TTM under the 28^3
recipe, 5-fold CV: AUC 0.878 +- 0.016 / ACC 0.889 +- 0.012 (LMTTM higher on every fold);
under the 64^3 recipe 0.899 +- 0.014 / 0.900 +- 0.015 (LMTTM - TTM AUC +0.018, ACC +0.009).
"""

import ml_collections

from lmttm_jax import recipes


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return recipes.dataset_config("vessel", arg)
