"""adrenalmnist3d: LMTTM on MedMNIST v2 AdrenalMNIST3D (2 classes; 1188 train, 98 val, 298 test).

Run: python main.py --config=configs/adrenal.py:recipe=cpu --workdir=runs/adrenal (the CPU
recipe: two `scale=tiny` runs of 80 epochs without dropout, seeds 0 and 1, EMA, TTA,
trained side by side and averaged; `:recipe=cpu,size=64` the same at 64^3 with patch 7
and 60 epochs; `:scale=tiny` one plain run of 40 epochs; no variant: the reference
width, 100 epochs, not run to the end here).
Hardware, time and result (2-core CPUs, idle; the shared copy has no test split):
`recipe=cpu` 6 min 21 s on an AMD EPYC of CPU family 26 (epochs 4.0 s), 13 min 58 s on
an Intel Xeon (epochs 9.7 s), validation AUC 0.864-0.865 / ACC 0.847 (the selection
split); 5-fold CV on train+val AUC 0.849 +- 0.023 / ACC 0.844 +- 0.010.
`recipe=cpu,size=64`: 8 min 05 s on the EPYC (epochs 7.1 s), validation AUC 0.869 /
ACC 0.847; 5-fold CV AUC 0.845 +- 0.029 / ACC 0.850 +- 0.006.
VesselMNIST3D's class balance (balanced batches, `train.keep_prior`) on this recipe's member
in 5-fold CV: AUC +0.004 [-0.001, +0.009], ACC -0.005 [-0.030, +0.021], a wash: not adopted.
`scale=tiny`: 6-7 min per run, validation AUC 0.826 +- 0.005 / ACC 0.871 +- 0.019 over
seeds 0-2. The search behind the recipe, 64^3 and TTM: docs/accuracy.md.
"""

import ml_collections

from lmttm_jax import recipes


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return recipes.dataset_config("adrenal", arg)
