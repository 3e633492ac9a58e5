"""Transparent huge pages for XLA's host buffers: when an entry point runs itself again
with glibc's tunable, and that it keeps its arguments when it does."""

import os
import subprocess
import sys

import pytest

from lmttm_jax import huge_pages

GLIBC = (2, 36)


def test_environment_adds_the_tunable_where_it_helps():
    env = huge_pages.environment({"PATH": "/bin"}, GLIBC, "madvise")
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    other = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}
    env = huge_pages.environment(other, GLIBC, "madvise")
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"


@pytest.mark.parametrize(
    "environ, glibc, mode",
    [
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, GLIBC, "madvise"),  # the user's off
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, GLIBC, "madvise"),  # already on
        ({}, (2, 34), "madvise"),  # a glibc without the tunable
        ({}, None, "madvise"),  # another C library
        ({}, GLIBC, "always"),  # the kernel gives huge pages anyway
        ({}, GLIBC, "never"),  # the kernel gives none
        ({}, GLIBC, None),  # no THP, or not Linux
    ],
)
def test_environment_changes_nothing_otherwise(environ, glibc, mode):
    assert huge_pages.environment(environ, glibc, mode) is None


def test_thp_mode_reads_the_selected_mode(tmp_path):
    enabled = tmp_path / "enabled"
    enabled.write_text("always [madvise] never\n")
    assert huge_pages.thp_mode(enabled) == "madvise"
    assert huge_pages.thp_mode(tmp_path / "missing") is None


def test_restart_runs_the_command_again_with_its_arguments():
    code = (
        "import os, sys\n"
        "from lmttm_jax import huge_pages\n"
        "print('started', flush=True)\n"
        "huge_pages.restart()\n"
        "print(os.environ.get('GLIBC_TUNABLES'), sys.argv[1:])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run(
        [sys.executable, "-c", code, "--flag=a b"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    expected = huge_pages.environment(env, huge_pages.glibc_version(), huge_pages.thp_mode())
    if expected is None:  # nothing to gain here: the command runs once, unchanged
        assert done.stdout.splitlines() == ["started", "None ['--flag=a b']"]
    else:  # once without, once again with the tunable, same arguments
        assert done.stdout.splitlines() == [
            "started",
            "started",
            "glibc.malloc.hugetlb=1 ['--flag=a b']",
        ]
    assert "huge pages:" in huge_pages.describe()
