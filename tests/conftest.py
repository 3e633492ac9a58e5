"""Every test process (and the subprocesses it starts) keeps JAX's persistent
compilation cache in one temporary folder per test run, never in the user's home.
Under pytest-xdist the workers use the folder of the process that started them, so a
program compiled by one worker or subprocess is loaded, not compiled, by the others.

Under xdist, tests marked `slow` are collected first, so that under xdist they start early and
the run does not end waiting for one of them (`make test` passes `--dist loadgroup`:
tests marked `xdist_group` share a worker, and an expensive module fixture with it).
"""

import os
import shutil
import tempfile

import pytest

from lmttm_jax import compilation

_folder = None  # the folder this process made (and removes at the end)


def pytest_configure(config) -> None:
    global _folder
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
        return  # one process: the files' order, each module's fixtures set up once
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_unconfigure(config) -> None:
    if _folder:
        shutil.rmtree(_folder, ignore_errors=True)
