"""NIfTI inputs are reoriented to RAS+ and resampled in their physical proportions."""

import nibabel
import numpy as np
import pytest

from lmttm_jax.data import volumes


def write_nifti(path, data: np.ndarray, affine: np.ndarray) -> None:
    nibabel.save(nibabel.Nifti1Image(data, affine), str(path))


def test_a_flipped_anisotropic_nifti_is_seen_upright_and_in_proportion(tmp_path):
    # 4 x 8 x 8 voxels of 4 x 1 x 1 mm: 16 x 8 x 8 mm. The first axis runs from right
    # to left (negative x), so RAS+ reverses it. Stored slab 0 is bright: it lies at
    # the right (+x), i.e. at the end of the first axis once reoriented.
    data = np.zeros((4, 8, 8), np.float32)
    data[0] = 1.0
    affine = np.diag([-4.0, 1.0, 1.0, 1.0])
    path = tmp_path / "scan.nii.gz"
    write_nifti(path, data, affine)
    seen = volumes.load_volume(path, 16)
    assert seen.shape == (16, 16, 16)
    # The 8 mm sides span 8 of 16 voxels, centred (4..11); around them: zeros.
    inside = np.zeros((16, 16, 16), bool)
    inside[:, 4:12, 4:12] = True
    assert np.all(seen[~inside] == 0)
    # Along the first axis, 16 mm in 16 voxels of 1 mm: voxel i samples the stored
    # slabs at (i + 0.5) / 4 - 0.5, linearly; the bright slab (3 once reoriented) last.
    expected = np.clip(((np.arange(16) + 0.5) / 4 - 0.5) - 2, 0, 1)
    np.testing.assert_allclose(seen[:, 8, 8], expected, atol=1e-6)
    assert np.all(seen[14:, 4:12, 4:12] == 1)
    # Without geometry: the stored grid stretched to the cube, bright slab first.
    plain = volumes.load_volume(path, 16, geometry=False)
    np.testing.assert_allclose(plain[:, 8, 8], expected[::-1], atol=1e-6)


def test_spacing_rescales_each_axis_by_its_physical_length(tmp_path):
    volume = np.ones((10, 20, 5), np.float32)
    out = volumes.resample(volume, 28, spacing=(2.0, 1.0, 2.0))  # 20 x 20 x 10 mm
    others = [tuple(a for a in range(3) if a != k) for k in range(3)]
    assert [int(np.count_nonzero(out.max(axis=o))) for o in others] == [28, 28, 14]
    series = tmp_path / "series.nii"
    write_nifti(series, np.zeros((4, 4, 4, 3), np.float32), np.eye(4))
    assert volumes.read_canonical(series)[1] is None  # no geometry for a series ...
    with pytest.raises(volumes.VolumeError, match="4 dimension"):  # ... nor a 3D volume
        volumes.load_volume(series, 28)
