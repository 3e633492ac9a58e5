"""The dataset a flag names: a registry one (MedMNIST 3D, synthetic) or the user's
folder of volumes (`lmttm_jax.data.folder`, which builds on `medmnist3d`)."""

import os
from pathlib import Path

from lmttm_jax.data import folder, medmnist3d
from lmttm_jax.data.medmnist3d import FOLDER_FLAG, DatasetInfo, check_flag, default_root


def get_info(flag: str, root: str | os.PathLike | None = None) -> DatasetInfo:
    """The description of dataset ``flag`` (ValueError naming the valid flags if unknown);
    ``root`` is read only for the ``folder`` dataset (its ``labels.csv``)."""
    if check_flag(flag) == FOLDER_FLAG:
        return folder.folder_info(default_root() if root is None else root)
    return medmnist3d.get_info(flag)


def ensure_dataset(
    flag: str,
    size: int,
    root: str | os.PathLike | None = None,
    download_missing: bool = True,
    seed: int = 0,
    geometry: bool = True,
) -> Path:
    """The ``flag``/``size`` file under ``root`` (default ``default_root()``), obtained if
    missing: see ``medmnist3d.ensure_dataset``; a ``folder`` dataset is converted into a
    cached file, its split drawn with ``seed`` where ``labels.csv`` has no ``split``
    column and NIfTI files converted with their ``geometry`` (``folder.ensure_folder_dataset``)."""
    root = default_root() if root is None else root
    if check_flag(flag) == FOLDER_FLAG:
        return folder.ensure_folder_dataset(root, size, seed, geometry)
    return medmnist3d.ensure_dataset(flag, size, root, download_missing)
