"""Data layer: MedMNIST 3D registry/download/loading, synthetic 3D shapes, the user's
own volumes (reading, conversion, folder datasets), batching, cross-validation folds."""

from lmttm_jax.data.datasets import ensure_dataset, get_info
from lmttm_jax.data.folder import FolderDatasetError, ensure_folder_dataset, folder_info
from lmttm_jax.data.folds import cross_validation_split, stratified_folds
from lmttm_jax.data.medmnist3d import (
    FLAGS,
    FOLDER_FLAG,
    MEDMNIST_FLAGS,
    SIZES,
    SPLITS,
    SYNTHETIC_FLAG,
    DatasetError,
    DatasetFileError,
    DatasetInfo,
    DatasetUnavailableError,
    DownloadError,
    MissingSplitError,
    available_splits,
    dataset_path,
    default_root,
    download,
    load_split,
    medmnist_module,
)
from lmttm_jax.data.pipeline import (
    Batch,
    augment,
    eval_batches,
    num_batches,
    preprocess,
    train_batches,
)
from lmttm_jax.data.synthetic import (
    SYNTHETIC_LABELS,
    SYNTHETIC_N_SAMPLES,
    make_synthetic,
    write_synthetic,
)
from lmttm_jax.data.volumes import VolumeError, load_volume, prepare_volume, read_volume

__all__ = [
    "FLAGS",
    "FOLDER_FLAG",
    "MEDMNIST_FLAGS",
    "SIZES",
    "SPLITS",
    "SYNTHETIC_FLAG",
    "SYNTHETIC_LABELS",
    "SYNTHETIC_N_SAMPLES",
    "Batch",
    "DatasetError",
    "DatasetFileError",
    "DatasetInfo",
    "DatasetUnavailableError",
    "DownloadError",
    "FolderDatasetError",
    "VolumeError",
    "MissingSplitError",
    "augment",
    "cross_validation_split",
    "available_splits",
    "dataset_path",
    "default_root",
    "download",
    "ensure_dataset",
    "ensure_folder_dataset",
    "folder_info",
    "eval_batches",
    "get_info",
    "load_split",
    "load_volume",
    "make_synthetic",
    "medmnist_module",
    "num_batches",
    "prepare_volume",
    "preprocess",
    "read_volume",
    "stratified_folds",
    "train_batches",
    "write_synthetic",
]
