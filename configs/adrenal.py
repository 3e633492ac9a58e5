"""adrenalmnist3d: LMTTM on MedMNIST v2 AdrenalMNIST3D (2 classes; 1188 train, 98 val, 298 test).

Run: python main.py --config=configs/adrenal.py:recipe=cpu --workdir=runs/adrenal (the CPU
recipe: two `scale=tiny` runs of 80 epochs without dropout, seeds 0 and 1, EMA, TTA,
trained side by side and averaged; `:recipe=cpu,size=64` the same at 64^3 with patch 7
and 60 epochs; `:scale=tiny` one plain run of 40 epochs; no variant: the reference
width, 100 epochs, not run to the end here).
Hardware, time and result (2-core CPU; the shared copy has no test split): `recipe=cpu`
16 min 32 s on an idle AMD EPYC (epochs 11.3 s) and 13 min 58 s on an idle Intel Xeon
(epochs 9.7 s), validation AUC 0.865 / ACC 0.847 on both (the selection split); 6 min
21 s on an AMD EPYC of CPU family 26 (epochs 4.0 s; 10 min 05 s before huge pages for
XLA's buffers, docs/performance.md), validation AUC 0.864 / ACC 0.847; in
5-fold CV on train+val AUC 0.849 +- 0.023 / ACC 0.844 +- 0.010 (its seed-0 run alone
AUC 0.849 +- 0.021; three seeds averaged AUC 0.849 +- 0.023 / ACC 0.846 +- 0.010; with
dropout 0.2 the two seeds averaged AUC 0.840 +- 0.026 / ACC 0.841 +- 0.009; the former
recipe, three 30-epoch members averaged: AUC 0.822 +- 0.026).
`recipe=cpu,size=64`: 8 min 05 s on an idle AMD EPYC (CPU family 26; epochs 7.1 s;
11 min 07 s before huge pages), validation AUC 0.869 / ACC 0.847; in 5-fold CV AUC
0.845 +- 0.029 / ACC 0.850 +- 0.006 (one run of 80 epochs, the 64^3 recipe before: AUC
0.846 +- 0.030 / ACC 0.840 +- 0.009; two seeds of 80 epochs averaged: AUC 0.848 +-
0.030 / ACC 0.841 +- 0.009; the former patch-4, 20-epoch 64^3 recipe: AUC 0.814 +-
0.037).
`scale=tiny`: 6-7 min per run on an idle CPU, validation ACC 0.871 +- 0.019 / AUC
0.826 +- 0.005 over seeds 0-2.
64^3, 5-fold cross-validation and TTM: docs/accuracy.md.
"""

import ml_collections

from lmttm_jax import recipes


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return recipes.dataset_config("adrenal", arg)
