"""The user's volume files and their conversion to the model's input.

Files are `.npy`, `.npz` (holding exactly one array) or NIfTI (`.nii`, `.nii.gz`,
read with nibabel). `prepare_volume` converts a stored array for prediction and for
training on a folder of volumes alike: axes of length 1 are dropped (the first left is
depth, the model's step axis), intensities go to [0, 1] and the volume is resampled to
`S^3`. With `geometry` (`config.data.nifti_geometry`) a NIfTI file is first reoriented
to RAS+ and keeps its physical proportions; `.npy`/`.npz` files are used as stored. A
file that cannot be used raises `VolumeError` naming the file and the problem.
"""

from pathlib import Path

import numpy as np
from scipy import ndimage

from lmttm_jax.data.medmnist3d import DatasetError

SUFFIXES = (".npy", ".npz", ".nii", ".nii.gz")
UINT8_SCALE = 255.0


class VolumeError(DatasetError, ValueError):
    """An input file is not a usable volume; the message names the file and why."""


def has_volume_suffix(path: Path) -> bool:
    """True for a `.npy`/`.npz`/`.nii`/`.nii.gz` name (any case)."""
    return path.name.lower().endswith(SUFFIXES)


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def read_canonical(path: str | Path) -> tuple[np.ndarray, tuple[float, float, float] | None]:
    """A NIfTI file's voxels in the closest canonical (RAS+) orientation `[X, Y, Z]`
    and its voxel spacing in mm (`VolumeError` if unreadable). An image that is not 3D
    (a series, a spatial axis of length 1) comes without spacing: `prepare_volume`
    then squeezes it and uses its grid as stored."""
    import nibabel  # imported here: only NIfTI inputs need it

    try:
        image = nibabel.as_closest_canonical(nibabel.load(path))
        data = np.asanyarray(image.dataobj)
        spacing = tuple(float(z) for z in image.header.get_zooms()[:3])
    except Exception as err:  # any parse failure of a user's file is reported per file
        raise VolumeError(f"{path}: cannot read the file ({type(err).__name__}: {err})") from err
    if data.ndim > 3 and all(n == 1 for n in data.shape[3:]):
        data = data.reshape(data.shape[:3])
    if data.ndim != 3 or min(data.shape) < 2 or len(spacing) != 3 or min(spacing) <= 0:
        return data, None
    return data, spacing


def read_volume(path: str | Path) -> np.ndarray:
    """The array stored in a `.npy`/`.npz`/NIfTI file (`VolumeError` if unreadable)."""
    path = Path(path)
    if not has_volume_suffix(path):
        raise VolumeError(f"{path}: unsupported file type; expected one of {SUFFIXES}")
    try:
        if is_nifti(path):
            import nibabel

            return np.asanyarray(nibabel.load(path).dataobj)
        if path.name.lower().endswith(".npy"):
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as npz:
            if len(npz.files) == 1:
                return npz[npz.files[0]]
            found = npz.files
    except Exception as err:  # any parse failure of a user's file is reported per file
        raise VolumeError(f"{path}: cannot read the file ({type(err).__name__}: {err})") from err
    raise VolumeError(f"{path}: a .npz input must hold exactly one array, found {found}")


def scale_intensities(volume: np.ndarray) -> np.ndarray:
    """uint8 -> `/255` (as in training); other dtypes -> min-max to [0, 1]; float32.

    A finite range wider than the largest float64 (e.g. -1.7e308..1.7e308) is first
    divided by its largest magnitude, so that the scaling cannot overflow.
    """
    if volume.dtype == np.uint8:
        return volume.astype(np.float32) / np.float32(UINT8_SCALE)
    volume = volume.astype(np.float64)
    low, high = volume.min(), volume.max()
    if high == low:
        return np.zeros(volume.shape, np.float32)
    with np.errstate(over="ignore"):
        span = high - low
    if not np.isfinite(span):
        magnitude = max(abs(low), abs(high))
        volume, low, high = volume / magnitude, low / magnitude, high / magnitude
        span = high - low
    return ((volume - low) / span).astype(np.float32)


def resample(volume: np.ndarray, size: int, spacing: tuple[float, ...] | None = None) -> np.ndarray:
    """`[D, H, W] -> [size, size, size]` by linear interpolation (float32). With the
    voxel `spacing`, physical proportions are kept: the longest side spans `size`
    voxels, the others their share, centred in a cube of zeros."""
    target = (size,) * 3
    if spacing is not None:
        extent = np.asarray(volume.shape) * np.asarray(spacing, np.float64)
        target = tuple(max(1, int(round(size * e / extent.max()))) for e in extent)
    if volume.shape != target:
        factors = [t / n for t, n in zip(target, volume.shape, strict=True)]
        volume = ndimage.zoom(volume, factors, order=1, mode="nearest", grid_mode=True)
    before = [(size - n) // 2 for n in volume.shape]
    pad = [(b, size - n - b) for b, n in zip(before, volume.shape, strict=True)]
    return np.pad(volume, pad).astype(np.float32)


def prepare_volume(
    raw: np.ndarray,
    size: int,
    path: str | Path = "volume",
    spacing: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """A stored array -> the model's float32 `[size, size, size]` input in [0, 1]
    (with the voxel `spacing` of a 3D array: in its physical proportions).

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
    if spacing is not None and volume.shape != raw.shape:
        spacing = None  # axes were dropped: the spacing no longer matches
    return np.clip(resample(scale_intensities(volume), size, spacing), 0.0, 1.0)


def load_volume(path: str | Path, size: int, geometry: bool = True) -> np.ndarray:
    """A file as the model sees it: float32 `[size, size, size]` in [0, 1] (a NIfTI
    file with `geometry`: reoriented and in its physical proportions)."""
    if geometry and is_nifti(Path(path)):
        data, spacing = read_canonical(path)
        return prepare_volume(data, size, path, spacing)
    return prepare_volume(read_volume(path), size, path)


def to_uint8(volume: np.ndarray) -> np.ndarray:
    """A prepared volume in [0, 1] -> uint8 0..255 (rounded), as MedMNIST files store it."""
    return np.round(np.clip(volume, 0.0, 1.0) * UINT8_SCALE).astype(np.uint8)
