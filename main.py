"""Train, evaluate, predict with and explain LMTTM / TTM on MedMNIST 3D or the synthetic set.

python main.py --config=configs/organ.py --workdir=runs/organ
python main.py --mode=eval --workdir=runs/organ --split=test
python main.py --mode=predict --workdir=runs/organ --input=scans/ --output=predictions.csv
python main.py --mode=explain --workdir=runs/organ --input=scan.nii.gz --output=explain.png
python main.py --mode=plot --workdir=runs/organ
python main.py --mode=predict --pretrained=adrenalmnist3d --input=scans/ --output=predictions.csv

Every mode but train reads the run's config from `<workdir>/config.json`; predict and
explain with `--pretrained` use a model shipped in the package (`lmttm_jax.pretrained`).
The installed command `lmttm-jax MODE ...` is the same (`lmttm_jax/cli.py`).
"""

import sys

from lmttm_jax import cli

if __name__ == "__main__":
    cli.run(sys.argv)
