"""The shipped AdrenalMNIST3D model loads, predicts and explains; damaged files and
the flags' mistakes are one line. (Export and restore of a trained run: test_predict.)"""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from lmttm_jax import cli, errors, explain, inference
from lmttm_jax.workdir import WorkdirError


def assert_a_damaged_member_file_is_named(folder: Path, member: int) -> None:
    """Truncating, then deleting, `member`'s parameter file in the exported `folder`
    makes `restore` fail with an error that names the file."""
    path = folder / f"member_{member}.msgpack"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1  # one bit of a weight: still a valid msgpack file
    path.write_bytes(bytes(data))
    with pytest.raises(WorkdirError, match=f"{path.name} does not match the SHA-256"):
        inference.restore(folder)
    path.write_bytes(bytes(data[:100]))
    with pytest.raises(WorkdirError, match=path.name):
        inference.restore(folder)
    path.unlink()
    with pytest.raises(WorkdirError, match=f"{path.name} not found"):
        inference.restore(folder)


def test_a_damaged_parameter_file_is_one_line(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(inference.shipped_dir("adrenalmnist3d"), copy)
    assert_a_damaged_member_file_is_named(copy, 0)


def test_the_shipped_adrenal_model_predicts_and_explains_a_volume(tmp_path, capsys):
    assert "adrenalmnist3d" in inference.available()
    model = inference.restore(inference.shipped_dir("adrenalmnist3d"))
    assert model.info.label_names == ("normal", "hyperplasia") and len(model.params) == 1
    volume = np.random.default_rng(0).random((28, 28, 28), np.float32)
    fn = inference.predict_fn(model)
    probs = fn(volume[None])
    assert probs.shape == (1, 2) and probs.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(fn(volume[None]), probs)
    np.save(tmp_path / "vol.npy", volume)
    out = tmp_path / "p.csv"  # the command's path, in this process
    assert (
        cli.run_mode(
            "predict", None, None, "test", str(tmp_path / "vol.npy"), str(out), "adrenalmnist3d"
        )
        == 0
    )
    (row,) = csv.DictReader(out.open())
    # The file's volume is rescaled to [0, 1] as predict does: equal to float precision.
    got = [float(row["normal"]), float(row["hyperplasia"])]
    np.testing.assert_allclose(got, probs[0], atol=1e-6)
    written = explain.explain_file(model, tmp_path / "vol.npy", tmp_path / "e.png", None)
    assert [p.name for p in written] == ["e.png", "e_memory.png"]
    assert all(p.stat().st_size > 0 for p in written)
    assert "ensemble" not in capsys.readouterr().out  # one model (ensembles: test_ensemble)


@pytest.mark.parametrize(
    "mode, workdir, name, message",
    [
        ("predict", None, "nosuch", "no such pretrained model; available: adrenalmnist3d"),
        ("explain", "runs/x", "adrenalmnist3d", "either --workdir"),
        ("eval", None, "adrenalmnist3d", "--pretrained is for --mode=predict and --mode=explain"),
        ("predict", None, "adrenalmnist3d", "--input is required"),
        ("explain", None, "adrenalmnist3d", "--input is required"),
    ],
)
def test_pretrained_flag_errors_are_one_line(mode, workdir, name, message):
    with pytest.raises(errors.UsageError, match=message) as err:
        cli.run_mode(mode, None, workdir, "test", None, None, name)
    assert "\n" not in str(err.value)
