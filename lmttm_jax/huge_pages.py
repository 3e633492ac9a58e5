"""Transparent huge pages for XLA's host buffers (Linux with glibc 2.35 or newer).

On the CPU, XLA mallocs each execution's scratch memory afresh and faults it in one
4 KiB page at a time (docs/performance.md). glibc's tunable `glibc.malloc.hugetlb=1`
makes malloc ask for transparent huge pages (2 MiB) instead. glibc reads its tunables
when a process starts, so the entry points call `restart()` first; children inherit
the tunable, and a value the user sets (`glibc.malloc.hugetlb=0`: off) is kept.
"""

import contextlib
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb"
MIN_GLIBC = (2, 35)  # the first glibc with it
THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def thp_mode(path: Path = THP_ENABLED) -> str | None:
    """The kernel's transparent huge page mode (`always`, `madvise` or `never`), or
    None where the kernel does not say (not Linux, no THP)."""
    try:
        match = re.search(r"\[(\w+)\]", path.read_text())
    except OSError:
        return None
    return match.group(1) if match else None


def glibc_version() -> tuple[int, int] | None:
    """The running glibc's (major, minor), or None for another C library."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        major, minor = version.split(".")[:2]
        return (int(major), int(minor)) if name == "glibc" else None
    except (AttributeError, OSError, ValueError):
        return None


def environment(
    environ: Mapping[str, str], glibc: tuple[int, int] | None, mode: str | None
) -> dict[str, str] | None:
    """`environ` with the tunable added, or None where it would change nothing: the
    user set it (either way), the C library lacks it, or the kernel's mode is not
    `madvise` (`always` gives every large mapping huge pages already; `never`, none)."""
    tunables = environ.get("GLIBC_TUNABLES", "")
    if TUNABLE in tunables or glibc is None or glibc < MIN_GLIBC or mode != "madvise":
        return None
    return {**environ, "GLIBC_TUNABLES": ":".join(filter(None, [tunables, f"{TUNABLE}=1"]))}


def restart() -> None:
    """Runs this command again with the tunable set where `environment` says so;
    otherwise returns. Call it first in an entry point's `__main__` block."""
    env = environment(os.environ, glibc_version(), thp_mode())
    if env is None or not sys.orig_argv:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError):  # run on without huge pages rather than not at all
        os.execve(sys.executable, sys.orig_argv, env)


def describe() -> str:
    """One line for the logs: whether this process's host buffers get huge pages."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    mode = thp_mode()
    if mode == "always":
        return "huge pages: on (kernel THP mode always)"
    if f"{TUNABLE}=1" in tunables or f"{TUNABLE}=2" in tunables:
        return f"huge pages: on (GLIBC_TUNABLES={tunables}, kernel THP mode {mode})"
    return f"huge pages: off (GLIBC_TUNABLES={tunables or 'unset'}, kernel THP mode {mode})"
