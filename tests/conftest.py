"""Every test process (and the subprocesses it starts) keeps JAX's persistent
compilation cache in one temporary folder per test run, never in the user's home.
Under pytest-xdist the workers use the folder of the process that started them, so a
program compiled by one worker or subprocess is loaded, not compiled, by the others.

Under xdist (`make test`: `--dist loadscope --no-loadscope-reorder`) each test file
runs on one worker, so its module fixtures (a trained run, a sweep) are set up once;
files are handed out in collection order, which puts the files with the most tests
marked `slow` first, so that the run does not end waiting for one of them.

Tests compile with XLA's backend optimisation level 0 (`TEST_XLA_FLAGS`, added to
the `XLA_FLAGS` the run inherits unless it names a level itself): compiling the tiny
model's train step takes about a third of the time, running it about three times
as long, and tests compile far more than they run. No test asserts a speed.
"""

import os
import shutil
import tempfile
from collections import Counter

import pytest

from lmttm_jax import compilation

_folder = None  # the folder this process made (and removes at the end)
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"


def with_test_xla_flags(flags: str) -> str:
    """`flags` (an `XLA_FLAGS` value) with the tests' optimisation level, unless set."""
    if "--xla_backend_optimization_level" in flags:
        return flags
    return f"{flags} {TEST_XLA_FLAGS}".strip()


def pytest_configure(config) -> None:
    global _folder
    os.environ["XLA_FLAGS"] = with_test_xla_flags(os.environ.get("XLA_FLAGS", ""))
    shared = getattr(config, "workerinput", {}).get("compile_cache")
    if shared:
        os.environ[compilation.ENV] = shared
        return
    _folder = tempfile.mkdtemp(prefix="lmttm_jax_compile_cache_")
    os.environ[compilation.ENV] = _folder


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist, before a worker starts: the folder it is to share."""
    node.workerinput["compile_cache"] = _folder


def pytest_collection_modifyitems(config, items) -> None:
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return  # one process: the files' own order
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])  # stable: each file's own order


def pytest_unconfigure(config) -> None:
    if _folder:
        shutil.rmtree(_folder, ignore_errors=True)
