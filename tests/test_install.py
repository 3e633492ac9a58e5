"""Packaging (`pyproject.toml`): what `pip install .` installs and needs, checked offline;
the package works without the optional `medmnist` (and never imports PyTorch)."""

import ast
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import setuptools
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DEPENDENCIES = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
OPTIONAL = {"medmnist"}  # imported only by `medmnist_module`, guarded


def _package_dirs() -> set[str]:
    return {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "lmttm_jax").rglob("__init__.py")
    }


def test_packages_are_lmttm_jax_and_its_subpackages_with_their_data():
    find = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    found = set(setuptools.find_packages(str(REPO), include=find["include"]))
    assert found == _package_dirs() and "lmttm_jax.data" in found
    data = PYPROJECT["tool"]["setuptools"]["package-data"]["lmttm_jax"]
    shipped = {p for pattern in data for p in (REPO / "lmttm_jax").glob(pattern)}
    needed = {
        p
        for p in (REPO / "lmttm_jax").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    }
    assert needed == shipped and REPO / "lmttm_jax/published_results.json" in shipped


def _imported_top_level_modules() -> set[str]:
    names = set()
    for path in (REPO / "lmttm_jax").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"lmttm_jax"}


def test_every_imported_distribution_is_a_dependency():
    declared = {canonicalize_name(r.name) for r in DEPENDENCIES}
    distributions = importlib.metadata.packages_distributions()
    modules = _imported_top_level_modules()
    assert "torch" not in modules and {"jax", "flax", "sklearn"} <= modules
    for module in modules:
        names = {canonicalize_name(d) for d in distributions.get(module, [module])}
        assert names & (declared | OPTIONAL), f"{module} is imported but not a dependency"


def test_dependency_ranges_admit_the_pins_of_requirements_txt():
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = Version(spec.version)
    for req in DEPENDENCIES:
        pin = pins.get(canonicalize_name(req.name))
        assert pin is not None, f"{req.name} is not pinned in requirements.txt"
        assert req.specifier.contains(pin), f"{req} does not admit the pin {pin}"
    (jax,) = [r for r in DEPENDENCIES if r.name == "jax"]
    readme = (REPO / "README.md").read_text()
    for extra in ("cuda12", "tpu"):  # accelerator install lines pin the same jax
        assert f'"jax[{extra}]=={pins["jax"]}"' in readme
    for doc in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        assert '-U "jax[' not in doc.read_text(), f"{doc.name}: an unpinned jax upgrade"


def test_works_without_medmnist_and_never_imports_torch(tmp_path):
    code = (
        "import sys; sys.modules['medmnist'] = None\n"  # as if it were not installed
        "import numpy as np\n"
        "from lmttm_jax import evaluate, predict, train\n"
        "from lmttm_jax.data import get_info, medmnist_module\n"
        "assert get_info('organmnist3d').n_classes == 11\n"
        "probs = np.array([[.9, .1], [.2, .8], [.6, .4], [.7, .3]])\n"
        "got = evaluate.medmnist_metrics(np.array([0, 1, 1, 0]), probs, 'binary-class')\n"
        "assert got == {'auc': 1.0, 'acc': 0.75}, got\n"
        "assert 'torch' not in sys.modules\n"
        "try:\n"
        "    medmnist_module('evaluator')\n"
        "except ModuleNotFoundError as err:\n"
        "    print(err)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,  # not the repository: as an installed package is used
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "pip install --no-deps medmnist==3.0.2" in run.stdout
    assert_reproduce_helps(tmp_path, env)


def assert_reproduce_helps(cwd: Path, env: dict) -> None:
    """`python -m lmttm_jax.reproduce --help` prints its flags (absl then exits 1)."""
    helped = subprocess.run(
        [sys.executable, "-m", "lmttm_jax.reproduce", "--help"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert "--datasets" in helped.stdout and "--workers" in helped.stdout
    assert "Traceback" not in helped.stderr


@pytest.mark.skipif(
    Version(setuptools.__version__) < Version("70.1") and not importlib.util.find_spec("wheel"),
    reason="building a wheel offline needs setuptools >= 70.1 or the wheel package",
)
def test_wheel_holds_the_package_only(tmp_path):
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("lmttm_jax-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"lmttm_jax"}
    assert "lmttm_jax/published_results.json" in names
    assert "lmttm_jax/data/folder.py" in names
    assert "lmttm_jax/pretrained/adrenalmnist3d/member_0.msgpack" in names  # shipped models


@pytest.mark.slow
@pytest.mark.skipif(
    Version(setuptools.__version__) < Version("70.1") and not importlib.util.find_spec("wheel"),
    reason="building a wheel offline needs setuptools >= 70.1 or the wheel package",
)
def test_the_installed_command_works_outside_the_clone(tmp_path):
    """The wheel installed into a folder of its own (dependencies from this Python), then
    from an empty folder: `lmttm-jax train`, `lmttm-jax predict`, and a one-epoch
    `python -m lmttm_jax.reproduce`."""
    import numpy as np

    from tests.tiny import TINY_MODEL, write_small_synthetic

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path / "wheel"), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = (tmp_path / "wheel").glob("lmttm_jax-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site)]
        + [str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    data = write_small_synthetic(tmp_path / "data")
    here = tmp_path / "empty"
    here.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "MEDMNIST_ROOT": str(data)}
    small = [f"--config.model.{k}={v}" for k, v in TINY_MODEL.items()]
    small += ["--config.train.epochs=1", "--config.train.warmup_epochs=0"]
    small += ["--config.train.batch_size=16", "--config.train.eval_batch_size=16"]

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            list(args), cwd=here, env=env, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    where = run(sys.executable, "-c", "import lmttm_jax; print(lmttm_jax.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(site)
    command = str(site / "bin" / "lmttm-jax")
    run(command, "train", "--config=synthetic", "--workdir=r", *small)
    assert json.loads((here / "r" / "results.json").read_text())["test"]["auc"] >= 0
    np.save(here / "scan.npy", np.random.default_rng(0).random((28, 28, 28), np.float32))
    run(command, "predict", "--workdir=r", "--input=scan.npy", "--output=p.csv")
    assert "scan.npy" in (here / "p.csv").read_text()
    assert_reproduce_helps(here, env)
    run(
        sys.executable,
        "-m",
        "lmttm_jax.reproduce",
        "--datasets=synthetic3d",
        "--models=lmttm",
        "--seeds=1",
        "--out=table",
        *small,
    )
    assert "synthetic3d" in (here / "table" / "table.md").read_text()
