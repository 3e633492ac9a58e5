"""Every test process (and the subprocesses it starts) keeps JAX's persistent
compilation cache in a temporary folder, never in the user's home."""

import os
import shutil
import tempfile

from lmttm_jax import compilation

_folder = None


def pytest_configure(config) -> None:
    global _folder
    _folder = tempfile.mkdtemp(prefix="lmttm_jax_compile_cache_")
    os.environ[compilation.ENV] = _folder


def pytest_unconfigure(config) -> None:
    if _folder:
        shutil.rmtree(_folder, ignore_errors=True)
