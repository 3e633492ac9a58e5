"""Data layer: MedMNIST 3D registry/download/loading, synthetic 3D shapes, the user's
own volumes (reading, conversion, folder datasets), batching, cross-validation folds."""

from lmttm_jax.data.datasets import ensure_dataset as ensure_dataset
from lmttm_jax.data.datasets import get_info as get_info
from lmttm_jax.data.folds import cross_validation_split as cross_validation_split
from lmttm_jax.data.folds import pool as pool
from lmttm_jax.data.folds import stratified_folds as stratified_folds
from lmttm_jax.data.medmnist3d import FLAGS as FLAGS
from lmttm_jax.data.medmnist3d import FOLDER_FLAG as FOLDER_FLAG
from lmttm_jax.data.medmnist3d import SIZES as SIZES
from lmttm_jax.data.medmnist3d import SPLITS as SPLITS
from lmttm_jax.data.medmnist3d import DatasetError as DatasetError
from lmttm_jax.data.medmnist3d import DatasetFileError as DatasetFileError
from lmttm_jax.data.medmnist3d import DatasetInfo as DatasetInfo
from lmttm_jax.data.medmnist3d import DatasetUnavailableError as DatasetUnavailableError
from lmttm_jax.data.medmnist3d import DownloadError as DownloadError
from lmttm_jax.data.medmnist3d import MissingSplitError as MissingSplitError
from lmttm_jax.data.medmnist3d import dataset_path as dataset_path
from lmttm_jax.data.medmnist3d import default_root as default_root
from lmttm_jax.data.medmnist3d import load_split as load_split
from lmttm_jax.data.medmnist3d import medmnist_module as medmnist_module
from lmttm_jax.data.pipeline import Batch as Batch
from lmttm_jax.data.pipeline import augment as augment
from lmttm_jax.data.pipeline import eval_batches as eval_batches
from lmttm_jax.data.pipeline import mix_targets as mix_targets
from lmttm_jax.data.pipeline import mixup as mixup
from lmttm_jax.data.pipeline import num_batches as num_batches
from lmttm_jax.data.pipeline import preprocess as preprocess
from lmttm_jax.data.pipeline import random_intensity as random_intensity
from lmttm_jax.data.pipeline import random_shift as random_shift
from lmttm_jax.data.pipeline import train_batches as train_batches
from lmttm_jax.data.pipeline import tta_views as tta_views
from lmttm_jax.data.synthetic import write_synthetic as write_synthetic
from lmttm_jax.data.volumes import prepare_volume as prepare_volume
