"""Predictions of a trained run on the user's own volumes (`main.py --mode=predict`).

Inputs are `.npy`, `.npz` (holding exactly one array), NIfTI (`.nii`, `.nii.gz`,
read with nibabel) files, or a folder of them. Each volume is converted as the
training data were (`prepare_volume`):

1. axes of length 1 are dropped; what is left must be 3D. The axes are used in
   their stored order, the first one being depth (the model's step axis); NIfTI
   voxel arrays are taken as nibabel returns them (no reorientation);
2. the volume is resampled to the model's `S^3` (`config.data.size`, 28 or 64) by
   linear interpolation (`scipy.ndimage.zoom`, order 1);
3. intensities are mapped to [0, 1]: uint8 volumes (MedMNIST's 0..255) are divided
   by 255 exactly as in training; any other dtype is min-max scaled per volume (a
   constant volume becomes all zeros).

A file that cannot be used (unreadable, not a volume, empty, NaN/Inf voxels) gets
a row whose `error` column names the file and the problem; the others are still
predicted. Rows: `file`, `prediction` (the registry's label name), one probability
column per label name, `error`.
"""

import csv
import dataclasses
import io
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy import ndimage
from tqdm import tqdm

from lmttm_jax import compilation, config_check, evaluate, train
from lmttm_jax import data as data_lib
from lmttm_jax.models import build_model

SUFFIXES = (".npy", ".npz", ".nii", ".nii.gz")
UINT8_SCALE = 255.0


class VolumeError(ValueError):
    """An input file is not a usable volume; the message names the file and why."""


# ----------------------------------------------------------------------------- inputs


def has_volume_suffix(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def list_inputs(path: str | Path) -> list[Path]:
    """`path` itself if it is a file, else the volume files of the folder (sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"--input {path} does not exist")
    files = sorted(p for p in path.iterdir() if p.is_file() and has_volume_suffix(p))
    if not files:
        raise FileNotFoundError(f"--input folder {path} holds no {'/'.join(SUFFIXES)} files")
    return files


def _read_nifti(path: Path) -> np.ndarray:
    import nibabel  # imported here: only NIfTI inputs need it

    return np.asanyarray(nibabel.load(path).dataobj)


def _read_npz(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as npz:
        if len(npz.files) != 1:
            raise VolumeError(
                f"{path}: a .npz input must hold exactly one array, found {npz.files}"
            )
        return npz[npz.files[0]]


def read_volume(path: str | Path) -> np.ndarray:
    """The array stored in a `.npy`/`.npz`/NIfTI file (`VolumeError` if unreadable)."""
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith(".npy"):
            return np.load(path, allow_pickle=False)
        if name.endswith(".npz"):
            return _read_npz(path)
        if name.endswith((".nii", ".nii.gz")):
            return _read_nifti(path)
    except VolumeError:
        raise
    except Exception as err:  # any parse failure of a user's file is reported per file
        raise VolumeError(f"{path}: cannot read the file ({type(err).__name__}: {err})") from err
    raise VolumeError(f"{path}: unsupported file type; expected one of {SUFFIXES}")


def scale_intensities(volume: np.ndarray) -> np.ndarray:
    """uint8 -> `/255` (as in training); other dtypes -> min-max to [0, 1]; float32."""
    if volume.dtype == np.uint8:
        return volume.astype(np.float32) / np.float32(UINT8_SCALE)
    volume = volume.astype(np.float64)
    low, high = volume.min(), volume.max()
    if high == low:
        return np.zeros(volume.shape, np.float32)
    return ((volume - low) / (high - low)).astype(np.float32)


def resample(volume: np.ndarray, size: int) -> np.ndarray:
    """`[D, H, W] -> [size, size, size]` by linear interpolation (float32)."""
    if volume.shape == (size,) * 3:
        return volume
    factors = [size / n for n in volume.shape]
    out = ndimage.zoom(volume, factors, order=1, mode="nearest", grid_mode=True)
    return out.astype(np.float32)


def prepare_volume(raw: np.ndarray, size: int, path: str | Path = "volume") -> np.ndarray:
    """A stored array -> the model's float32 `[size, size, size]` input in [0, 1].

    Raises `VolumeError` naming `path` for non-numeric, empty, non-3D or non-finite
    arrays.
    """
    raw = np.asarray(raw)
    if raw.dtype == bool:
        raw = raw.astype(np.uint8) * np.uint8(255)
    if not np.issubdtype(raw.dtype, np.integer) and not np.issubdtype(raw.dtype, np.floating):
        raise VolumeError(f"{path}: not a volume: array of dtype {raw.dtype}")
    if raw.size == 0:
        raise VolumeError(f"{path}: empty array of shape {raw.shape}")
    volume = raw.squeeze()
    if volume.ndim != 3:
        raise VolumeError(
            f"{path}: shape {raw.shape} has {volume.ndim} dimension(s) of length > 1; "
            f"expected a 3D volume (axes of length 1 are dropped)"
        )
    bad = int(np.size(volume) - np.count_nonzero(np.isfinite(volume)))
    if bad:
        raise VolumeError(f"{path}: {bad} voxel(s) are NaN or infinite")
    return np.clip(resample(scale_intensities(volume), size), 0.0, 1.0)


def load_volume(path: str | Path, size: int) -> np.ndarray:
    """`read_volume` then `prepare_volume`: float32 `[size, size, size]` in [0, 1]."""
    return prepare_volume(read_volume(path), size, path)


# ----------------------------------------------------------------------------- model


@dataclasses.dataclass
class RestoredRun:
    """A run's checked config, dataset registry entry, model and best parameters."""

    config: ml_collections.ConfigDict
    info: data_lib.DatasetInfo
    model: Any
    params: Any
    best_epoch: int

    @property
    def size(self) -> int:
        return self.config.data.size


def restore_run(workdir: str | Path) -> RestoredRun:
    """Reads `<workdir>/config.json` and restores `checkpoints/best` (no optimiser step
    is compiled: the state's shapes come from `jax.eval_shape`)."""
    workdir = Path(workdir)
    config = config_check.load_run_config(workdir)
    compilation.setup(config.train.compile_cache)
    best = workdir / "checkpoints" / "best"
    manager = train.Checkpoints(workdir, read_only=True).best
    if manager.latest_step() is None:
        raise FileNotFoundError(f"no checkpoint in {best}: train the run first")
    info = data_lib.get_info(config.data.name)
    model = build_model(config.model, info.n_classes, config.data.size)
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = train.abstract_train_state(config, model, sharding)
    state, meta = train.Checkpoints.restore(manager, abstract)
    return RestoredRun(config, info, model, state.params, meta["best"]["epoch"])


def make_predict_fn(run: RestoredRun) -> Callable[[np.ndarray], np.ndarray]:
    """A jitted `volumes [B, S, S, S] float32 in [0, 1] -> probs [B, C]` (eval mode)."""
    dtype = jnp.dtype(run.config.train.compute_dtype)

    @jax.jit
    def predict(params, volumes):
        params, x = train.cast((params, volumes[..., None]), dtype)
        logits = run.model.apply({"params": params}, x)["logits"].astype(jnp.float32)
        return jax.nn.softmax(logits)

    return lambda volumes: np.asarray(predict(run.params, jnp.asarray(volumes)))


# ----------------------------------------------------------------------------- predict


def _row(run: RestoredRun, path: Path, probs: np.ndarray | None, error: str | None) -> dict:
    row: dict[str, Any] = {"file": str(path), "prediction": None}
    row.update({name: None for name in run.info.label_names})
    if probs is not None:
        label = int(evaluate.predicted_labels(probs[None], run.info.task)[0])
        row["prediction"] = run.info.label_names[label]
        row.update({n: float(p) for n, p in zip(run.info.label_names, probs, strict=True)})
    row["error"] = error
    return row


def _chunks(files: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(files), size):
        yield files[start : start + size]


def _report(message: str) -> None:
    tqdm.write(f"error: {message}", file=sys.stderr)


def predict_files(run: RestoredRun, files: Sequence[Path], batch_size: int = 0) -> list[dict]:
    """One row per file, in order; bad files get an `error` and no probabilities.

    Volumes are predicted in batches of `batch_size` (default: the run's eval batch
    size, at most the number of files), the last one zero-padded, so one program is
    compiled.
    """
    batch_size = min(batch_size or run.config.train.eval_batch_size, len(files))
    predict = make_predict_fn(run)
    rows: dict[Path, dict] = {}
    bar = tqdm(total=len(files), desc="predict", unit="file", disable=len(files) < 2 or None)
    for chunk in _chunks(files, batch_size):
        good, volumes = [], []
        for path in chunk:
            try:
                volumes.append(load_volume(path, run.size))
                good.append(path)
            except VolumeError as err:
                _report(str(err))
                rows[path] = _row(run, path, None, str(err))
        if volumes:
            batch = np.zeros((batch_size,) + (run.size,) * 3, np.float32)
            batch[: len(volumes)] = np.stack(volumes)
            for path, p in zip(good, predict(batch), strict=False):
                rows[path] = _row(run, path, p, None)
        bar.update(len(chunk))
    bar.close()
    return [rows[path] for path in files]


def format_rows(rows: list[dict], fmt: str) -> str:
    """Rows as CSV (empty cells for missing values) or as a JSON list of objects."""
    if fmt == "json":
        return json.dumps(rows, indent=1) + "\n"
    if fmt != "csv":
        raise ValueError(f"unknown output format {fmt!r}: expected csv or json")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def output_format(output: str | Path | None) -> str:
    """`json` for a `.json` output file, else `csv` (also for stdout)."""
    return "json" if output is not None and str(output).lower().endswith(".json") else "csv"


def predict_command(workdir: str | Path, input_path: str | Path, output: str | None) -> int:
    """`--mode=predict`: writes (or prints) the rows; returns the number of good files."""
    config_check.load_run_config(workdir)  # config errors before any restore or compile
    files = list_inputs(input_path)
    run = restore_run(workdir)
    rows = predict_files(run, files)
    text = format_rows(rows, output_format(output))
    failed = sum(row["error"] is not None for row in rows)
    if output is None:
        sys.stdout.write(text)
    else:
        evaluate.atomic_write_text(Path(output), text)
        print(f"wrote {len(rows)} prediction(s) to {output} ({failed} failed)", flush=True)
    return len(rows) - failed
